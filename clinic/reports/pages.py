"""The console's reports: each report with its range and site, chart, table, CSV and runs.

Each view mirrors :mod:`clinic.reports.api`: the same permission (``reports:read``), the same
schema for the range, the same operations (a report read live is audited as ``report.read``, a
run queued as ``report.run``). The chart and the CSV are the API's own renderings, fetched by the
browser from the API with the session cookie: an ``<img>`` of same-origin SVG keeps the page's CSP.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Response, request, url_for
from sqlalchemy import select

from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    attempt,
    form_values,
    is_htmx,
    load_form,
    not_found,
    page,
    redirect_to,
)
from clinic.console import visible_id as _visible_id
from clinic.console.dates import long_date
from clinic.core.time import today, utcnow
from clinic.extensions import db
from clinic.reports import operations as ops
from clinic.reports.labels import display_name, format_value
from clinic.reports.models import ReportRun, RunStatus
from clinic.reports.registry import Report, all_reports
from clinic.reports.schemas import ReportArgsSchema

blp = ConsoleBlueprint("report_pages", __name__)


@blp.app_template_filter("report_words")
def report_words(description: str) -> str:
    """A report's description for a reader: the range's fields named as the form names them."""
    return (
        description.replace("the day `to`", "the last day")
        .replace("`from`", "the first day")
        .replace("`to`", "the last day")
        .replace("`", "")
    )


@blp.app_template_filter("report_range")
def _report_range(params: dict[str, Any]) -> str:
    return range_words(params)


#: Ranges longer than this are computed on the worker ("Run in the background"), not while the page loads.
LIVE_RANGE_DAYS = 366
#: The user's recent runs of a report listed under it.
RECENT_RUNS = 5

FIELD_LABELS = {"from": "From", "to": "To", "site_id": "Site"}
STATUS_WORDS = {
    RunStatus.QUEUED.value: ("Waiting to start", "grey"),
    RunStatus.RUNNING.value: ("Running", "blue"),
    RunStatus.DONE.value: ("Ready", "green"),
    RunStatus.FAILED.value: ("Failed", "red"),
}


def _sites(user: User) -> list[Site]:
    """The sites the user may choose: their own; an administrator's, every site."""
    if user.role is Role.ADMIN:
        return list(db.session.scalars(select(Site).order_by(Site.name)))
    return sorted(user.sites, key=lambda site: site.name)


def _scope_words(user: User) -> str:
    if user.role is Role.ADMIN:
        return "Counts of every client at the sites chosen; no client is named."
    if user.is_supervisor:
        return "Counts of the clients at your sites."
    return "Counts of the clients on your own caseload."


@blp.route("/reports", methods=["GET"])
@requires(Permission.REPORTS_READ)
def index() -> Response:
    """Every report, with what it counts."""
    user = authenticated_user()
    return page("reports/index.html", reports=all_reports(), scope_words=_scope_words(user))


def _report_or_404(name: str) -> Report:
    return ops.report_or_404(name)


def _values() -> dict[str, str]:
    """The form's range: what was asked, else the last 90 days to today."""
    end = today()
    asked = {key: request.args.get(key, "").strip() for key in ("from", "to", "site_id")}
    return {
        "from": asked["from"] or (end - timedelta(days=ops.DEFAULT_RANGE_DAYS)).isoformat(),
        "to": asked["to"] or end.isoformat(),
        "site_id": asked["site_id"],
    }


def _form_errors(errors: FormErrors) -> FormErrors:
    """The schema's and the operation's errors under the form's field names."""
    mapped = FormErrors()
    for key, messages in errors.items():
        name = "from" if key == "from_" else key
        mapped.setdefault(name, []).extend(messages)
    mapped.problem = errors.problem
    return mapped


def _query(values: dict[str, Any]) -> str:
    return urlencode({key: value for key, value in values.items() if value not in (None, "")})


def _recent_runs(user: User, report: Report) -> list[ReportRun]:
    return list(
        db.session.scalars(
            select(ReportRun)
            .where(ReportRun.requested_by_id == user.id, ReportRun.name == report.name, ReportRun.expires_at > utcnow())
            .order_by(ReportRun.id.desc())
            .limit(RECENT_RUNS)
        )
    )


