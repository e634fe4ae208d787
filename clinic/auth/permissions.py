"""Roles, permission checks and site scoping: access control is enforced here and nowhere else.

Every view declares its permission with ``requires`` (or ``public``, both in
clinic.core.permissions); :func:`enforce_before_request` checks the declaration before the view
runs, and a test walks the URL map and fails on a view that declares none. Client data is loaded only through
:func:`scoped_select` / :func:`get_scoped_or_404`, so a forgotten check yields a 404, not a leak.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from flask_login import current_user
from sqlalchemy import ColumnElement, Select, bindparam, select

from clinic.audit.models import Outcome
from clinic.audit.operations import audit, concerned_clients, record, resource_name
from clinic.auth.models import Role, User
from clinic.core.errors import abort_problem
from clinic.core.http import mark_client_data
from clinic.core.pagination import Page, keyset_page
from clinic.core.permissions import PERMISSION_ATTR, Permission, declared_permissions, public, requires
from clinic.extensions import db

M = TypeVar("M")

__all__ = [  # the declarations are re-exported: views import them with the checks
    "PERMISSION_ATTR",
    "Permission",
    "authenticated_user",
    "enforce_before_request",
    "get_scoped_or_404",
    "has_permission",
    "public",
    "read_scoped_page",
    "requires",
    "scoped_select",
    "site_scope",
]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_FRONT_DESK = {
    Permission.SELF,
    Permission.INTAKE_READ,
    Permission.INTAKE_WRITE,
    Permission.CLIENTS_READ,
    Permission.CLIENTS_WRITE,
    Permission.APPOINTMENTS_READ,
    Permission.APPOINTMENTS_WRITE,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            Permission.SELF,
            Permission.SITES_MANAGE,
            Permission.USERS_MANAGE,
            Permission.AUDIT_READ,
            Permission.REPORTS_READ,
            Permission.BULK_EXPORT,
        }
    ),
    Role.CLINICIAN: frozenset(
        _FRONT_DESK | {Permission.CLINICAL_READ, Permission.CLINICAL_WRITE, Permission.REPORTS_READ}
    ),
    Role.INTAKE: frozenset(_FRONT_DESK),
}

#: Roles that see individual client records; admins see clients only as report aggregates.
CLIENT_DATA_ROLES = frozenset({Role.CLINICIAN, Role.INTAKE})


def has_permission(user: User, permission: Permission) -> bool:
    return user.is_active and permission in ROLE_PERMISSIONS.get(user.role, frozenset())


def enforce(permissions: frozenset[Permission]) -> None:
    """401 when signed out, 403 (audited as ``access.denied``) on a missing CSRF token or permission."""
    user = authenticated_user()
    if not _csrf_ok():
        _record_forbidden(user, "missing or wrong CSRF token")
        abort_problem(403, "Missing or wrong X-CSRF-Token header.", problem="csrf")
    missing = sorted(p.value for p in permissions if not has_permission(user, p))
    if missing:
        _record_forbidden(user, "the role lacks " + ", ".join(missing))
        abort_problem(403, "Your role does not allow this.")


def _record_forbidden(user: User, reason: str) -> None:
    """Every 403 is in the audit trail, with the client the request named when it named one."""
    view_args = request.view_args or {}
    client_id = view_args.get("client_id")
    record(
        "access.denied",
        resource="endpoint",
        resource_id=request.endpoint,
        client_id=client_id if isinstance(client_id, int) else None,
        outcome=Outcome.DENIED,
        user_id=user.id,
        details={"reason": reason, "method": request.method, "path": request.path},
    )


def enforce_before_request() -> None:
    """Check the matched view's declared permissions before its arguments are even parsed.

    So a signed-out caller learns nothing from validation errors, and authorization always
    precedes validation. A view that declares nothing is refused (fail closed).
    """
    if request.endpoint is None or request.method == "OPTIONS":
        return
    declared = declared_permissions(current_app.view_functions.get(request.endpoint))
    if declared is None:
        abort_problem(403, "This endpoint declares no permission.")
    if declared:
        enforce(declared)


def authenticated_user() -> User:
    """The signed-in user, or a 401."""
    if not current_user.is_authenticated:
        abort_problem(401, "Sign in, or send a valid bearer token.", headers={"WWW-Authenticate": "Bearer"})
    return cast(User, current_user._get_current_object())


def _csrf_ok() -> bool:
    """A cookie-authenticated unsafe request must echo the session's CSRF token.

    As the ``X-CSRF-Token`` header (the API, and htmx on console pages) or, from a console form, as
    its ``csrf_token`` field.
    """
    if request.method in SAFE_METHODS or g.get("auth_kind") != "session":
        return True
    expected = g.user_session.csrf_token
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.mimetype in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        sent = request.form.get("csrf_token", "")
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


def site_scope(user: User) -> frozenset[int]:
    """Sites whose client records ``user`` may see (none for admins)."""
    if user.role not in CLIENT_DATA_ROLES or not user.is_active:
        return frozenset()
    return frozenset(user.site_ids)


def scoped_select(model: type[M], user: User, *, site_column: Any = None) -> Select[Any]:
    """``select(model)`` limited to the sites ``user`` may see; every client-data query starts here.

    The response that serves its rows carries client data: it is marked ``no-store`` here.
    """
    mark_client_data()
    column = site_column if site_column is not None else getattr(model, "site_id")  # noqa: B009 - generic model
    return select(model).where(column.in_(sorted(site_scope(user))))


def get_scoped_or_404(model: type[M], ident: Any, user: User, *, audit_read: bool = False) -> M:
    """Load one row of ``model`` by primary key within ``user``'s sites; anything else is a 404.

    The response is marked ``no-store``. With ``audit_read`` the read is audited here
    (``<resource>.read``): views that show the row itself ask for it; views that load a row to
    act on it or to list its children leave it to the operation, which records what it did.
    A row that exists outside the caller's sites is answered 404 and audited as ``access.denied``.
    """
    mark_client_data()
    params = {"ident": ident, "sites": sorted(site_scope(user))}
    obj = db.session.scalars(_by_id_within_sites(model), params).first()
    if obj is None:
        _record_denial_if_it_exists(model, ident, user)
        abort_problem(404, "Not found.")
    if audit_read:
        audit("read", obj, user_id=user.id)
    return cast(M, obj)


_BY_ID_WITHIN_SITES: dict[type[Any], Select[Any]] = {}


def _by_id_within_sites(model: type[Any]) -> Select[Any]:
    """``select(model)`` of one id within a list of sites, built once per model (building costs more than running)."""
    stmt = _BY_ID_WITHIN_SITES.get(model)
    if stmt is None:
        in_sites = model.site_id.in_(bindparam("sites", expanding=True))
        stmt = select(model).where(in_sites, model.id == bindparam("ident"))
        _BY_ID_WITHIN_SITES[model] = stmt
    return stmt


def read_scoped_page(
    stmt: Select[Any],
    *,
    keys: Sequence[Any],
    limit: int,
    cursor: str | None,
    via: str,
    descending: bool = False,
    any_of: Sequence[ColumnElement[bool]] = (),
) -> Page[Any]:
    """The list loader: one keyset page of a :func:`scoped_select`, the read of each row audited.

    Each row gets ``<resource>.read`` with ``details={"via": via}`` (``"search"``, ``"list"``).
    """
    page = keyset_page(stmt, keys=keys, limit=limit, cursor=cursor, descending=descending, any_of=any_of)
    for row in page.items:
        audit("read", row, details={"via": via})
    return page


def _record_denial_if_it_exists(model: type[Any], ident: Any, user: User) -> None:
    """An attempt on a record outside the caller's sites is answered 404 but audited as denied."""
    try:
        existing = db.session.get(model, ident)
    except (TypeError, ValueError):
        return
    if existing is None:
        return
    resource = resource_name(model)
    for client_id in concerned_clients(existing):
        record(
            "access.denied",
            resource=resource,
            resource_id=ident,
            client_id=client_id,
            outcome=Outcome.DENIED,
            user_id=user.id,
            details={"reason": "outside the user's sites or role"},
        )


def require_site_in_scope(site_id: int, user: User, *, field: str = "site_id") -> None:
    """A site named in a request body must be one of the caller's: otherwise a 422 on the field."""
    if site_id not in site_scope(user):
        abort_problem(422, "Unknown site.", errors={field: ["Not one of your sites."]})
