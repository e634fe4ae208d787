"""HTTP endpoints: the intake call log and conversion of callers to clients."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, requires
from clinic.clients.models import Client
from clinic.clients.schemas import ClientSchema, DuplicateArgsSchema
from clinic.extensions import links
from clinic.intake import operations as ops
from clinic.intake.models import IntakeCall
from clinic.intake.schemas import (
    ConvertSchema,
    IntakeCallCreateSchema,
    IntakeCallPageSchema,
    IntakeCallPatchSchema,
    IntakeCallQuerySchema,
    IntakeCallSchema,
    LinkSchema,
)

blp = Blueprint("intake", __name__, url_prefix="/api/v1", description="Intake calls")


def load_call(call_id: int, *, audit_read: bool = False) -> IntakeCall:
    return get_scoped_or_404(IntakeCall, call_id, authenticated_user(), audit_read=audit_read)


#: What can be done with a call just logged, and with the client it was converted to (links).
_CALL_OPERATIONS = ("intake.get_call", "intake.update_call", "intake.convert_call", "intake.link_call")
_CONVERTED_OPERATIONS = ("clients.get_client", "clients.update_client", "clients.admit", "clients.timeline")


@blp.route("/intake-calls", methods=["POST"])
@requires(Permission.INTAKE_WRITE)
@blp.arguments(IntakeCallCreateSchema)
@blp.response(201, IntakeCallSchema)
@blp.doc(**links(201, {"call_id": "$response.body#/id"}, *_CALL_OPERATIONS))
def create_call(body: dict[str, Any]) -> IntakeCall:
    """Log an inquiry call."""
    return ops.log_call(actor=authenticated_user(), **body)


@blp.route("/intake-calls", methods=["GET"])
@requires(Permission.INTAKE_READ)
@blp.arguments(IntakeCallQuerySchema, location="query")
@blp.response(200, IntakeCallPageSchema)
def list_calls(args: dict[str, Any]) -> dict[str, Any]:
    """The call log: calls with risk flags first, then newest first. `follow_up_due=true` is the follow-up queue."""
    return ops.search_calls(authenticated_user(), **args).as_dict()


@blp.route("/intake-calls/<int:call_id>", methods=["GET"])
@requires(Permission.INTAKE_READ)
@blp.response(200, IntakeCallSchema)
def get_call(call_id: int) -> IntakeCall:
    """One call."""
    return load_call(call_id, audit_read=True)


@blp.route("/intake-calls/<int:call_id>", methods=["PATCH"])
@requires(Permission.INTAKE_WRITE)
@blp.arguments(IntakeCallPatchSchema)
@blp.response(200, IntakeCallSchema)
def update_call(body: dict[str, Any], call_id: int) -> IntakeCall:
    """Correct or complete a call."""
    return ops.update_call(load_call(call_id), body)


@blp.route("/intake-calls/<int:call_id>/convert", methods=["POST"])
@requires(Permission.INTAKE_WRITE, Permission.CLIENTS_WRITE)
@blp.arguments(ConvertSchema)
@blp.arguments(DuplicateArgsSchema, location="query")
@blp.response(201, ClientSchema)
@blp.alt_response(
    409,
    description="Already converted or linked (`client_id`), or a likely duplicate: `candidates` lists `{id, mrn, "
    "first_name, last_name, date_of_birth, site_id, status}` of the matches in the caller's sites",
)
@blp.doc(**links(201, {"client_id": "$response.body#/id"}, *_CONVERTED_OPERATIONS))
def convert_call(body: dict[str, Any], args: dict[str, Any], call_id: int) -> Client:
    """Register the caller as a prospective client linked to the call (once; 409 after)."""
    return ops.convert_call(
        load_call(call_id), actor=authenticated_user(), allow_duplicate=args["allow_duplicate"], client_fields=body
    )


@blp.route("/intake-calls/<int:call_id>/link", methods=["POST"])
@requires(Permission.INTAKE_WRITE, Permission.CLIENTS_READ)
@blp.arguments(LinkSchema)
@blp.response(200, IntakeCallSchema)
@blp.alt_response(409, description="Already converted or linked (`client_id` names the client)")
def link_call(body: dict[str, Any], call_id: int) -> IntakeCall:
    """Attach a repeat call to the existing client who made it (a client of the call's site); once."""
    return ops.link_call(load_call(call_id), client_id=body["client_id"], actor=authenticated_user())
