"""HTTP endpoints: naloxone dispenses and overdose events."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, requires
from clinic.clients.loaders import load_client
from clinic.extensions import links
from clinic.overdose import operations as ops
from clinic.overdose.models import NaloxoneDispense, OverdoseEvent
from clinic.overdose.schemas import (
    ConfirmDeathSchema,
    NaloxoneCreateSchema,
    NaloxoneListSchema,
    NaloxoneSchema,
    OverdoseEventCreateSchema,
    OverdoseEventListSchema,
    OverdoseEventSchema,
)

blp = Blueprint("overdose", __name__, url_prefix="/api/v1", description="Overdose prevention")


@blp.route("/clients/<int:client_id>/naloxone", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(NaloxoneCreateSchema)
@blp.response(201, NaloxoneSchema)
def record_naloxone(body: dict[str, Any], client_id: int) -> NaloxoneDispense:
    """Record naloxone handed to the client (clinicians)."""
    return ops.record_naloxone(load_client(client_id), actor=authenticated_user(), **body)


@blp.route("/clients/<int:client_id>/naloxone", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, NaloxoneListSchema)
def list_naloxone(client_id: int) -> dict[str, Any]:
    """The client's naloxone dispenses, newest first."""
    return {"items": ops.list_naloxone(load_client(client_id))}


@blp.route("/clients/<int:client_id>/overdose-events", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(OverdoseEventCreateSchema)
@blp.response(201, OverdoseEventSchema)
@blp.doc(**links(201, {"event_id": "$response.body#/id"}, "overdose.confirm_death"))
def record_overdose(body: dict[str, Any], client_id: int) -> dict[str, Any]:
    """Record an overdose and alert the client's clinician; a fatal one carries the discharge to confirm."""
    event = ops.record_overdose(load_client(client_id), actor=authenticated_user(), **body)
    return ops.serialise_events([event])[0]


@blp.route("/clients/<int:client_id>/overdose-events", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, OverdoseEventListSchema)
def list_overdoses(client_id: int) -> dict[str, Any]:
    """The client's overdose events, newest first."""
    return {"items": ops.serialise_events(ops.list_overdoses(load_client(client_id)))}


@blp.route("/overdose-events/<int:event_id>/confirm-death", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(ConfirmDeathSchema, required=False)
@blp.response(200, OverdoseEventSchema)
def confirm_death(body: dict[str, Any], event_id: int) -> dict[str, Any]:
    """Confirm a fatal overdose: the open episode is discharged with TEDS reason 6 (death); again changes nothing."""
    event = get_scoped_or_404(OverdoseEvent, event_id, authenticated_user())
    return ops.serialise_events([ops.confirm_death(event, actor=authenticated_user(), note=body.get("note"))])[0]
