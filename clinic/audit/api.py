"""The audit trail, for administrators."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from clinic.audit import disclosures
from clinic.audit import operations as ops
from clinic.audit.models import Disclosure
from clinic.audit.schemas import (
    AuditEventPageSchema,
    AuditQuerySchema,
    DisclosureCreateSchema,
    DisclosureListSchema,
    DisclosureSchema,
)
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.clients.loaders import load_client

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit trail and the accounting of disclosures")


@blp.route("/audit-events", methods=["GET"])
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditEventPageSchema)
@requires(Permission.AUDIT_READ)
def list_audit_events(args: dict[str, Any]) -> dict[str, Any]:
    """Audit events, newest first, filtered by user, client, action, outcome and time."""
    return ops.search_events(**args).as_dict()


@blp.route("/clients/<int:client_id>/disclosures", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(DisclosureCreateSchema)
@blp.response(201, DisclosureSchema)
@blp.alt_response(403, description="No live consent of this client covers that recipient and purpose")
def create_disclosure(body: dict[str, Any], client_id: int) -> Disclosure:
    """Record a disclosure made under a consent (refused when the consent does not cover it)."""
    return disclosures.record_disclosure(load_client(client_id), actor=authenticated_user(), **body)


@blp.route("/clients/<int:client_id>/disclosures", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, DisclosureListSchema)
def list_disclosures(client_id: int) -> dict[str, Any]:
    """The accounting of disclosures: date, recipient, description, purpose and consent of each."""
    return {"items": disclosures.accounting(load_client(client_id))}
