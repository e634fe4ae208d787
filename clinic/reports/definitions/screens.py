"""Drug-screen positivity and contingency-management incentives."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, case, cast, func, literal, or_, select, union_all

from clinic.extensions import db
from clinic.plans.models import CMPrize, CMProgram, CMSchedule, DrugScreen, DrugScreenResult, ScreenResult
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import (
    as_int,
    json_has_text,
    json_int,
    json_length,
    month_text,
    rate,
    utc_date,
    utc_month_start,
    utc_year,
)


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
    chart=Chart("bar", "substance", ("positivity_rate",), "Substance", "Share of screens positive (0-1)"),
    summary_units={"positivity_rate": "fraction"},
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


def ledger_entries(*, client_ids: Any = None) -> Any:
    """Every CM ledger entry, capped, as one SQL query (the same rules as clinic.plans.cm)."""
    target_negatives = (
        select(func.count())
        .where(
            DrugScreenResult.screen_id == DrugScreen.id,
            DrugScreenResult.result == ScreenResult.NEGATIVE,
            json_has_text(CMProgram.target_substances, DrugScreenResult.substance),
        )
        .correlate(DrugScreen, CMProgram)
        .scalar_subquery()
    )
    screen_day = utc_date(DrugScreen.collected_at)
    negative = case(
        (DrugScreen.missed.is_(True), 0), (target_negatives == json_length(CMProgram.target_substances), 1), else_=0
    )
    # The windows below sort every sample three times: carry only what they need, and join the
    # program's schedule and parameters (parsed from JSON once per program) afterwards.
    samples = (
        select(
            CMProgram.id.label("program_id"),
            DrugScreen.id.label("screen_id"),
            DrugScreen.collected_at.label("at"),
            negative.label("negative"),
        )
        .join(DrugScreen, DrugScreen.client_id == CMProgram.client_id)
        .where(screen_day >= CMProgram.starts_on, or_(CMProgram.ends_on.is_(None), screen_day <= CMProgram.ends_on))
    )
    if client_ids is not None:
        samples = samples.where(CMProgram.client_id.in_(client_ids))
    # Materialised: the correlated count runs once per sample, not once per later reference to it.
    samples_q = samples.cte("cm_samples").prefix_with("MATERIALIZED")
    order = (samples_q.c.at, samples_q.c.screen_id)
    grouped = select(
        samples_q,
        func.sum(1 - samples_q.c.negative)
        .over(partition_by=samples_q.c.program_id, order_by=order, rows=(None, 0))
        .label("run"),
    ).subquery()
    streaked_only = select(
        grouped,
        func.sum(grouped.c.negative)
        .over(
            partition_by=(grouped.c.program_id, grouped.c.run),
            order_by=(grouped.c.at, grouped.c.screen_id),
            rows=(None, 0),
        )
        .label("k"),
    ).subquery()
    programs = select(
        CMProgram.id,
        CMProgram.client_id,
        CMProgram.site_id,
        CMProgram.schedule,
        CMProgram.annual_cap_cents.label("cap"),
        json_int(CMProgram.params, "start_cents").label("start_cents"),
        json_int(CMProgram.params, "increment_cents").label("increment_cents"),
        json_int(CMProgram.params, "bonus_cents").label("bonus_cents"),
        json_int(CMProgram.params, "bonus_every").label("bonus_every"),
        json_int(CMProgram.params, "max_draws").label("max_draws"),
    ).subquery()
    streaked = (
        select(
            streaked_only,
            programs.c.client_id,
            programs.c.site_id,
            programs.c.schedule,
            programs.c.cap,
            programs.c.start_cents,
            programs.c.increment_cents,
            programs.c.bonus_cents,
            programs.c.bonus_every,
            programs.c.max_draws,
        )
        .join(programs, programs.c.id == streaked_only.c.program_id)
        .subquery()
    )
    k = case((streaked.c.negative == 1, streaked.c.k), else_=0)
    start, increment = streaked.c.start_cents, streaked.c.increment_cents
    bonus, every, max_draws = streaked.c.bonus_cents, streaked.c.bonus_every, streaked.c.max_draws
    voucher = case(
        (k == 0, 0),
        else_=start
        + (k - 1) * increment
        + case((func.coalesce(every, 0) > 0, case((k % every == 0, bonus), else_=0)), else_=0),
    )
    is_voucher = streaked.c.schedule == CMSchedule.ESCALATING_VOUCHER
    from_screens = select(
        streaked.c.program_id,
        streaked.c.client_id,
        streaked.c.site_id,
        streaked.c.schedule,
        streaked.c.cap,
        streaked.c.at,
        literal(0).label("kind_order"),
        streaked.c.screen_id.label("entry_id"),
        cast(case((is_voucher, literal("voucher")), else_=literal("draws")), String).label("kind"),
        case((is_voucher, voucher), else_=0).label("earned"),
        case((is_voucher, None), (k == 0, 0), (k < max_draws, k), else_=max_draws).label("draws"),
        streaked.c.negative,
    )
    prizes = select(
        CMProgram.id,
        CMProgram.client_id,
        CMProgram.site_id,
        CMProgram.schedule,
        CMProgram.annual_cap_cents,
        CMPrize.drawn_at,
        literal(1),
        CMPrize.id,
        cast(literal("prize"), String),
        CMPrize.prize_cents,
        literal(None),
        literal(0),
    ).join(CMProgram, CMProgram.id == CMPrize.program_id)
    if client_ids is not None:
        prizes = prizes.where(CMProgram.client_id.in_(client_ids))
    entries = union_all(from_screens, prizes).subquery()
    year = utc_year(entries.c.at)
    running = select(
        *entries.c,
        year.label("year"),
        func.min(entries.c.cap).over(partition_by=entries.c.client_id).label("client_cap"),
        func.sum(entries.c.earned)
        .over(
            partition_by=(entries.c.client_id, year),
            order_by=(entries.c.at, entries.c.kind_order, entries.c.program_id, entries.c.entry_id),
            rows=(None, 0),
        )
        .label("cumulative"),
    ).subquery()
    before = running.c.cumulative - running.c.earned
    capped_now = case((running.c.cumulative < running.c.client_cap, running.c.cumulative), else_=running.c.client_cap)
    capped_before = case((before < running.c.client_cap, before), else_=running.c.client_cap)
    return select(running, (capped_now - capped_before).label("amount")).subquery()


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
    chart=Chart("bar", "schedule", ("vouchers_cents", "prizes_cents"), "Schedule", "Incentives paid (cents)"),
    summary_units={"total_cents": "cents"},
)
def cm_incentives(ctx: Context) -> Result:
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
