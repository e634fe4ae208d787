"""HTTP endpoints: the report catalogue, reports in JSON/CSV/SVG, and report runs."""

from __future__ import annotations

from typing import Any

from flask import Response, json, stream_with_context, url_for
from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.core.errors import abort_problem
from clinic.extensions import links
from clinic.reports import operations as ops
from clinic.reports.models import ReportRun, RunStatus
from clinic.reports.registry import Report
from clinic.reports.render import csv_lines, svg_chart
from clinic.reports.schemas import (
    DownloadQuerySchema,
    ReportArgsSchema,
    ReportDocumentSchema,
    ReportInfoSchema,
    ReportQuerySchema,
    ReportRunSchema,
    RunCreatedSchema,
)

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Reports")

_RENDERINGS = {
    "200": {
        "description": "The report: JSON (format=json), CSV streamed with a header row (format=csv), or an SVG chart",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ReportDocument"}},
            "text/csv": {"schema": {"type": "string"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
    }
}


def render(report: Report, document: dict[str, Any], fmt: str) -> Response:
    if fmt == "csv":
        keys = [c["key"] for c in document["columns"]]
        response = Response(stream_with_context(csv_lines(keys, iter(document["rows"]))), mimetype="text/csv")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{report.name}_{document["params"]["from"]}_{document["params"]["to"]}.csv"'
        )
        return response
    if fmt == "svg":
        chart = svg_chart(report, json.loads(json.dumps(document)), scope=ops.scope_label(document["params"]))
        return Response(chart, mimetype="image/svg+xml")
    return Response(json.dumps(ReportDocumentSchema().dump(document)), mimetype="application/json")


@blp.route("/reports", methods=["GET"])
@requires(Permission.REPORTS_READ)
@blp.response(200, ReportInfoSchema(many=True))
@blp.doc(**links(200, {"name": "$response.body#/0/name"}, "reports.get_report", "reports.create_run"))
def list_reports() -> list[dict[str, str]]:
    """Every report, with what it counts."""
    return ops.catalogue()


@blp.route("/reports/<string:name>", methods=["GET"])
@requires(Permission.REPORTS_READ)
@blp.arguments(ReportQuerySchema, location="query")
@blp.doc(responses=_RENDERINGS)
def get_report(args: dict[str, Any], name: str) -> Response:
    """A report over `from`..`to` within the caller's scope, as JSON, CSV or an SVG chart."""
    report = ops.report_or_404(name)
    fmt = args.pop("format")
    return render(report, ops.run_now(report, args, authenticated_user()), fmt)


@blp.route("/reports/<string:name>/runs", methods=["POST"])
@requires(Permission.REPORTS_READ)
@blp.arguments(ReportArgsSchema, location="query")
@blp.arguments(
    ReportArgsSchema,
    location="json",
    required=False,
    description="The range and site, here or in the query string (a field given in both must agree).",
)
@blp.response(202, RunCreatedSchema)
@blp.doc(**links(202, {"run_id": "$response.body#/id"}, "reports.get_run", "reports.download_run"))
def create_run(query: dict[str, Any], body: dict[str, Any], name: str) -> dict[str, Any]:
    """Compute a report on the worker (for large ranges); poll the run, then download it."""
    report = ops.report_or_404(name)
    run = ops.queue_run(report, ops.run_arguments(query=query, body=body), authenticated_user())
    return {"id": run.id, "status": run.status.value}


def _run_view(run: ReportRun) -> dict[str, Any]:
    download = url_for("reports.download_run", run_id=run.id) if run.status is RunStatus.DONE else None
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status.value,
        "params": {k: run.params.get(k) for k in ("from", "to", "site_id")},
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "expires_at": run.expires_at,
        "download_url": download,
        "error": run.error,
    }


@blp.route("/report-runs/<int:run_id>", methods=["GET"])
@requires(Permission.REPORTS_READ)
@blp.response(200, ReportRunSchema)
def get_run(run_id: int) -> dict[str, Any]:
    """A run's status, and its download address once done."""
    return _run_view(ops.own_run_or_404(run_id, authenticated_user()))


@blp.route("/report-runs/<int:run_id>/download", methods=["GET"])
@requires(Permission.REPORTS_READ)
@blp.arguments(DownloadQuerySchema, location="query")
@blp.doc(responses=_RENDERINGS)
def download_run(args: dict[str, Any], run_id: int) -> Response:
    """The stored result of a finished run, as JSON, CSV or SVG."""
    run = ops.own_run_or_404(run_id, authenticated_user())
    if run.status is not RunStatus.DONE or run.result is None:
        abort_problem(409, "The run has not finished.", problem="run-not-done")
    report = ops.report_or_404(run.name)
    return render(report, ops.stored_document(run), args["format"])
