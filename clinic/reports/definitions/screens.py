"""Drug-screen positivity and contingency-management incentives."""

from __future__ import annotations

from sqlalchemy import case, func, select

from clinic.core.sql import month_text, utc_date, utc_month_start
from clinic.extensions import db
from clinic.plans.cm_ledger import ledger_entries
from clinic.plans.models import DrugScreen, DrugScreenResult, ScreenResult
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, rate


@report(
    "drug-screens",
    title="Drug screen positivity",
    description=(
        "Per substance and calendar month (UTC) of collection from `from` to `to`: screens with a valid result for "
        "the substance, positives, and the positivity rate. Missed screens and invalid results are left out."
    ),
    columns=[
        Column("month", "Month"),
        Column("substance", "Substance"),
        Column("screens", "Screens", "screens"),
        Column("positives", "Positive", "screens"),
        Column("positivity_rate", "Positivity", "fraction 0..1"),
    ],
    chart=Chart(
        "monthly",
        "month",
        ("screens",),
        "Month of collection (UTC)",
        "Share of screens positive",
        rate="positivity_rate",
        names="substance",
        series="substance",
        numerator="positives",
        rate_phrase="positive",
        headline=(("positivity_rate", "Positive, all substances"), ("screens", "Screens"), ("positives", "Positive")),
    ),
    summary_units={"positivity_rate": "fraction", "screens": "screens", "positives": "screens"},
)
def drug_screens(ctx: Context) -> Result:
    # Grouped by the month's start (PostgreSQL keeps statistics on that expression, so it plans a
    # parallel partial aggregate over the millions of result rows), printed as YYYY-MM after.
    month = utc_month_start(DrugScreen.collected_at)
    stmt = (
        select(
            month_text(month).label("month"),
            DrugScreenResult.substance,
            func.count().label("screens"),
            func.sum(case((DrugScreenResult.result == ScreenResult.POSITIVE, 1), else_=0)).label("positives"),
        )
        .join(DrugScreen, DrugScreen.id == DrugScreenResult.screen_id)
        .where(
            DrugScreen.missed.is_(False),
            DrugScreen.counts(),
            DrugScreenResult.result != ScreenResult.INVALID,
            ctx.during(DrugScreen.collected_at),
            ctx.scope.sites(DrugScreen.site_id),
            ctx.scope.caseload_clients(DrugScreen.client_id),
        )
        .group_by(month, DrugScreenResult.substance)
        .order_by(month, DrugScreenResult.substance)
    )
    rows = [
        {
            "month": m,
            "substance": s,
            "screens": as_int(n),
            "positives": as_int(p),
            "positivity_rate": rate(as_int(p), as_int(n)),
        }
        for m, s, n, p in db.session.execute(stmt)
    ]
    screens = sum(r["screens"] for r in rows)
    positives = sum(r["positives"] for r in rows)
    return Result(rows, {"screens": screens, "positives": positives, "positivity_rate": rate(positives, screens)})


@report(
    "cm-incentives",
    title="Contingency-management incentives",
    description=(
        "Contingency-management activity from `from` to `to` by schedule: programs and clients with a sample or a "
        "prize in the range, negative samples, vouchers and prizes paid in cents (after the annual cap per client), "
        "draws earned, and entries cut by the cap."
    ),
    columns=[
        Column("schedule", "Schedule"),
        Column("programs", "Programs", "programs"),
        Column("clients", "Clients", "clients"),
        Column("negative_samples", "Negative samples", "samples"),
        Column("vouchers_cents", "Vouchers", "cents"),
        Column("prizes_cents", "Prizes", "cents"),
        Column("draws", "Draws", "draws"),
        Column("capped_entries", "Entries cut by the cap", "entries"),
    ],
    chart=Chart(
        "bars",
        "schedule",
        ("vouchers_cents", "prizes_cents", "negative_samples", "clients"),
        "Schedule",
        "Incentives paid",
        names="cm_schedule",
        headline=(("total_cents", "Paid"), ("negative_samples", "Negative samples"), ("programs", "Programs")),
    ),
    summary_units={"total_cents": "cents", "negative_samples": "samples", "programs": "programs"},
)
def cm_incentives(ctx: Context) -> Result:
    # The ledger's own query (the one implementation of the CM rules), summed: it always equals
    # the sum of the client ledgers.
    entries = ledger_entries()
    day = utc_date(entries.c.at)
    stmt = (
        select(
            entries.c.schedule,
            func.count(func.distinct(entries.c.program_id)),
            func.count(func.distinct(entries.c.client_id)),
            func.sum(entries.c.negative),
            func.sum(case((entries.c.kind == "voucher", entries.c.amount), else_=0)),
            func.sum(case((entries.c.kind == "prize", entries.c.amount), else_=0)),
            func.sum(func.coalesce(entries.c.draws, 0)),
            func.sum(case((entries.c.amount < entries.c.earned, 1), else_=0)),
        )
        .where(
            day >= ctx.start,
            day <= ctx.end,
            ctx.scope.sites(entries.c.site_id),
            ctx.scope.caseload_clients(entries.c.client_id),
        )
        .group_by(entries.c.schedule)
        .order_by(entries.c.schedule)
    )
    rows = []
    for schedule, programs, clients, negatives, vouchers, prizes, draws, capped in db.session.execute(stmt):
        rows.append(
            {
                "schedule": getattr(schedule, "value", schedule),
                "programs": as_int(programs),
                "clients": as_int(clients),
                "negative_samples": as_int(negatives),
                "vouchers_cents": as_int(vouchers),
                "prizes_cents": as_int(prizes),
                "draws": as_int(draws),
                "capped_entries": as_int(capped),
            }
        )
    total = sum(r["vouchers_cents"] + r["prizes_cents"] for r in rows)
    return Result(
        rows,
        {
            "total_cents": total,
            "programs": sum(r["programs"] for r in rows),
            "negative_samples": sum(r["negative_samples"] for r in rows),
        },
    )
