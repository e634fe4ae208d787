"""Accounts, sign-in, sessions and tokens: the business rules, each change audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast

from flask import current_app
from sqlalchemy import ColumnElement, CursorResult, and_, case, func, literal, null, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from clinic.audit import operations as audit_trail  # create_user's ``audit`` flag hides the helper
from clinic.audit.models import Outcome
from clinic.audit.operations import audit, record
from clinic.auth.models import ApiToken, Role, Site, User, UserSession
from clinic.auth.passwords import hash_password, needs_rehash, password_problems, verify_password
from clinic.auth.sessions import TOKEN_PREFIX, digest, new_secret, revoke_all_for_user, start_session
from clinic.core.errors import abort_problem
from clinic.core.models import UTCDateTime
from clinic.core.pagination import Page, keyset_page
from clinic.core.time import utcnow
from clinic.extensions import db


def normalise_email(email: str) -> str:
    return email.strip().lower()


# --- sign-in -----------------------------------------------------------------------------


def authenticate(email: str, password: str) -> User | None:
    """Check credentials, counting failures toward a lockout; None for any failure.

    A wrong password, an unknown email, a locked and a disabled account are told apart only
    in the audit trail, never to the caller.
    """
    now = utcnow()
    email_norm = normalise_email(email)
    user = db.session.scalars(select(User).where(User.email == email_norm)).first()
    password_ok = verify_password(user.password_hash if user else None, password)
    if user is None:
        record(
            "auth.login",
            resource="user",
            outcome=Outcome.FAILURE,
            details={"email": email_norm[:254], "reason": "unknown_email"},
        )
        return None
    if not user.is_active:
        _login_failed(user, "disabled")
        return None
    if user.locked_until is not None and user.locked_until > now:
        _login_failed(user, "locked")
        return None
    if not password_ok:
        _count_failure(user, now=now)
        return None
    if not _clear_failures(user, now=now):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# The failure count and the lock change only through the two conditional UPDATE statements
# below, never read-modify-write in Python: the database serialises concurrent attempts on the
# user's row and each sees what the previous one left, so parallel guesses cannot outrun the lockout.


def _signable(user: User, now: datetime) -> ColumnElement[bool]:
    """The row of ``user`` while it is active and not locked."""
    return and_(
        User.id == user.id, User.is_active.is_(True), or_(User.locked_until.is_(None), User.locked_until <= now)
    )


def _count_failure(user: User, *, now: datetime) -> None:
    """Count a wrong password; the failure that reaches the threshold locks the account, once."""
    config = current_app.config
    window: timedelta = config["LOGIN_LOCKOUT_WINDOW"]
    instant = UTCDateTime()
    in_window = User.failed_login_window_started_at >= now - window  # false when never started (NULL)
    count = case((in_window, User.failed_login_count + 1), else_=1)
    locks = count >= config["LOGIN_LOCKOUT_THRESHOLD"]
    row = db.session.execute(
        update(User)
        .where(_signable(user, now))
        .values(
            failed_login_count=case((locks, 0), else_=count),
            failed_login_window_started_at=case(
                (locks, null()), (in_window, User.failed_login_window_started_at), else_=literal(now, instant)
            ),
            locked_until=case(
                (locks, literal(now + config["LOGIN_LOCKOUT_DURATION"], instant)), else_=User.locked_until
            ),
        )
        .returning(User.failed_login_count, User.failed_login_window_started_at, User.locked_until)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        _refused_meanwhile(user)
        return
    _set_loaded(user, failed_login_count=row[0], failed_login_window_started_at=row[1], locked_until=row[2])
    _login_failed(user, "wrong_password")
    if user.locked_until is not None and user.locked_until > now:
        record(
            "auth.lockout",
            resource="user",
            resource_id=user.id,
            user_id=user.id,
            outcome=Outcome.FAILURE,
            details={"window_minutes": int(window.total_seconds() // 60)},
        )


def _clear_failures(user: User, *, now: datetime) -> bool:
    """Record a successful sign-in; false (and audited) when the account was locked meanwhile."""
    cleared = {"failed_login_count": 0, "failed_login_window_started_at": None, "locked_until": None}
    changed = db.session.execute(
        update(User)
        .where(_signable(user, now))
        .values(**cleared, last_login_at=now)
        .execution_options(synchronize_session=False)
    )
    if not cast("CursorResult[Any]", changed).rowcount:
        _refused_meanwhile(user)
        return False
    _set_loaded(user, **cleared, last_login_at=now)
    return True


def _refused_meanwhile(user: User) -> None:
    """Audit an attempt that found the account locked (or disabled) by another request meanwhile."""
    db.session.refresh(user)
    _login_failed(user, "locked" if user.is_active else "disabled")


def _set_loaded(user: User, **values: Any) -> None:
    """Tell the session what the database now holds, without a change to flush or a reload."""
    for key, value in values.items():
        set_committed_value(user, key, value)


def _login_failed(user: User, reason: str) -> None:
    record(
        "auth.login",
        resource="user",
        resource_id=user.id,
        user_id=user.id,
        outcome=Outcome.FAILURE,
        details={"reason": reason},
    )


def login(email: str, password: str, *, previous: UserSession | None = None) -> tuple[User, UserSession, str] | None:
    """Sign in: a new session (a fresh id every time), the previous one revoked."""
    user = authenticate(email, password)
    if user is None:
        return None
    if previous is not None and previous.revoked_at is None:
        previous.revoked_at = utcnow()
    session_row, token = start_session(user)
    record("auth.login", resource="user", resource_id=user.id, user_id=user.id, details={"session_id": session_row.id})
    return user, session_row, token


def logout(user: User, session_row: UserSession | None) -> None:
    if session_row is not None:
        session_row.revoked_at = utcnow()
    record("auth.logout", resource="user", resource_id=user.id, user_id=user.id)


def change_password(user: User, *, current_password: str, new_password: str) -> None:
    """Change one's own password; every session and token of the user ends at once."""
    if not verify_password(user.password_hash, current_password):
        record("auth.password_change", resource="user", resource_id=user.id, outcome=Outcome.FAILURE)
        abort_problem(422, "The current password is wrong.", errors={"current_password": ["Wrong password."]})
    _set_password(user, new_password, field="new_password")
    record("auth.password_change", resource="user", resource_id=user.id)


