"""HTTP endpoints: the CapabilityStatement and the bulk ``$export`` (FHIR Bulk Data Access).

Errors these views raise themselves are FHIR OperationOutcomes (``application/fhir+json``), as the
Bulk Data IG asks of the kick-off, status and file requests; a missing sign-in or permission is
still clinic's problem+json, answered before any view runs.
"""
# mypy: disable-error-code="untyped-decorator"
# (flask-smorest's decorators carry no type information: pyproject.toml exempts the other api modules.)

from __future__ import annotations

from typing import Any

from flask import Response, json, request, send_file, url_for
from flask_smorest import Blueprint
from marshmallow import fields

from clinic.auth.permissions import Permission, authenticated_user, public, requires
from clinic.core import unit_of_work
from clinic.core.http import mark_client_data
from clinic.core.schemas import StrictSchema
from clinic.fhir import bulk
from clinic.fhir.labels import fhir_base
from clinic.fhir.models import ExportStatus

blp = Blueprint("fhir_bulk", __name__, url_prefix="/api/v1", description="FHIR R4 bulk export")

FHIR_JSON = "application/fhir+json"
#: Seconds a client is asked to wait between two polls of a running export.
RETRY_AFTER_SECONDS = 5


class KickOffSchema(StrictSchema):
    """The ``$export`` kick-off's parameters; each is checked by the operation (errors are OperationOutcomes)."""

    site_id = fields.String(metadata={"description": "Export one site (a site's id); default: every site."})
    type_ = fields.String(
        data_key="_type",
        metadata={"description": "Comma-separated resource types (default: every type clinic exports)."},
    )
    since = fields.String(
        data_key="_since",
        metadata={"description": "A FHIR instant with its zone: only what changed at or after it."},
    )
    output_format = fields.String(
        data_key="_outputFormat", metadata={"description": "application/fhir+ndjson (the default and only format)."}
    )
    elements = fields.String(data_key="_elements", metadata={"description": "Not supported (400 unless lenient)."})
    patient = fields.String(metadata={"description": "Not supported (400 unless lenient)."})
    include_associated_data = fields.String(
        data_key="includeAssociatedData", metadata={"description": "Not supported (400 unless lenient)."}
    )
    type_filter = fields.String(data_key="_typeFilter", metadata={"description": "Not supported (400 unless lenient)."})


#: Loaded keys back to the parameters' names, as the operation reads them.
_PARAMETER_NAMES = {name: field.data_key or name for name, field in KickOffSchema().fields.items()}


#: When the CapabilityStatement last changed (its ``date``, which R4 requires).
CAPABILITY_DATE = "2026-11-30"
#: The Bulk Data IG's definitions the statement points to.
BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"


