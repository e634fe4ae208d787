"""HTTP endpoints: doses, take-home eligibility, the site's dispensing log."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response, json, stream_with_context
from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, requires
from clinic.clients.loaders import load_client
from clinic.core.spreadsheet import as_text
from clinic.dosing import operations as ops
from clinic.dosing.models import Dose, DoseKind
from clinic.dosing.schemas import (
    DispensingLogQuerySchema,
    DispensingLogSchema,
    DoseCreateSchema,
    DosePageSchema,
    DoseQuerySchema,
    DoseSchema,
    EligibilitySchema,
    TakeHomeReviewSchema,
)
from clinic.plans.schemas import EnteredInErrorSchema

blp = Blueprint("dosing", __name__, url_prefix="/api/v1", description="OTP dosing and take-homes")


@blp.route("/clients/<int:client_id>/doses", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(DoseCreateSchema)
@blp.response(201, DoseSchema)
def record_dose(body: dict[str, Any], client_id: int) -> dict[str, Any]:
    """Record a dose observed at the OTP, or a take-home supply; the signed-in clinician dispenses."""
    given_at = body.pop("administered_at", None) if body["kind"] is DoseKind.OBSERVED else body.pop("dispensed_at")
    dose = ops.record_dose(load_client(client_id), actor=authenticated_user(), given_at=given_at, **body)
    return ops.dose_view(dose)


@blp.route("/clients/<int:client_id>/doses", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.arguments(DoseQuerySchema, location="query")
@blp.response(200, DosePageSchema)
def list_doses(args: dict[str, Any], client_id: int) -> dict[str, Any]:
    """The client's doses in `from`..`to` (local days), newest first; voided entries included, marked."""
    page = ops.list_doses(
        load_client(client_id),
        authenticated_user(),
        from_on=args.get("from_"),
        to_on=args.get("to"),
        limit=args["limit"],
        cursor=args["cursor"],
    )
    return {"items": [ops.dose_view(dose) for dose in page.items], "next_cursor": page.next_cursor}


@blp.route("/doses/<int:dose_id>/entered-in-error", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(EnteredInErrorSchema)
@blp.response(200, DoseSchema)
def void_dose(body: dict[str, Any], dose_id: int) -> dict[str, Any]:
    """Mark a dose entered in error: it stays in the record, voided with the reason, and counts nowhere."""
    user = authenticated_user()
    dose = get_scoped_or_404(Dose, dose_id, user)
    return ops.dose_view(ops.void_dose(dose, actor=user, reason=body["reason"]))


@blp.route("/clients/<int:client_id>/take-home-eligibility", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, EligibilitySchema)
def get_take_home_eligibility(client_id: int) -> dict[str, Any]:
    """Time in treatment, today's take-home limit, and the latest review of the criteria."""
    return ops.eligibility(load_client(client_id))


@blp.route("/clients/<int:client_id>/take-home-eligibility", methods=["PUT"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(TakeHomeReviewSchema)
@blp.response(200, EligibilitySchema)
def review_take_homes(body: dict[str, Any], client_id: int) -> dict[str, Any]:
    """Record the clinician's review of the take-home criteria (42 CFR 8.12(i)(2)); the latest stands."""
    client = load_client(client_id)
    ops.record_review(client, actor=authenticated_user(), **body)
    return ops.eligibility(client)


_LOG_RENDERINGS = {
    "200": {
        "description": "The day's record: JSON (format=json), or CSV streamed with a header row (format=csv)",
        "content": {
            "application/json": {"schema": DispensingLogSchema},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return as_text(value)
    if isinstance(value, Decimal):
        return ops.mg(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _csv_lines(entries: list[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    out.writerow(ops.LOG_COLUMNS)
    yield buffer.getvalue()
    for entry in entries:
        buffer.seek(0)
        buffer.truncate(0)
        out.writerow([_cell(entry[column]) for column in ops.LOG_COLUMNS])
        yield buffer.getvalue()


@blp.route("/sites/<int:site_id>/dispensing-log", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.arguments(DispensingLogQuerySchema, location="query")
@blp.doc(responses=_LOG_RENDERINGS)
def dispensing_log(args: dict[str, Any], site_id: int) -> Response:
    """The site's dispensing record of one local day (21 CFR 1304.24), corrections shown as voided."""
    site = ops.load_site(site_id, authenticated_user())
    log = ops.dispensing_log(site, args["date"])
    if args["format"] == "csv":
        response = Response(stream_with_context(_csv_lines(log["items"])), mimetype="text/csv")
        name = f"dispensing-log-{site.id}-{args['date'].isoformat()}.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    return Response(json.dumps(DispensingLogSchema().dump(log)), mimetype="application/json")
