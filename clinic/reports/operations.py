"""Running reports: parameters, the caller's scope, the JSON document, and runs on the worker."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from flask import current_app, json
from sqlalchemy import delete, select

from clinic.audit.operations import record
from clinic.auth.models import Role, Site, User
from clinic.core.celery import send_after_commit
from clinic.core.errors import abort_problem
from clinic.core.time import today, utcnow
from clinic.extensions import db
from clinic.reports.models import ReportRun, RunStatus
from clinic.reports.registry import Context, Report, Scope, all_reports, get_report

MAX_RANGE_DAYS = 5 * 366
DEFAULT_RANGE_DAYS = 90


def report_or_404(name: str) -> Report:
    found = get_report(name)
    if found is None:
        abort_problem(404, "No such report.")
    return found


def catalogue() -> list[dict[str, str]]:
    return [{"name": r.name, "title": r.title, "description": r.description} for r in all_reports()]


def resolve_scope(user: User, site_id: int | None) -> Scope:
    """Admins see every site; supervisors their sites; clinicians their own caseload."""
    if user.role is Role.ADMIN:
        if site_id is not None:
            return Scope(frozenset({site_id}))
        return Scope(None)
    sites = frozenset(user.site_ids)
    if site_id is not None:
        if site_id not in sites:
            abort_problem(422, "Not one of your sites.", errors={"site_id": ["Not one of your sites."]})
        sites = frozenset({site_id})
    if user.is_supervisor:
        return Scope(sites)
    return Scope(sites, clinician_id=user.id)


def resolve_params(args: dict[str, Any], user: User) -> tuple[date, date, Scope, dict[str, Any]]:
    end: date = args.get("to") or today()
    start: date = args.get("from_") or end - timedelta(days=DEFAULT_RANGE_DAYS)
    if start > end:
        abort_problem(422, "`from` must not be after `to`.", errors={"from": ["Must not be after to."]})
    if (end - start).days > MAX_RANGE_DAYS:
        abort_problem(422, "The range may span at most 5 years.", errors={"to": ["At most 5 years after from."]})
    scope = resolve_scope(user, args.get("site_id"))
    params = {"from": start.isoformat(), "to": end.isoformat(), "site_id": args.get("site_id")}
    return start, end, scope, params


def build_document(report: Report, *, start: date, end: date, scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    result = report.compute(Context(start=start, end=end, today=today(), scope=scope))
    return {
        "name": report.name,
        "title": report.title,
        "params": params,
        "generated_at": utcnow(),
        "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in report.columns],
        "rows": result.rows,
        "summary": result.summary,
    }


def run_now(report: Report, args: dict[str, Any], user: User) -> dict[str, Any]:
    start, end, scope, params = resolve_params(args, user)
    record("report.read", resource="report", resource_id=report.name, details=params)
    return build_document(report, start=start, end=end, scope=scope, params=params)


#: The names of the range fields in requests, by their loaded key.
_ARG_NAMES = {"from_": "from", "to": "to", "site_id": "site_id"}


def run_arguments(*, query: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A run's range from the query string and the JSON body: either may hold a field; both must agree."""
    clashes = {
        _ARG_NAMES.get(key, key): ["Given differently in the query string and the body."]
        for key in sorted(query.keys() & body.keys())
        if query[key] != body[key]
    }
    if clashes:
        abort_problem(422, "The query string and the body disagree.", errors=clashes)
    return {**query, **body}


def queue_run(report: Report, args: dict[str, Any], user: User) -> ReportRun:
    """Store a run request; the worker computes it after commit."""
    _start, _end, scope, params = resolve_params(args, user)
    stored = {
        **params,
        "scope_site_ids": None if scope.site_ids is None else sorted(scope.site_ids),
        "scope_clinician_id": scope.clinician_id,
    }
    run = ReportRun(
        name=report.name,
        params=stored,
        status=RunStatus.QUEUED,
        requested_by_id=user.id,
        expires_at=utcnow() + timedelta(days=int(current_app.config["REPORT_RUN_RETENTION_DAYS"])),
    )
    db.session.add(run)
    db.session.flush()
    send_after_commit("clinic.reports.tasks.run_report", run.id)
    record("report.run", resource="report_run", resource_id=run.id, details={"report": report.name, **params})
    return run


def execute_run(run_id: int) -> str:
    """Compute a queued run (the worker's side); safe to call twice."""
    run = db.session.get(ReportRun, run_id)
    if run is None or run.status is not RunStatus.QUEUED:
        return "not queued"
    run.status = RunStatus.RUNNING
    run.started_at = utcnow()
    db.session.commit()
    report = get_report(run.name)
    try:
        if report is None:
            raise LookupError(f"unknown report {run.name}")
        p = run.params
        scope = Scope(None if p["scope_site_ids"] is None else frozenset(p["scope_site_ids"]), p["scope_clinician_id"])
        document = build_document(
            report,
            start=date.fromisoformat(p["from"]),
            end=date.fromisoformat(p["to"]),
            scope=scope,
            params={k: p[k] for k in ("from", "to", "site_id")},
        )
        # Stored as JSON, with the instant in RFC 3339 (the JSON encoder would write an HTTP date).
        run.result = json.loads(json.dumps({**document, "generated_at": document["generated_at"].isoformat()}))
        run.status = RunStatus.DONE
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the run for its requester
        db.session.rollback()
        run = db.session.get_one(ReportRun, run_id)
        run.status = RunStatus.FAILED
        run.error = type(exc).__name__
    run.finished_at = utcnow()
    return run.status.value


def scope_label(params: dict[str, Any]) -> str:
    """The sites a document counts, as its chart names them."""
    site_id = params.get("site_id")
    if site_id is None:
        return "all sites in scope"
    site = db.session.get(Site, site_id)
    return site.name if site is not None else f"site {site_id}"


def stored_document(run: ReportRun) -> dict[str, Any]:
    """A finished run's result as the document :func:`build_document` made."""
    if run.result is None:
        abort_problem(409, "The run has not finished.", problem="run-not-done")
    generated = run.result["generated_at"]
    try:
        generated_at = datetime.fromisoformat(generated)
    except ValueError:  # stored before results kept RFC 3339: an HTTP date
        generated_at = parsedate_to_datetime(generated)
    return {**run.result, "generated_at": generated_at}


def own_run_or_404(run_id: int, user: User) -> ReportRun:
    run = db.session.scalars(
        select(ReportRun).where(ReportRun.id == run_id, ReportRun.requested_by_id == user.id)
    ).first()
    if run is None:
        abort_problem(404, "Not found.")
    return run


def expire_runs() -> int:
    """Delete stored results past their expiry."""
    result = db.session.execute(delete(ReportRun).where(ReportRun.expires_at < utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def stale_queued_runs(older_than_seconds: int = 120) -> list[int]:
    """Runs still queued after a while: their task was lost (e.g. the broker restarted empty)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(
        db.session.scalars(
            select(ReportRun.id).where(ReportRun.status == RunStatus.QUEUED, ReportRun.created_at < cutoff)
        )
    )