def _set_password(user: User, password: str, *, field: str = "password") -> None:
    problems = password_problems(password, email=user.email, name=user.name)
    if problems:
        abort_problem(422, "The password is not acceptable.", errors={field: problems})
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    revoke_all_for_user(user.id)


# --- tokens ------------------------------------------------------------------------------


def create_token(user: User, *, name: str, expires_in_days: int | None) -> tuple[ApiToken, str]:
    days = expires_in_days or current_app.config["API_TOKEN_DEFAULT_DAYS"]
    token = TOKEN_PREFIX + new_secret()
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=digest(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        expires_at=utcnow() + timedelta(days=days),
    )
    db.session.add(row)
    db.session.flush()
    record("token.create", resource="api_token", resource_id=row.id, details={"name": name, "expires_in_days": days})
    return row, token


def list_tokens(user: User) -> Sequence[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
    return db.session.scalars(stmt).all()


def get_own_token_or_404(user: User, token_id: int) -> ApiToken:
    row = db.session.scalars(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        abort_problem(404, "Not found.")
    return row


def revoke_token(token: ApiToken) -> None:
    token.revoked_at = utcnow()
    record("token.revoke", resource="api_token", resource_id=token.id)


# --- sites -------------------------------------------------------------------------------


def _site_name_taken(name: str, *, exclude_id: int | None = None) -> bool:
    stmt = select(func.count()).select_from(Site).where(func.lower(Site.name) == name.strip().lower())
    if exclude_id is not None:
        stmt = stmt.where(Site.id != exclude_id)
    return bool(db.session.scalar(stmt))


def create_site(
    *,
    name: str,
    timezone: str,
    display_name: str | None = None,
    is_otp: bool = False,
    requires_supervisor_signature: bool = False,
) -> Site:
    if _site_name_taken(name):
        abort_problem(409, "A site with this name exists.", errors={"name": ["Already taken."]})
    site = Site(
        name=name.strip(),
        timezone=timezone,
        display_name=(display_name or name).strip(),
        is_otp=is_otp,
        requires_supervisor_signature=requires_supervisor_signature,
    )
    db.session.add(site)
    db.session.flush()
    audit("create", site, details={"name": site.name})
    return site


def update_site(site: Site, changes: dict[str, Any]) -> Site:
    if "name" in changes and _site_name_taken(changes["name"], exclude_id=site.id):
        abort_problem(409, "A site with this name exists.", errors={"name": ["Already taken."]})
    for key, value in changes.items():
        setattr(site, key, value.strip() if isinstance(value, str) else value)
    db.session.flush()
    audit("update", site, details={"fields": sorted(changes)})
    return site


def list_sites(*, limit: int, cursor: str | None) -> Page[Site]:
    """All sites, by id, a page at a time."""
    return keyset_page(select(Site), keys=[Site.id], limit=limit, cursor=cursor)


def get_site_or_404(site_id: int) -> Site:
    site = db.session.get(Site, site_id)
    if site is None:
        abort_problem(404, "Not found.")
    return site


# --- users -------------------------------------------------------------------------------


def _load_sites(site_ids: Sequence[int]) -> list[Site]:
    unique = sorted(set(site_ids))
    sites = list(db.session.scalars(select(Site).where(Site.id.in_(unique)).order_by(Site.id))) if unique else []
    if len(sites) != len(unique):
        missing = sorted(set(unique) - {s.id for s in sites})
        abort_problem(422, "Unknown site.", errors={"site_ids": [f"No site with id {i}." for i in missing]})
    return sites


def _email_taken(email: str, *, exclude_id: int | None = None) -> bool:
    stmt = select(func.count()).select_from(User).where(User.email == email)
    if exclude_id is not None:
        stmt = stmt.where(User.id != exclude_id)
    return bool(db.session.scalar(stmt))


def _check_role_sites(role: Role, sites: list[Site]) -> None:
    if role is not Role.ADMIN and not sites:
        abort_problem(
            422,
            "Clinicians and intake coordinators work at a site.",
            errors={"site_ids": ["At least one site is required for this role."]},
        )


def create_user(
    *,
    email: str,
    name: str,
    role: Role,
    site_ids: Sequence[int],
    password: str,
    is_supervisor: bool = False,
    audit: bool = True,
) -> User:
    email_norm = normalise_email(email)
    if _email_taken(email_norm):
        abort_problem(409, "A user with this email exists.", errors={"email": ["Already taken."]})
    problems = password_problems(password, email=email_norm, name=name)
    if problems:
        abort_problem(422, "The password is not acceptable.", errors={"password": problems})
    sites = _load_sites(site_ids)
    _check_role_sites(role, sites)
    user = User(
        email=email_norm,
        name=name.strip(),
        role=role,
        is_supervisor=is_supervisor,
        is_active=True,
        password_hash=hash_password(password),
        sites=sites,
    )
    db.session.add(user)
    db.session.flush()
    if audit:
        audit_trail.audit(
            "create", user, details={"role": role.value, "site_ids": user.site_ids, "is_supervisor": is_supervisor}
        )
    return user


def _keep_administrators(user: User, changes: dict[str, Any], *, actor: User) -> None:
    """Refuse (409) a change that takes administrator rights from oneself or from the last active admin.

    The rights go with a role change away from admin and with disabling the account. The active
    administrators' rows are locked first, so two admins demoting each other at the same moment
    cannot both succeed and leave none.
    """
    if user.role is not Role.ADMIN or not user.is_active:
        return
    fields = sorted(
        name
        for name, taken in (
            ("role", changes.get("role", Role.ADMIN) is not Role.ADMIN),
            ("is_active", changes.get("is_active", True) is False),
        )
        if taken
    )
    if not fields:
        return
    if user.id == actor.id:
        _refuse_admin_change(
            user,
            fields,
            problem="own-admin-rights",
            detail="You cannot take away your own administrator rights; another administrator can.",
            message="Not for your own account.",
        )
    active_admins = db.session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)).order_by(User.id).with_for_update()
    ).all()
    if set(active_admins) <= {user.id}:
        _refuse_admin_change(
            user,
            fields,
            problem="last-admin",
            detail="This is the last active administrator; make another one first.",
            message="The last active administrator keeps this.",
        )