def view_of(report: Report, document: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a report document: the summary figures and the table, in words."""
    units = {column["key"]: column["unit"] for column in document["columns"]}
    named = {key for key in (report.chart.x, report.chart.series) if key}
    summary = document.get("summary") or {}
    order = [key for key, _label in report.chart.headline]
    order += [key for key in report.summary_units if key not in order]
    order += [key for key in summary if key not in order]
    labels = dict(report.chart.headline)
    figures = []
    for key in order:
        value = summary.get(key)
        if key not in summary or isinstance(value, (dict, list)):
            continue
        label = labels.get(key) or key.replace("_", " ").capitalize()
        figures.append(
            (label, format_value(value, report.summary_units.get(key, "")) if not isinstance(value, str) else value)
        )
    rows = []
    for row in document["rows"]:
        cells = []
        for column in document["columns"]:
            key = column["key"]
            value = row.get(key)
            if key in named:
                cells.append(display_name(value, report.chart.names))
            elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                cells.append(format_value(value, units.get(key, "")))
            else:
                cells.append(str(value))
        rows.append(cells)
    numeric = [
        not (column["key"] in named or any(isinstance(row.get(column["key"]), str) for row in document["rows"]))
        for column in document["columns"]
    ]
    return {"figures": figures, "columns": document["columns"], "rows": rows, "numeric": numeric}


def range_words(params: dict[str, Any]) -> str:
    """``Sep 1, 2026 to Nov 30, 2026`` (a report counting on one day: ``on Nov 30, 2026``)."""
    start, end = date.fromisoformat(str(params["from"])), date.fromisoformat(str(params["to"]))
    return f"{long_date(start)} to {long_date(end)}"


def _site_name(sites: list[Site], site_id: Any) -> str:
    for site in sites:
        if site_id is not None and str(site.id) == str(site_id):
            return site.name
    return "all sites" if site_id in (None, "") else f"site {site_id}"


@blp.route("/reports/<string:name>", methods=["GET"])
@requires(Permission.REPORTS_READ)
def report(name: str) -> Response:
    """One report over a range and a site: its figures, chart and table, or a run for a long range."""
    user = authenticated_user()
    found = _report_or_404(name)
    sites = _sites(user)
    values = _values()
    site_id = _visible_id(values["site_id"], [site.id for site in sites])
    args, errors = load_form(ReportArgsSchema(), {k: v for k, v in values.items() if v})
    document = None
    too_long = False
    if not errors:
        start: date = args["from_"]
        end: date = args["to"]
        too_long = (end - start).days > LIVE_RANGE_DAYS and start <= end
        if not too_long:
            document, errors = attempt(ops.run_now, found, dict(args), user)
        else:
            _checked, errors = attempt(ops.resolve_params, dict(args), user)
    errors = _form_errors(errors)
    query = _query({"from": values["from"], "to": values["to"], "site_id": site_id})
    api_url = url_for("reports.get_report", name=found.name)
    return page(
        "reports/report.html",
        status=422 if errors else 200,
        report=found,
        values=values,
        errors=errors,
        site_options=[("", "All sites" if user.role is Role.ADMIN else "All your sites")]
        + [(site.id, site.name) for site in sites],
        site_name=_site_name(sites, site_id),
        scope_words=_scope_words(user),
        too_long=too_long,
        live_days=LIVE_RANGE_DAYS,
        shown=view_of(found, document) if document is not None else None,
        document=document,
        chart_url=f"{api_url}?{query}&format=svg" if document is not None else None,
        csv_url=f"{api_url}?{query}&format=csv" if document is not None else None,
        runs=_recent_runs(user, found),
        status_words=STATUS_WORDS,
    )


@blp.route("/reports/<string:name>/runs", methods=["POST"])
@requires(Permission.REPORTS_READ)
def create_run(name: str) -> Response:
    """Run a report in the background (the API's report run); then follow its progress."""
    user = authenticated_user()
    found = _report_or_404(name)
    sites = _sites(user)
    values = form_values()
    site_id = _visible_id(values.get("site_id"), [site.id for site in sites])
    args, errors = load_form(ReportArgsSchema(), {k: v for k, v in values.items() if k in ("from", "to", "site_id")})
    run = None
    if not errors:
        run, errors = attempt(ops.queue_run, found, dict(args), user)
    if run is None:
        query = _query({"from": values.get("from"), "to": values.get("to"), "site_id": site_id})
        return redirect_to(url_for("report_pages.report", name=found.name) + ("?" + query if query else ""))
    return redirect_to(url_for("report_pages.run", name=found.name, run_id=run.id))


@blp.route("/reports/<string:name>/runs/<int:run_id>", methods=["GET"])
@requires(Permission.REPORTS_READ)
def run(name: str, run_id: int) -> Response:
    """A report run: its progress (htmx polls the status every 2 seconds), then its result."""
    user = authenticated_user()
    found = _report_or_404(name)
    the_run = ops.own_run_or_404(run_id, user)
    if the_run.name != found.name:
        not_found()
    document = ops.stored_document(the_run) if the_run.status is RunStatus.DONE and the_run.result else None
    download = url_for("reports.download_run", run_id=the_run.id)
    context: dict[str, Any] = {
        "report": found,
        "run": the_run,
        "status_words": STATUS_WORDS,
        "site_name": _site_name(_sites(user), the_run.params.get("site_id")),
        "shown": view_of(found, document) if document is not None else None,
        "document": document,
        "chart_url": f"{download}?format=svg" if document is not None else None,
        "csv_url": f"{download}?format=csv" if document is not None else None,
        "again_url": url_for("report_pages.report", name=found.name)
        + "?"
        + _query({k: the_run.params.get(k) for k in ("from", "to", "site_id")}),
    }
    if is_htmx() and request.args.get("fragment") == "status":
        return page("reports/_run.html", **context)
    return page("reports/run.html", **context)
