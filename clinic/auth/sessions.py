"""Server-side sessions and API tokens, loaded for Flask-Login by one request loader."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import Flask, Response, current_app, g, request
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from clinic.auth.models import ApiToken, User, UserSession
from clinic.core.time import utcnow
from clinic.extensions import db, login_manager

TOKEN_PREFIX = "clinic_"  # noqa: S105 - a label, not a secret
#: A session's last-seen time is written at most this often, to spare a write per request.
_TOUCH_EVERY = timedelta(seconds=30)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User) -> tuple[UserSession, str]:
    """Open a new session for ``user``; returns the row and the cookie token (never stored)."""
    token = new_secret()
    now = utcnow()
    row = UserSession(
        user_id=user.id,
        token_hash=digest(token),
        csrf_token=new_secret(),
        created_at=now,
        last_seen_at=now,
        expires_at=now + current_app.config["SESSION_ABSOLUTE_TIMEOUT"],
        ip=request.remote_addr,
        user_agent=(request.user_agent.string or "")[:256] or None,
    )
    db.session.add(row)
    db.session.flush()
    return row, token


def revoke_all_for_user(user_id: int, *, sessions: bool = True, tokens: bool = True) -> None:
    """End every session and token of a user at once (disabled account, password change)."""
    now = utcnow()
    if sessions:
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    if tokens:
        db.session.execute(
            update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
        )


def session_is_live(row: UserSession, now: datetime) -> bool:
    idle = current_app.config["SESSION_IDLE_TIMEOUT"]
    return row.revoked_at is None and row.expires_at > now and row.last_seen_at + idle > now


#: Every request loads its credential, the user and the user's sites in one statement. The
#: statements are built once: building one with its loader options costs more than running it.
_SESSION_BY_HASH = (
    select(UserSession)
    .where(UserSession.token_hash == bindparam("token_hash"))
    .options(joinedload(UserSession.user).joinedload(User.sites))
)
_TOKEN_BY_HASH = (
    select(ApiToken)
    .where(ApiToken.token_hash == bindparam("token_hash"))
    .options(joinedload(ApiToken.user).joinedload(User.sites))
)


def _load_session(token: str) -> UserSession | None:
    row = db.session.scalars(_SESSION_BY_HASH, {"token_hash": digest(token)}).unique().first()
    if row is None:
        return None
    now = utcnow()
    if not session_is_live(row, now) or not row.user.is_active:
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return row


def _load_token(token: str) -> ApiToken | None:
    row = db.session.scalars(_TOKEN_BY_HASH, {"token_hash": digest(token)}).unique().first()
    if row is None:
        return None
    now = utcnow()
    if row.revoked_at is not None or row.expires_at <= now or not row.user.is_active:
        return None
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        row.last_used_at = now
    return row


@login_manager.request_loader
def load_user_from_request(req: object) -> User | None:
    """Bearer token first, then the session cookie; remembers how the user was authenticated."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        token_row = _load_token(header[7:].strip())
        if token_row is None:
            return None
        g.auth_kind = "token"
        g.api_token = token_row
        return token_row.user
    cookie = request.cookies.get(current_app.config["AUTH_COOKIE_NAME"])
    if cookie:
        session_row = _load_session(cookie)
        if session_row is not None:
            g.auth_kind = "session"
            g.user_session = session_row
            return session_row.user
    return None


def set_session_cookie(response: Response, token: str, expires_at: datetime) -> None:
    config = current_app.config
    response.set_cookie(
        config["AUTH_COOKIE_NAME"],
        token,
        expires=expires_at,
        httponly=True,
        secure=config["SESSION_COOKIE_SECURE"],
        samesite=config["SESSION_COOKIE_SAMESITE"],
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    config = current_app.config
    response.delete_cookie(
        config["AUTH_COOKIE_NAME"],
        path="/",
        httponly=True,
        secure=config["SESSION_COOKIE_SECURE"],
        samesite=config["SESSION_COOKIE_SAMESITE"],
    )


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    # Sessions are ours (server-side rows), so Flask-Login never touches Flask's cookie session.
    login_manager.session_protection = None
