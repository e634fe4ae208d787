"""Census, caseload, retention and discharges: reports on episodes of care."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, literal, or_, select

from clinic.auth.models import User
from clinic.clients.models import Client, Episode
from clinic.clients.operations import TEDS_REASONS
from clinic.core.sql import days_between
from clinic.extensions import db
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, median_by, rate


def _length_of_stay() -> Any:
    stay = days_between(Episode.admitted_on, Episode.discharged_on)
    return case((stay < 1, 1), else_=stay)


@report(
    "census",
    title="Census",
    description="Clients in treatment at the end of the day `to` (an open episode of care), by ASAM level of care.",
    columns=[Column("level_of_care", "ASAM level of care"), Column("clients", "Clients", "clients")],
    chart=Chart(
        "bars",
        "level_of_care",
        ("clients",),
        "ASAM level of care",
        "Clients in treatment",
        names="asam_level",
        share=True,
        headline=(("total_clients", "Clients in treatment"),),
        on_date=True,
    ),
    summary_units={"total_clients": "clients"},
)
def census(ctx: Context) -> Result:
    stmt = (
        select(Episode.level_of_care, func.count(func.distinct(Episode.client_id)).label("clients"))
        .join(Client, Client.id == Episode.client_id)
        .where(
            Episode.admitted_on <= ctx.end,
            or_(Episode.discharged_on.is_(None), Episode.discharged_on > ctx.end),
            ctx.scope.sites(Episode.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
        .group_by(Episode.level_of_care)
        .order_by(Episode.level_of_care)
    )
    rows = [{"level_of_care": level, "clients": as_int(n)} for level, n in db.session.execute(stmt)]
    return Result(rows, {"total_clients": sum(r["clients"] for r in rows)})


@report(
    "caseload",
    title="Caseload",
    description="Clients in treatment at the end of the day `to`, by primary clinician.",
    columns=[
        Column("clinician_id", "Clinician id"),
        Column("clinician", "Clinician"),
        Column("clients", "Clients", "clients"),
    ],
    chart=Chart(
        "bars",
        "clinician",
        ("clients",),
        "Primary clinician",
        "Clients in treatment",
        share=True,
        headline=(("clients", "Clients in treatment"), ("clinicians", "Clinicians"), ("unassigned", "Unassigned")),
        on_date=True,
    ),
    summary_units={"clients": "clients", "clinicians": "clinicians", "unassigned": "clients"},
)
def caseload(ctx: Context) -> Result:
    stmt = (
        select(Client.primary_clinician_id, User.name, func.count(func.distinct(Client.id)).label("clients"))
        .join(Episode, Episode.client_id == Client.id)
        .outerjoin(User, User.id == Client.primary_clinician_id)
        .where(
            Episode.admitted_on <= ctx.end,
            or_(Episode.discharged_on.is_(None), Episode.discharged_on > ctx.end),
            ctx.scope.sites(Client.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
        .group_by(Client.primary_clinician_id, User.name)
        .order_by(func.count(func.distinct(Client.id)).desc(), Client.primary_clinician_id)
    )
    rows = [
        {"clinician_id": cid, "clinician": name or "Unassigned", "clients": as_int(n)}
        for cid, name, n in db.session.execute(stmt)
    ]
    return Result(
        rows,
        {
            "clients": sum(r["clients"] for r in rows),
            "clinicians": sum(1 for r in rows if r["clinician_id"] is not None),
            "unassigned": sum(r["clients"] for r in rows if r["clinician_id"] is None),
        },
    )


RETENTION_DAYS = (30, 90, 180)


@report(
    "retention",
    title="Retention in treatment",
    description=(
        "For admissions from `from` to `to`: the share still in treatment 30, 90 and 180 days after admission "
        "(only admissions at least that old count), and the Kaplan-Meier curve of days in treatment "
        "(episodes still open are censored today)."
    ),
    columns=[Column("day", "Days since admission", "days"), Column("survival", "Still in treatment", "fraction 0..1")],
    chart=Chart(
        "survival",
        "day",
        ("survival",),
        "Days since admission",
        "Share still in treatment",
        rate="survival",
        marks=tuple((f"rate_{n}", n) for n in (30, 90, 180)),
        headline=(
            ("admissions", "Admissions"),
            ("rate_30", "Retained 30 days"),
            ("rate_90", "90 days"),
            ("rate_180", "180 days"),
        ),
        undefined="no admission in the range is that many days old yet",
    ),
    summary_units={"admissions": "admissions", "rate_30": "fraction", "rate_90": "fraction", "rate_180": "fraction"},
)
def retention(ctx: Context) -> Result:
    in_range = (
        Episode.admitted_on >= ctx.start,
        Episode.admitted_on <= ctx.end,
        ctx.scope.sites(Episode.site_id),
        ctx.scope.caseload(Client.primary_clinician_id),
    )
    columns = [func.count().label("admissions")]
    for n in RETENTION_DAYS:
        old_enough = days_between(Episode.admitted_on, literal(ctx.today)) >= n
        stayed = or_(Episode.discharged_on.is_(None), days_between(Episode.admitted_on, Episode.discharged_on) >= n)
        columns.append(func.sum(case((old_enough, 1), else_=0)).label(f"eligible_{n}"))
        columns.append(func.sum(case((old_enough & stayed, 1), else_=0)).label(f"retained_{n}"))
    totals = (
        db.session.execute(
            select(*columns).select_from(Episode).join(Client, Client.id == Episode.client_id).where(*in_range)
        )
        .one()
        ._mapping
    )
    summary: dict[str, object] = {"admissions": as_int(totals["admissions"])}
    for n in RETENTION_DAYS:
        eligible, retained = as_int(totals[f"eligible_{n}"]), as_int(totals[f"retained_{n}"])
        summary[f"eligible_{n}"] = eligible
        summary[f"retained_{n}"] = retained
        summary[f"rate_{n}"] = rate(retained, eligible)
    # Kaplan-Meier: counts of discharges (events) and open episodes (censored) per day in treatment.
    duration = case(
        (Episode.discharged_on.is_(None), days_between(Episode.admitted_on, literal(ctx.today))),
        else_=_length_of_stay(),
    )
    event = case((Episode.discharged_on.is_(None), 0), else_=1)
    grouped = db.session.execute(
        select(duration.label("t"), func.sum(event).label("events"), func.count().label("n"))
        .select_from(Episode)
        .join(Client, Client.id == Episode.client_id)
        .where(*in_range)
        .group_by(duration)
        .order_by(duration)
    ).all()
    at_risk = sum(as_int(n) for _t, _e, n in grouped)
    survival = 1.0
    rows = [{"day": 0, "survival": 1.0}] if at_risk else []
    for t, events, n in grouped:
        events_at_t = as_int(events)
        if events_at_t and at_risk:
            survival *= 1 - events_at_t / at_risk
            rows.append({"day": int(t), "survival": round(survival, 4)})
        at_risk -= as_int(n)
    return Result(rows, summary)


@report(
    "discharges",
    title="Discharges",
    description="Episodes discharged from `from` to `to`, by TEDS reason, with the median length of stay "
    "(discharge date minus admission date; a same-day stay counts as 1 day).",
    columns=[
        Column("reason_code", "TEDS reason code"),
        Column("reason", "Reason"),
        Column("discharges", "Discharges", "episodes"),
        Column("median_length_of_stay_days", "Median length of stay", "days"),
    ],
    chart=Chart(
        "bars",
        "reason",
        ("discharges", "median_length_of_stay_days"),
        "Reason for discharge (TEDS)",
        "Discharges",
        names="sentence",
        share=True,
        headline=(("discharges", "Discharges"), ("median_length_of_stay_days", "Median length of stay")),
    ),
    summary_units={"discharges": "episodes", "median_length_of_stay_days": "days"},
)
def discharges(ctx: Context) -> Result:
    stays = (
        select(Episode.discharge_reason_code.label("reason_code"), _length_of_stay().label("stay"))
        .join(Client, Client.id == Episode.client_id)
        .where(
            Episode.discharged_on.is_not(None),
            Episode.discharged_on >= ctx.start,
            Episode.discharged_on <= ctx.end,
            ctx.scope.sites(Episode.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
        .subquery()
    )
    counts: dict[Any, Any] = dict(
        db.session.execute(select(stays.c.reason_code, func.count()).group_by(stays.c.reason_code)).all()
    )
    medians = dict(db.session.execute(median_by(stays, "stay", ["reason_code"])).all())
    overall = db.session.execute(median_by(stays, "stay", [])).scalar()
    rows = [
        {
            "reason_code": code,
            "reason": TEDS_REASONS[code],
            "discharges": as_int(counts[code]),
            "median_length_of_stay_days": medians.get(code),
        }
        for code in sorted(counts)
    ]
    return Result(rows, {"discharges": sum(r["discharges"] for r in rows), "median_length_of_stay_days": overall})
