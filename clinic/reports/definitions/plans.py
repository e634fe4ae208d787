"""Plan reviews: done on time, late, or overdue."""

from __future__ import annotations

from sqlalchemy import case, func, literal, select, union_all

from clinic.auth.models import Site
from clinic.clients.models import Client
from clinic.extensions import db
from clinic.plans.models import Plan, PlanReview, PlanStatus
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, rate


@report(
    "plan-reviews",
    title="Plan reviews",
    description=(
        "Plan reviews that fell due from `from` to `to`, by site: reviewed on or before the due date, reviewed late, "
        "or still overdue (not reviewed, due before today)."
    ),
    columns=[
        Column("site_id", "Site id"),
        Column("site", "Site"),
        Column("due", "Reviews due", "reviews"),
        Column("on_time", "On time", "reviews"),
        Column("late", "Late", "reviews"),
        Column("overdue", "Still overdue", "reviews"),
        Column("on_time_rate", "On-time rate", "fraction 0..1"),
    ],
    chart=Chart(
        "bars",
        "site",
        ("on_time", "late", "overdue"),
        "Site",
        "Plan reviews",
        rate="on_time_rate",
        headline=(("on_time_rate", "On-time rate"), ("due", "Reviews due"), ("overdue", "Still overdue")),
    ),
    summary_units={"on_time_rate": "fraction", "due": "reviews", "overdue": "reviews"},
)
def plan_reviews(ctx: Context) -> Result:
    done = (
        select(
            Plan.site_id.label("site_id"),
            case((PlanReview.reviewed_on <= PlanReview.due_on, 1), else_=0).label("on_time"),
            case((PlanReview.reviewed_on > PlanReview.due_on, 1), else_=0).label("late"),
            literal(0).label("overdue"),
        )
        .join(Plan, Plan.id == PlanReview.plan_id)
        .join(Client, Client.id == Plan.client_id)
        .where(
            PlanReview.due_on >= ctx.start,
            PlanReview.due_on <= ctx.end,
            ctx.scope.sites(Plan.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
    )
    waiting = (
        select(Plan.site_id, literal(0), literal(0), literal(1))
        .join(Client, Client.id == Plan.client_id)
        .where(
            Plan.status != PlanStatus.CLOSED,
            Plan.next_review_on >= ctx.start,
            Plan.next_review_on <= ctx.end,
            Plan.next_review_on < ctx.today,
            ctx.scope.sites(Plan.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
    )
    both = union_all(done, waiting).subquery()
    stmt = (
        select(both.c.site_id, Site.name, func.sum(both.c.on_time), func.sum(both.c.late), func.sum(both.c.overdue))
        .join(Site, Site.id == both.c.site_id)
        .group_by(both.c.site_id, Site.name)
        .order_by(Site.name)
    )
    rows = []
    for site_id, name, on_time_sum, late_sum, overdue_sum in db.session.execute(stmt):
        on_time, late, overdue = as_int(on_time_sum), as_int(late_sum), as_int(overdue_sum)
        due = on_time + late + overdue
        rows.append(
            {
                "site_id": site_id,
                "site": name,
                "due": due,
                "on_time": on_time,
                "late": late,
                "overdue": overdue,
                "on_time_rate": rate(on_time, due),
            }
        )
    totals = {k: sum(r[k] for r in rows) for k in ("due", "on_time", "late", "overdue")}
    return Result(rows, {**totals, "on_time_rate": rate(totals["on_time"], totals["due"])})
