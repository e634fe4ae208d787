"""The intake funnel: from first call to medication."""

from __future__ import annotations

from sqlalchemy import exists, func, select

from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.clients.models import Episode
from clinic.core.sql import days_between, utc_date
from clinic.extensions import db
from clinic.intake.models import IntakeCall
from clinic.plans.models import Medication
from clinic.reports.completed_intake import completed_intake_assessment
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, median_by, rate

STAGES = ("calls", "converted", "assessed", "admitted", "mat_started")
LABELS = {
    "calls": "Calls",
    "converted": "Registered as clients",
    "assessed": "Intake assessment completed",
    "admitted": "Admitted",
    "mat_started": "Started medication",
}


@report(
    "intake-funnel",
    title="Intake funnel",
    description=(
        "Inquiry calls from `from` to `to` and how far each caller went: registered as a client, intake assessment "
        "completed (a completed intake-assessment appointment or a signed assessment), admitted to an episode, "
        "started a MAT medication; with the median days from the call to admission and to medication."
    ),
    columns=[
        Column("stage", "Stage"),
        Column("label", "Stage name"),
        Column("count", "Count", "calls"),
        Column("rate_from_previous", "Share of the previous stage", "fraction 0..1"),
    ],
    chart=Chart(
        "funnel",
        "label",
        ("count",),
        "Stage",
        "Calls reaching the stage",
        rate="rate_from_previous",
        rate_phrase="of the stage before",
        share=True,
        headline=(
            ("calls", "Calls"),
            ("median_days_call_to_admission", "Median from call to admission"),
            ("median_days_call_to_mat", "to medication"),
        ),
        undefined="no caller got that far",
    ),
    summary_units={"calls": "calls", "median_days_call_to_admission": "days", "median_days_call_to_mat": "days"},
)
def intake_funnel(ctx: Context) -> Result:
    call_day = utc_date(IntakeCall.occurred_at)
    first_admission = (
        select(func.min(Episode.admitted_on))
        .where(Episode.client_id == IntakeCall.client_id, Episode.admitted_on >= call_day)
        .scalar_subquery()
    )
    first_mat = (
        select(func.min(Medication.start_on))
        .where(Medication.client_id == IntakeCall.client_id, Medication.start_on >= call_day)
        .scalar_subquery()
    )
    assessed = exists().where(
        Assessment.client_id == IntakeCall.client_id, Assessment.status == AssessmentStatus.SIGNED
    ) | completed_intake_assessment(IntakeCall.client_id)
    # One statement: the per-call work (three lookups per call) is done once, in a materialised
    # CTE, and the counts and both medians are read from it.
    calls = (
        select(
            IntakeCall.id,
            IntakeCall.client_id,
            assessed.label("assessed"),
            days_between(call_day, first_admission).label("to_admission"),
            days_between(call_day, first_mat).label("to_mat"),
        )
        .where(
            ctx.during(IntakeCall.occurred_at),
            ctx.scope.sites(IntakeCall.site_id),
            ctx.scope.caseload_clients(IntakeCall.client_id),
        )
        .cte("funnel_calls")
        .prefix_with("MATERIALIZED")
    )
    admitted = select(calls.c.to_admission).where(calls.c.to_admission.is_not(None)).subquery()
    mat = select(calls.c.to_mat).where(calls.c.to_mat.is_not(None)).subquery()
    counts = (
        db.session.execute(
            select(
                func.count().label("calls"),
                func.count(calls.c.client_id).label("converted"),
                func.sum(func.cast(calls.c.assessed & calls.c.client_id.is_not(None), db.Integer)).label("assessed"),
                func.count(calls.c.to_admission).label("admitted"),
                func.count(calls.c.to_mat).label("mat_started"),
                median_by(admitted, "to_admission", []).scalar_subquery().label("median_admission"),
                median_by(mat, "to_mat", []).scalar_subquery().label("median_mat"),
            )
        )
        .one()
        ._mapping
    )
    median_admission, median_mat = counts["median_admission"], counts["median_mat"]
    rows = []
    previous = None
    for stage in STAGES:
        count = as_int(counts[stage])
        rows.append(
            {
                "stage": stage,
                "label": LABELS[stage],
                "count": count,
                "rate_from_previous": None if previous is None else rate(count, previous),
            }
        )
        previous = count
    summary: dict[str, int | float | None] = {stage: as_int(counts[stage]) for stage in STAGES}
    summary["median_days_call_to_admission"] = median_admission
    summary["median_days_call_to_mat"] = median_mat
    return Result(rows, summary)
