"""Overdose prevention: naloxone held by clients in treatment, and overdoses reported."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Date, String, case, exists, func, literal, or_, select, union_all

from clinic.clients.models import Episode
from clinic.core.sql import add_days
from clinic.extensions import db
from clinic.overdose.models import NaloxoneDispense, OverdoseEvent
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, rate


def _months(ctx: Context) -> Any:
    """The calendar months of the range, each clipped to it: (month "YYYY-MM", first_day, last_day)."""
    parts = []
    year, month = ctx.start.year, ctx.start.month
    while (year, month) <= (ctx.end.year, ctx.end.month):
        first = max(date(year, month, 1), ctx.start)
        last = min(date(year, month, calendar.monthrange(year, month)[1]), ctx.end)
        parts.append(
            select(
                literal(f"{year:04d}-{month:02d}", String).label("month"),
                literal(first, Date).label("first_day"),
                literal(last, Date).label("last_day"),
            )
        )
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return union_all(*parts).subquery("months")


@report(
    "overdose-prevention",
    title="Overdose prevention",
    description=(
        "Per calendar month from `from` to `to`: clients in treatment at the month's end (its last day in the "
        "range), those of them with naloxone dispensed in the NALOXONE_LOOKBACK_DAYS (365) days up to that day, "
        "the naloxone rate, naloxone dispenses in the month, and overdoses reported (fatal among them). "
        "Summary: the same on `to`, overdoses over the range."
    ),
    columns=[
        Column("month", "Month"),
        Column("active_clients", "Clients in treatment", "clients"),
        Column("with_naloxone", "Holding naloxone", "clients"),
        Column("naloxone_rate", "Naloxone rate", "fraction 0..1"),
        Column("naloxone_dispenses", "Naloxone dispenses", "dispenses"),
        Column("overdoses", "Overdoses", "overdoses"),
        Column("fatal_overdoses", "Fatal overdoses", "overdoses"),
    ],
    chart=Chart(
        "bars",
        "month",
        ("overdoses", "fatal_overdoses", "naloxone_dispenses"),
        "Month (to the month's end, or to)",
        "Overdoses and naloxone",
        rate="naloxone_rate",
        headline=(
            ("naloxone_rate", "Holding naloxone"),
            ("overdoses", "Overdoses"),
            ("fatal_overdoses", "Fatal"),
        ),
        undefined="no client in treatment at the month's end",
    ),
    summary_units={
        "naloxone_rate": "fraction",
        "active_clients": "clients",
        "with_naloxone": "clients",
        "overdoses": "overdoses",
        "fatal_overdoses": "overdoses",
    },
)
def overdose_prevention(ctx: Context) -> Result:
    months = _months(ctx)
    lookback = int(current_app.config["NALOXONE_LOOKBACK_DAYS"])
    holds_naloxone = exists().where(
        NaloxoneDispense.client_id == Episode.client_id,
        NaloxoneDispense.dispensed_on <= months.c.last_day,
        NaloxoneDispense.dispensed_on > add_days(months.c.last_day, -lookback),
    )
    # In treatment at the end of the month's last day: the census's rule.
    active_stmt = (
        select(
            months.c.month,
            func.count(func.distinct(Episode.client_id)),
            func.count(func.distinct(case((holds_naloxone, Episode.client_id)))),
        )
        .join(
            Episode,
            (Episode.admitted_on <= months.c.last_day)
            & or_(Episode.discharged_on.is_(None), Episode.discharged_on > months.c.last_day),
        )
        .where(ctx.scope.sites(Episode.site_id), ctx.scope.caseload_clients(Episode.client_id))
        .group_by(months.c.month)
    )
    overdose_stmt = (
        select(
            months.c.month,
            func.count(OverdoseEvent.id),
            func.sum(case((OverdoseEvent.fatal.is_(True), 1), else_=0)),
        )
        .join(OverdoseEvent, OverdoseEvent.occurred_on.between(months.c.first_day, months.c.last_day))
        .where(ctx.scope.sites(OverdoseEvent.site_id), ctx.scope.caseload_clients(OverdoseEvent.client_id))
        .group_by(months.c.month)
    )
    dispense_stmt = (
        select(months.c.month, func.count(NaloxoneDispense.id))
        .join(NaloxoneDispense, NaloxoneDispense.dispensed_on.between(months.c.first_day, months.c.last_day))
        .where(ctx.scope.sites(NaloxoneDispense.site_id), ctx.scope.caseload_clients(NaloxoneDispense.client_id))
        .group_by(months.c.month)
    )
    active = {m: (as_int(n), as_int(w)) for m, n, w in db.session.execute(active_stmt)}
    overdoses = {m: (as_int(n), as_int(f)) for m, n, f in db.session.execute(overdose_stmt)}
    dispenses = {m: as_int(n) for m, n in db.session.execute(dispense_stmt)}
    rows: list[dict[str, Any]] = []
    for month in _month_names(ctx.start, ctx.end):
        clients, holding = active.get(month, (0, 0))
        events, fatal = overdoses.get(month, (0, 0))
        rows.append(
            {
                "month": month,
                "active_clients": clients,
                "with_naloxone": holding,
                "naloxone_rate": rate(holding, clients),
                "naloxone_dispenses": dispenses.get(month, 0),
                "overdoses": events,
                "fatal_overdoses": fatal,
            }
        )
    last = rows[-1]
    summary = {
        "active_clients": last["active_clients"],
        "with_naloxone": last["with_naloxone"],
        "naloxone_rate": last["naloxone_rate"],
        "overdoses": sum(r["overdoses"] for r in rows),
        "fatal_overdoses": sum(r["fatal_overdoses"] for r in rows),
    }
    # Nothing to show (no client in treatment, no dispense, no overdose): no rows, as the other reports.
    if not any(r["active_clients"] + r["naloxone_dispenses"] + r["overdoses"] for r in rows):
        rows = []
    return Result(rows, summary)


def _month_names(start: date, end: date) -> list[str]:
    names, day = [], start.replace(day=1)
    while day <= end:
        names.append(day.strftime("%Y-%m"))
        day = (day + timedelta(days=32)).replace(day=1)
    return names