def capability_statement() -> dict[str, Any]:
    """What this server is: FHIR R4, the resources it exports, the system ``$export``, how to authenticate."""
    base = fhir_base()
    documentation = (
        "Every resource carries the 42 CFR Part 2 security labels (meta.security: v3-Confidentiality R, "
        "v3-ActCode 42CFRPart2 and NORDSCLCD). It is exported in a client's Bundle "
        "(GET /api/v1/clients/{id}/fhir?consent_id=, a disclosure under the client's consent) and in bulk."
    )
    return {
        "resourceType": "CapabilityStatement",
        "id": "clinic",
        "url": f"{base}/metadata",
        "name": "ClinicFhirExport",
        "title": "clinic: FHIR R4 export of client records",
        "status": "active",
        "experimental": False,
        "date": CAPABILITY_DATE,
        "publisher": "clinic",
        "description": "The FHIR R4 export of an outpatient opioid-treatment program's client records, every "
        "resource labelled for 42 CFR Part 2. Records are exported, not read or searched one by one.",
        "kind": "instance",
        "instantiates": [BULK_DATA_CAPABILITY],
        "software": {"name": "clinic"},
        "implementation": {"description": "clinic's FHIR endpoint", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", bulk.NDJSON],
        "rest": [
            {
                "mode": "server",
                "documentation": "Bulk export: POST $export (administrators, Prefer: respond-async) answers 202 with "
                "a status URL in Content-Location; the status answers 202 while the export runs, then its manifest; "
                "each file is NDJSON for the same administrator until it expires (docs/fhir.md).",
                "security": {
                    "cors": False,
                    "service": [{"text": "clinic API token (Authorization: Bearer) or a signed-in session"}],
                    "description": "Every request but this one needs a clinic API token (POST /api/v1/auth/tokens) "
                    "or a session; $export, its status and its files need the administrator role, and an "
                    "export's status and files are served only to the administrator who asked for it.",
                },
                "resource": [
                    {"type": resource_type, "documentation": documentation} for resource_type in bulk.exported_types()
                ],
                "operation": [
                    {
                        "name": "export",
                        "definition": EXPORT_DEFINITION,
                        "documentation": "Parameters: _type, _since, _outputFormat (application/fhir+ndjson) and "
                        "clinic's site_id (one site; default every site).",
                    }
                ],
            }
        ],
    }


def _fhir(document: dict[str, Any], status: int = 200, mimetype: str = FHIR_JSON) -> Response:
    return Response(json.dumps(document), status=status, mimetype=mimetype)


def _information(text: str) -> dict[str, Any]:
    return bulk.operation_outcome("informational", text, severity="information")


@blp.errorhandler(bulk.OutcomeError)
def _outcome(error: bulk.OutcomeError) -> Response:
    unit_of_work.fail()
    return _fhir(error.outcome(), error.status)


def _outcome_doc(description: str) -> dict[str, Any]:
    schema = {"type": "object", "description": "A FHIR OperationOutcome (an error's names the parameter at fault)."}
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


_NOT_FOUND = _outcome_doc("Not found: no such export of yours, or it expired or was cancelled.")


@blp.route("/fhir/metadata", methods=["GET"])
@public
@blp.doc(
    responses={
        "200": {
            "description": "The FHIR R4 CapabilityStatement: what clinic exports and how.",
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
        }
    }
)
def metadata() -> Response:
    """The CapabilityStatement (public, as FHIR servers' are: it describes the server, no client's data)."""
    return _fhir(capability_statement())


@blp.route("/fhir/$export", methods=["POST"])
@requires(Permission.BULK_EXPORT)
@blp.arguments(KickOffSchema, location="query")
@blp.doc(
    parameters=[
        {"in": "header", "name": "Prefer", "required": True, "schema": {"type": "string", "example": "respond-async"}}
    ],
    responses={
        "202": {
            **_outcome_doc("Accepted: poll the status URL in Content-Location."),
            "headers": {"Content-Location": {"schema": {"type": "string"}, "description": "The status URL."}},
        },
        "400": _outcome_doc("A parameter or the Prefer header is not what the export takes."),
        "404": _outcome_doc("No such site."),
    },
)
def kick_off(args: dict[str, Any]) -> Response:
    """Export every client record of a site (or of every site) as NDJSON files, on the worker."""
    params = {_PARAMETER_NAMES[key]: value for key, value in args.items()}
    wanted = bulk.parse_request(params, prefer=request.headers.get("Prefer"))
    job = bulk.request_export(authenticated_user(), wanted, request_url=request.url)
    response = _fhir(_information("Accepted: poll the status URL in Content-Location."), 202)
    response.headers["Content-Location"] = url_for("fhir_bulk.export_status", export_id=job.id, _external=True)
    return response


@blp.route("/fhir/exports/<string:export_id>", methods=["GET"])
@requires(Permission.BULK_EXPORT)
@blp.doc(
    responses={
        "200": {
            "description": "Complete: the manifest (transactionTime, request, requiresAccessToken, output, error).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "202": {
            **_outcome_doc("Still running: X-Progress says how far it got; poll again after Retry-After seconds."),
            "headers": {"X-Progress": {"schema": {"type": "string"}}, "Retry-After": {"schema": {"type": "integer"}}},
        },
        "404": _NOT_FOUND,
        "500": _outcome_doc("The export failed."),
    }
)
def export_status(export_id: str) -> Response:
    """An export's status: 202 while it runs, then its manifest."""
    job = bulk.own_export_or_404(export_id, authenticated_user())
    if job.status in (ExportStatus.ACCEPTED, ExportStatus.RUNNING):
        response = _fhir(_information(f"Running: {bulk.progress(job)}."), 202)
        response.headers["X-Progress"] = bulk.progress(job)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if job.status is ExportStatus.FAILED:
        unit_of_work.fail()
        return _fhir(bulk.operation_outcome("exception", f"The export failed ({job.error})."), 500)

    def url_of(file_id: str) -> str:
        return url_for("fhir_bulk.export_file", export_id=job.id, file_id=file_id, _external=True)

    response = _fhir(bulk.manifest(job, url_of), mimetype="application/json")
    response.expires = job.expires_at
    return response


@blp.route("/fhir/exports/<string:export_id>", methods=["DELETE"])
@requires(Permission.BULK_EXPORT)
@blp.doc(responses={"202": _outcome_doc("Cancelled; its files are deleted."), "404": _NOT_FOUND})
def cancel_export(export_id: str) -> Response:
    """Cancel an export (or discard a finished one's files); the status URL answers 404 afterwards."""
    bulk.cancel_export(bulk.own_export_or_404(export_id, authenticated_user()))
    return _fhir(_information("Cancelled; its files are deleted."), 202)


@blp.route("/fhir/exports/<string:export_id>/files/<string:file_id>", methods=["GET"])
@requires(Permission.BULK_EXPORT)
@blp.doc(
    responses={
        "200": {
            "description": "One resource type's resources, one JSON resource per line.",
            "content": {bulk.NDJSON: {"schema": {"type": "string"}}},
        },
        "404": _NOT_FOUND,
    }
)
def export_file(export_id: str, file_id: str) -> Response:
    """One NDJSON file of a completed export, to the administrator who asked for it."""
    job = bulk.own_export_or_404(export_id, authenticated_user())
    path, _entry = bulk.file_to_serve(job, file_id)
    mark_client_data()
    return send_file(path, mimetype=bulk.NDJSON, conditional=False, etag=False, max_age=None)
