"""What a view needs: the permission vocabulary and the declarations every view carries.

Every view declares its permissions with :func:`requires` (or :func:`public`); the declaration
is read and enforced in one place, before the view's arguments are parsed
(``clinic.auth.permissions.enforce_before_request``), and a view that declares nothing is
refused. Which role holds which permission is clinic.auth's business; the vocabulary lives here
so that every package, the audit trail's included, can declare what its views need.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

PERMISSION_ATTR = "__clinic_permissions__"


class Permission(enum.StrEnum):
    #: Any signed-in user: their own account, sessions, tokens and notifications.
    SELF = "self"
    SITES_MANAGE = "sites:manage"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    REPORTS_READ = "reports:read"
    #: Every client record in bulk, the program's own copy (FHIR ``$export``): administrators only.
    BULK_EXPORT = "bulk:export"
    INTAKE_READ = "intake:read"
    INTAKE_WRITE = "intake:write"
    #: Client demographics and communication consents (no clinical data).
    CLIENTS_READ = "clients:read"
    CLIENTS_WRITE = "clients:write"
    APPOINTMENTS_READ = "appointments:read"
    APPOINTMENTS_WRITE = "appointments:write"
    #: Episodes, assessments, plans, medications, drug screens, disclosures.
    CLINICAL_READ = "clinical:read"
    CLINICAL_WRITE = "clinical:write"


_SECURITY_DOC: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]


def requires(*permissions: Permission) -> Callable[[F], F]:
    """Declare the permissions a view needs: 401 when signed out, 403 without them.

    Cookie-authenticated unsafe requests must also carry the session's ``X-CSRF-Token``.
    """

    def decorator(view: F) -> F:
        setattr(view, PERMISSION_ATTR, frozenset(permissions))
        apidoc = cast(dict[str, Any], view.__dict__.setdefault("_apidoc", {}))
        manual = apidoc.setdefault("manual_doc", {})
        manual["security"] = _SECURITY_DOC
        return view

    return decorator


def public(view: F) -> F:
    """Declare that a view needs no sign-in (health checks, login, the API spec)."""
    setattr(view, PERMISSION_ATTR, frozenset())
    return view


def declared_permissions(view: Any) -> frozenset[Permission] | None:
    """What ``view`` declared; None when it declared nothing (such a view is refused)."""
    return getattr(view, PERMISSION_ATTR, None)
