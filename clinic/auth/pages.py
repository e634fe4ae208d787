"""Console pages for signing in and out, the role's home, and changing one's password.

Sign-in has the API's lockout, rate limit (clinic.extensions.SIGN_IN_ENDPOINTS) and one message
whatever the cause. Before a session exists, the form is protected from cross-site posting by a
double-submit token: a random value in a cookie and in the form, which must match.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, g, request, url_for
from flask_login import current_user

from clinic.auth import operations as ops
from clinic.auth.permissions import Permission, authenticated_user, public, requires
from clinic.auth.schemas import PasswordChangeSchema
from clinic.auth.sessions import clear_session_cookie, set_session_cookie
from clinic.console import (
    SITE_COOKIE,
    ConsoleBlueprint,
    as_id,
    attempt,
    form_values,
    home_endpoint,
    load_form,
    page,
    redirect_to,
    visible_id,
)
from clinic.console.errors import safe_next

blp = ConsoleBlueprint("auth_pages", __name__)

_LOGIN_CSRF_COOKIE = "clinic_login_csrf"
_SIGN_IN_FAILED = "Wrong email or password, or the account is locked or disabled. Try again, or ask an administrator."


def _login_form(*, email: str = "", error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(
        "auth/login.html", status=status, email=email, error=error, login_csrf=token,
        next=safe_next(request.values.get("next")),
    )
    response.set_cookie(
        _LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response


@blp.route("/login", methods=["GET"])
@public
def login_form() -> Response:
    if current_user.is_authenticated and g.get("auth_kind") == "session":
        return redirect_to(safe_next(request.args.get("next")) or _home_url())
    return _login_form()


@blp.route("/login", methods=["POST"])
@public  # rate limited per address before the body is read (clinic.extensions.SIGN_IN_ENDPOINTS)
def login() -> Response:
    sent = request.form.get("csrf_token", "")
    expected = request.cookies.get(_LOGIN_CSRF_COOKIE, "")
    email = request.form.get("email", "").strip()
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_form(email=email, error="The sign-in form had expired. Please sign in again.", status=400)
    password = request.form.get("password", "")
    authenticated_before = current_user.is_authenticated
    result = ops.login(email, password, previous=g.get("user_session") if authenticated_before else None) \
        if email and password else None
    if result is None:
        return _login_form(email=email, error=_SIGN_IN_FAILED, status=200)
    user, session_row, token = result
    g.user_session = session_row
    home = url_for(home_endpoint(user.role.value) or "auth_pages.account")
    response = redirect_to(safe_next(request.form.get("next")) or home)
    set_session_cookie(response, token, session_row.expires_at)
    response.delete_cookie(_LOGIN_CSRF_COOKIE, path="/login")
    return response


@blp.route("/logout", methods=["POST"])
@requires(Permission.SELF)
def logout() -> Response:
    ops.logout(authenticated_user(), g.get("user_session"))
    idle = request.form.get("reason") == "idle"
    response = redirect_to(url_for("auth_pages.login_form") + "?" + urlencode({"idle" if idle else "signed_out": "1"}))
    clear_session_cookie(response)
    # The back button must not bring client pages back from the browser's memory. Signing out also
    # clears the tab's storage; the page's own sign-out after the idle timeout keeps it, for the draft
    # it saved there is put back when the same user signs in again (console.js).
    response.headers["Clear-Site-Data"] = '"cache"' if idle else '"cache", "storage"'
    return response


def _home_url() -> str:
    endpoint = home_endpoint(authenticated_user().role.value)
    return url_for(endpoint or "auth_pages.account")


@blp.route("/", methods=["GET"])
@requires(Permission.SELF)
def home() -> Response:
    return redirect_to(_home_url())


@blp.route("/account", methods=["GET"])
@requires(Permission.SELF)
def account() -> Response:
    return page("auth/account.html", user=authenticated_user(), errors={}, done=request.args.get("changed") == "1")


@blp.route("/account/ping", methods=["GET"])
@requires(Permission.SELF)
def ping() -> Response:
    """The idle-logoff warning's "Stay signed in": any signed-in request keeps the session alive."""
    return Response("", status=204)


@blp.route("/account/site", methods=["POST"])
@requires(Permission.SELF)
def choose_site() -> Response:
    """The top bar's site switcher: remembered in a cookie, one of the user's own sites only."""
    user = authenticated_user()
    chosen = as_id(request.form.get("site_id", ""))
    if chosen is None:
        return page("console/error.html", status=422, title="Choose one of your sites", detail="", errors={})
    visible_id(chosen, user.site_ids)  # another site's id: the "page not found" page
    # Back to the page the switcher is on: its ``next`` field, else the referring page (a browser
    # sends none under the console's no-referrer policy), else home; never elsewhere, never search terms.
    response = redirect_to(safe_next(request.form.get("next")) or safe_next(_referring_path()) or _home_url())
    response.set_cookie(SITE_COOKIE, str(chosen), httponly=True, samesite="Lax", path="/",
                        secure=current_app.config["SESSION_COOKIE_SECURE"], max_age=365 * 24 * 3600)
    return response


def _referring_path() -> str | None:
    from urllib.parse import urlsplit

    if not request.referrer:
        return None
    parts = urlsplit(request.referrer)
    if parts.netloc != request.host:
        return None
    return parts.path + ("?" + parts.query if parts.query else "")


@blp.route("/account/password", methods=["POST"])
@requires(Permission.SELF)
def change_password() -> Response:
    user = authenticated_user()
    values: dict[str, Any] = form_values(drop_empty=False)
    confirmation = values.pop("confirm_password", "")
    data, errors = load_form(PasswordChangeSchema(), values)
    if not errors and values.get("new_password") != confirmation:
        errors["confirm_password"] = ["The two new passwords are not the same."]
    if not errors:
        _result, errors = attempt(
            ops.change_password, user, current_password=data["current_password"], new_password=data["new_password"]
        )
    if errors:
        return page("auth/account.html", status=422, user=user, errors=errors, done=False)
    # Every session of the account ended with the change: sign in again with the new password.
    response = redirect_to(url_for("auth_pages.login_form") + "?" + urlencode({"password_changed": "1"}))
    clear_session_cookie(response)
    return response
