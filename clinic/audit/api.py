"""The audit trail, for administrators."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from clinic.audit import operations as ops
from clinic.audit.schemas import AuditEventPageSchema, AuditQuerySchema
from clinic.core.permissions import Permission, requires

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit trail")


@blp.route("/audit-events", methods=["GET"])
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditEventPageSchema)
@requires(Permission.AUDIT_READ)
def list_audit_events(args: dict[str, Any]) -> dict[str, Any]:
    """Audit events, newest first, filtered by user, client, action, outcome and time."""
    return ops.search_events(**args).as_dict()
