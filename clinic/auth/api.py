"""HTTP endpoints: sign-in and sessions, API tokens, sites and users."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, make_response
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_smorest import Blueprint

from clinic.auth import operations as ops
from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, authenticated_user, public, requires
from clinic.auth.schemas import (
    ListArgsSchema,
    LoginSchema,
    PasswordChangeSchema,
    SessionInfoSchema,
    SitePageSchema,
    SitePatchSchema,
    SiteSchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenListSchema,
    UserCreateSchema,
    UserPageSchema,
    UserPatchSchema,
    UserSchema,
)
from clinic.auth.sessions import clear_session_cookie, set_session_cookie
from clinic.core.errors import problem_response
from clinic.core.idempotency import not_replayable
from clinic.extensions import links

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Sign-in, sessions, tokens, sites and users")


def _session_info(user: User) -> dict[str, Any]:
    session_row = g.get("user_session")
    return {"user": user, "csrf_token": session_row.csrf_token if session_row is not None else None}


#: What an administrator can do with a user just created (the links of its 201).
_USER_OPERATIONS = ("auth.get_user", "auth.update_user", "scheduling.get_working_hours", "scheduling.put_working_hours")


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(LoginSchema)
@blp.response(200, SessionInfoSchema)
@blp.alt_response(401, description="Wrong credentials (the same body whatever the reason)")
@public  # rate limited per address before the body is read (clinic.extensions.SIGN_IN_ENDPOINTS)
def login(body: dict[str, Any]) -> ResponseReturnValue:
    """Sign in with email and password; sets the session cookie."""
    authenticated_before = current_user.is_authenticated  # loads any session the cookie names
    result = ops.login(
        body["email"], body["password"], previous=g.get("user_session") if authenticated_before else None
    )
    if result is None:
        # Identical for a wrong password, an unknown email, a locked or a disabled account.
        return problem_response(
            401, detail="Wrong email or password.", problem="login-failed", headers={"WWW-Authenticate": "Bearer"}
        )
    user, session_row, token = result
    g.user_session = session_row
    response = make_response(jsonify(SessionInfoSchema().dump(_session_info(user))), 200)
    set_session_cookie(response, token, session_row.expires_at)
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
@requires(Permission.SELF)
def logout() -> ResponseReturnValue:
    """End the current session (a bearer token stays valid; revoke it with DELETE /auth/tokens/{id})."""
    ops.logout(authenticated_user(), g.get("user_session"))
    response = make_response("", 204)
    clear_session_cookie(response)
    return response


@blp.route("/auth/me", methods=["GET"])
@blp.response(200, SessionInfoSchema)
@requires(Permission.SELF)
def me() -> dict[str, Any]:
    """The signed-in user, with the CSRF token of a cookie session."""
    return _session_info(authenticated_user())


@blp.route("/auth/password", methods=["POST"])
@blp.arguments(PasswordChangeSchema)
@blp.response(204)
@requires(Permission.SELF)
def change_password(body: dict[str, Any]) -> ResponseReturnValue:
    """Change one's own password; every session and token of the account ends."""
    ops.change_password(
        authenticated_user(), current_password=body["current_password"], new_password=body["new_password"]
    )
    response = make_response("", 204)
    clear_session_cookie(response)
    return response


@blp.route("/auth/tokens", methods=["POST"])
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenCreatedSchema)
@requires(Permission.SELF)
@not_replayable  # the new token is shown once: its answer is never stored for a replay
@blp.doc(**links(201, {"token_id": "$response.body#/id"}, "auth.revoke_token"))
def create_token(body: dict[str, Any]) -> dict[str, Any]:
    """Create an API token; the token is shown in this response only."""
    row, token = ops.create_token(authenticated_user(), name=body["name"], expires_in_days=body.get("expires_in_days"))
    return {"id": row.id, "name": row.name, "token": token, "expires_at": row.expires_at}


@blp.route("/auth/tokens", methods=["GET"])
@blp.response(200, TokenListSchema)
@requires(Permission.SELF)
def list_tokens() -> dict[str, Any]:
    """The caller's live tokens (never the token values)."""
    return {"items": ops.list_tokens(authenticated_user())}


@blp.route("/auth/tokens/<int:token_id>", methods=["DELETE"])
@blp.response(204)
@requires(Permission.SELF)
def revoke_token(token_id: int) -> ResponseReturnValue:
    """Revoke one of the caller's tokens at once."""
    token = ops.get_own_token_or_404(authenticated_user(), token_id)
    ops.revoke_token(token)
    return "", 204


@blp.route("/sites", methods=["POST"])
@blp.arguments(SiteSchema)
@blp.response(201, SiteSchema)
@requires(Permission.SITES_MANAGE)
@blp.doc(**links(201, {"site_id": "$response.body#/id"}, "auth.get_site", "auth.update_site"))
def create_site(body: dict[str, Any]) -> Site:
    """Create a site (clinic location) with its time zone."""
    return ops.create_site(**body)


@blp.route("/sites", methods=["GET"])
@blp.arguments(ListArgsSchema, location="query")
@blp.response(200, SitePageSchema)
@requires(Permission.SITES_MANAGE)
def list_sites(args: dict[str, Any]) -> dict[str, Any]:
    """All sites, by id."""
    return ops.list_sites(**args).as_dict()


@blp.route("/sites/<int:site_id>", methods=["GET"])
@blp.response(200, SiteSchema)
@requires(Permission.SITES_MANAGE)
def get_site(site_id: int) -> Site:
    """One site."""
    return ops.get_site_or_404(site_id)


@blp.route("/sites/<int:site_id>", methods=["PATCH"])
@blp.arguments(SitePatchSchema)
@blp.response(200, SiteSchema)
@requires(Permission.SITES_MANAGE)
def update_site(body: dict[str, Any], site_id: int) -> Site:
    """Change a site's name, zone, display name or flags."""
    return ops.update_site(ops.get_site_or_404(site_id), body)


@blp.route("/users", methods=["POST"])
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
@requires(Permission.USERS_MANAGE)
@blp.doc(**links(201, {"user_id": "$response.body#/id"}, *_USER_OPERATIONS))
def create_user(body: dict[str, Any]) -> User:
    """Create a staff account."""
    return ops.create_user(**body)


@blp.route("/users", methods=["GET"])
@blp.arguments(ListArgsSchema, location="query")
@blp.response(200, UserPageSchema)
@requires(Permission.USERS_MANAGE)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    """All staff accounts, by id."""
    return ops.list_users(**args).as_dict()


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.response(200, UserSchema)
@requires(Permission.USERS_MANAGE)
def get_user(user_id: int) -> User:
    """One staff account."""
    return ops.get_user_or_404(user_id)


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.arguments(UserPatchSchema)
@blp.response(200, UserSchema)
@requires(Permission.USERS_MANAGE)
def update_user(body: dict[str, Any], user_id: int) -> User:
    """Change an account; `is_active: false` or a new password ends its sessions and tokens.

    409 when the change would take administrator rights (role or `is_active`) from the caller
    themself or from the last active administrator.
    """
    return ops.update_user(ops.get_user_or_404(user_id), body, actor=authenticated_user())
