"""HTTP endpoints: a client's record as a FHIR Bundle under a disclosure consent."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Response, g, json, request
from flask_smorest import Blueprint

from clinic.audit.models import Outcome
from clinic.audit.operations import record
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.clients.loaders import load_client
from clinic.core.errors import abort_problem
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
@blp.alt_response(
    403,
    description="The consent is not an active disclosure consent of this client; or, signed in with a session, "
    "the X-CSRF-Token header is missing or wrong",
)
def client_fhir(args: dict[str, Any], client_id: int) -> Response:
    """The client's record as a FHIR R4 Bundle, disclosed under `consent_id` and entered in the accounting.

    The export writes (a disclosure, in the accounting): a cookie session sends `X-CSRF-Token` as for
    any write, so a link on another site cannot make a signed-in clinician's browser disclose.
    """
    _session_sent_csrf_token(client_id)
    bundle = client_bundle(load_client(client_id), actor=authenticated_user(), consent_id=args["consent_id"])
    return Response(json.dumps(bundle), mimetype=FHIR_JSON)


def _session_sent_csrf_token(client_id: int) -> None:
    """A cookie-authenticated export must echo the session's CSRF token (a bearer token needs none).

    The export is a GET (the API's contract) that enters a disclosure in the accounting; the session
    cookie (SameSite=Lax) goes along with a top-level navigation from another site, a header does not.
    """
    if g.get("auth_kind") != "session":
        return
    sent = request.headers.get("X-CSRF-Token", "")
    if sent and hmac.compare_digest(sent.encode(), g.user_session.csrf_token.encode()):
        return
    record(
        "access.denied",
        resource="endpoint",
        resource_id=request.endpoint,
        client_id=client_id,
        outcome=Outcome.DENIED,
        user_id=authenticated_user().id,
        details={"reason": "missing or wrong CSRF token", "method": request.method, "path": request.path},
    )
    abort_problem(403, "Missing or wrong X-CSRF-Token header: the export is a disclosure.", problem="csrf")
