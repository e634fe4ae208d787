"""HTTP endpoints: a client's record as a FHIR Bundle under a disclosure consent."""

from __future__ import annotations

from typing import Any

from flask import Response, json
from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.clients.loaders import load_client
from clinic.fhir.bundle import client_bundle
from clinic.fhir.schemas import ClientExportArgsSchema

blp = Blueprint("fhir", __name__, url_prefix="/api/v1", description="FHIR R4 export")

FHIR_JSON = "application/fhir+json"

_BUNDLE = {
    "200": {
        "description": "A FHIR R4 Bundle (type collection) of the client's record, every resource labelled "
        "for 42 CFR Part 2 and the Bundle carrying the 42 CFR 2.32 notice (docs/fhir.md)",
        "content": {FHIR_JSON: {"schema": {"type": "object"}}},
    }
}


@blp.route("/clients/<int:client_id>/fhir", methods=["GET"])
@requires(Permission.CLINICAL_READ, Permission.CLINICAL_WRITE)
@blp.arguments(ClientExportArgsSchema, location="query")
@blp.doc(responses=_BUNDLE)
@blp.alt_response(403, description="The consent is not an active disclosure consent of this client")
def client_fhir(args: dict[str, Any], client_id: int) -> Response:
    """The client's record as a FHIR R4 Bundle, disclosed under `consent_id` and entered in the accounting."""
    bundle = client_bundle(load_client(client_id), actor=authenticated_user(), consent_id=args["consent_id"])
    return Response(json.dumps(bundle), mimetype=FHIR_JSON)