def _refuse_admin_change(user: User, fields: list[str], *, problem: str, detail: str, message: str) -> NoReturn:
    """Answer 409; the refusal is audited (a denied event outlives the rollback)."""
    audit("update", user, outcome=Outcome.DENIED, details={"fields": fields, "refused": problem})
    abort_problem(409, detail, errors={field: [message] for field in fields}, problem=problem)


def update_user(user: User, changes: dict[str, Any], *, actor: User) -> User:
    """Apply an admin's changes; disabling a user or setting a password ends their sessions."""
    _keep_administrators(user, changes, actor=actor)
    details: dict[str, Any] = {"fields": sorted(k for k in changes if k != "password")}
    if "email" in changes:
        email_norm = normalise_email(changes["email"])
        if _email_taken(email_norm, exclude_id=user.id):
            abort_problem(409, "A user with this email exists.", errors={"email": ["Already taken."]})
        user.email = email_norm
    if "name" in changes:
        user.name = changes["name"].strip()
    role = changes.get("role", user.role)
    if "site_ids" in changes:
        user.sites = _load_sites(changes["site_ids"])
    if role != user.role:
        details["role"] = {"from": user.role.value, "to": role.value}
        user.role = role
    _check_role_sites(user.role, list(user.sites))
    if "is_supervisor" in changes:
        user.is_supervisor = changes["is_supervisor"]
    if "is_active" in changes and changes["is_active"] != user.is_active:
        user.is_active = changes["is_active"]
        if not user.is_active:
            revoke_all_for_user(user.id)
        details["is_active"] = user.is_active
    if "password" in changes:
        _set_password(user, changes["password"])
        details["password_reset"] = True
    db.session.flush()
    audit("update", user, details=details)
    return user


def list_users(*, limit: int, cursor: str | None) -> Page[User]:
    """All staff accounts, by id, a page at a time."""
    return keyset_page(select(User), keys=[User.id], limit=limit, cursor=cursor)


def get_user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort_problem(404, "Not found.")
    return user


def count_sites() -> int:
    """How many sites there are (the administration page's count)."""
    return int(db.session.scalar(select(func.count()).select_from(Site)) or 0)


def count_users() -> int:
    """How many accounts there are, disabled ones included (the administration page's count)."""
    return int(db.session.scalar(select(func.count()).select_from(User)) or 0)


def staff_names(user_ids: Sequence[int]) -> dict[int, str]:
    """The names of staff accounts by id (who a record names: a clinician since moved or disabled, say)."""
    if not user_ids:
        return {}
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(sorted(set(user_ids))))).tuples()
    return dict(rows.all())
