"""MAT continuity and initiation/engagement (IET): reports on medication and early care."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, union_all

from clinic.auth.models import Site
from clinic.clients.models import Episode
from clinic.core.sql import add_days, days_between
from clinic.dosing.models import Dose, DoseRun
from clinic.extensions import db
from clinic.plans.models import Medication, MedicationDoseChange
from clinic.reports.completed_intake import completed_appointment_days
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, rate

#: Days without any MAT coverage before a start for it to count as a new start (HEDIS POD).
NEW_START_CLEAN_DAYS = 60
#: A gap of this many uncovered days or more breaks continuity.
BREAKING_GAP_DAYS = 8
CONTINUITY_DAYS = 180


def _island_starts(rows: Any, partition: Any, order: tuple[Any, ...]) -> Any:
    """Gaps-and-islands over ``rows`` (``start_on``..``end_on`` intervals): SELECT the first row of each island.

    Rows are taken per ``partition`` in ``order``; one begins an island when the days before it left
    uncovered by the rows so far (``prev_end``: the last day any of them covers) reach
    ``BREAKING_GAP_DAYS``. An island ends on the last day covered before the next one begins.

    One window pass (one sort) marks each row first or last of its island: a row is last when the
    next one begins a new island, which is known from the next row's start and the coverage so far.
    A second window over those rows alone gives each first row the coverage so far of its island's
    last row: ``island_end``. The result has the columns of ``rows``, ``prev_end`` and ``island_end``.
    """
    window = {"partition_by": partition, "order_by": order, "rows": (None, -1)}
    marked = select(
        rows,
        func.max(rows.c.end_on).over(**window).label("prev_end"),
        func.lead(rows.c.start_on).over(**window).label("next_start"),
    ).subquery()
    prev_end, start_on, end_on = marked.c.prev_end, marked.c.start_on, marked.c.end_on
    covered_to = case((or_(prev_end.is_(None), end_on > prev_end), end_on), else_=prev_end)
    is_first = or_(prev_end.is_(None), days_between(prev_end, start_on) - 1 >= BREAKING_GAP_DAYS)
    is_last = or_(marked.c.next_start.is_(None), days_between(covered_to, marked.c.next_start) - 1 >= BREAKING_GAP_DAYS)
    keep = [c for c in marked.c if c.name != "next_start"]
    edges = (
        select(
            *keep,
            case((is_first, 1), else_=0).label("is_first"),
            case((is_last, 1), else_=0).label("is_last"),
            covered_to.label("covered_to"),
        )
        .where(or_(is_first, is_last))
        .subquery()
    )
    names = [c.name for c in keep]
    last_of_island = func.lead(edges.c.covered_to).over(
        partition_by=edges.c[partition.name], order_by=tuple(edges.c[c.name] for c in order)
    )
    island_end = case((edges.c.is_last == 1, edges.c.covered_to), else_=last_of_island)
    ends = select(*(edges.c[n] for n in names), edges.c.is_first, island_end.label("island_end")).subquery()
    return select(*(ends.c[n] for n in names), ends.c.island_end).where(ends.c.is_first == 1)


def _dose_runs(ctx: Context, since: date) -> Any:
    """The dosing record's counted coverage of each order, up to today: its runs' first entry id, first and last day.

    The record keeps each order's entries merged where they overlap or touch (``dose_runs``,
    :class:`~clinic.dosing.models.DoseRun`): the stretches of days covered by its entries that are
    not voided. Only days up to today count, so only the stretches that begin by today are read,
    each ending today at the latest: every day of a stretch is covered by an entry that begins on
    it or before, so these are exactly the days up to today that the entries begun by today cover.
    Stretches ending before ``since`` are left out: the days from ``since`` on are covered as the
    entries reaching ``since`` cover them, and a stretch that reaches ``since`` from before it can
    only move the start of an island that begins before any counted start.

    Each stretch stands for its entries in the client's gaps-and-islands, as they would one by one:
    it begins on its first entry's day, and its ``row_id`` is that entry's id (the first in
    (``covered_from``, id) order), so stretches of two orders that begin the same day are ordered as
    their entries were. A stretch that follows another of its order by fewer than ``BREAKING_GAP_DAYS``
    uncovered days can neither begin an island nor be a new start, as none of its entries could, so
    they need no joining first (tried: joining them per order by one more window pass cost more
    than the shorter union saved). An OTP dosed daily has a stretch where it had a row a day.
    """
    end_on = case((DoseRun.covered_until > literal(ctx.today), literal(ctx.today)), else_=DoseRun.covered_until)
    return select(
        DoseRun.first_dose_id.label("row_id"),
        DoseRun.medication_id,
        DoseRun.covered_from.label("start_on"),
        end_on.label("island_end"),
    ).where(DoseRun.covered_from <= literal(ctx.today), DoseRun.covered_until >= literal(since))


def _coverage(ctx: Context, since: date) -> Any:
    """Every interval of MAT coverage that reaches ``since``: from the dosing record at an OTP, else from the order.

    An order whose site is an OTP (``is_otp``) and that has doses in the dosing record is covered
    on the days those doses cover — an observed dose its day, a take-home supply the days it was
    handed over for (``Dose.covered_from``..``covered_until``, up to today) — and voided entries
    count nowhere: an open order on which nobody is dosed is no treatment (HEDIS POD counts
    dispensing days, not open orders). Any other order covers ``start_on``..``end_on`` (no end:
    ongoing, up to today), as before. ``source`` keeps the kinds of ids apart in the ordering.
    The doses come as runs (:func:`_dose_runs`).

    The dosing record of a site begins with its first dose: the days of a dosed order before that
    day, when the program kept its record elsewhere, are covered by the order, so a program that
    starts using the record neither loses its clients' earlier treatment nor sees false new starts.

    An interval that ended before ``since`` is left out: it can change neither whether a start from
    ``since`` + ``NEW_START_CLEAN_DAYS`` on is new (the days after it are uncovered either way) nor
    how far the coverage of such a start reaches.
    """
    runs = _dose_runs(ctx, since).subquery("mat_dose_runs")
    # Whether an order has a counted dose at all: exactly when it has a run.
    dosed = Medication.id.in_(select(DoseRun.medication_id))
    dosed_at_otp = Site.is_otp.is_(True) & dosed
    order_end = func.coalesce(Medication.end_on, literal(ctx.today))
    orders = (
        select(
            Medication.id.label("row_id"),
            literal(0).label("source"),
            Medication.client_id,
            Medication.site_id,
            Medication.medication,
            Medication.start_on,
            order_end.label("end_on"),
        )
        .join(Site, Site.id == Medication.site_id)
        .where(order_end >= literal(since), ~dosed_at_otp)
    )
    doses = (
        select(
            runs.c.row_id,
            literal(1).label("source"),
            Medication.client_id,
            Medication.site_id,
            Medication.medication,
            runs.c.start_on,
            runs.c.island_end.label("end_on"),
        )
        .join(Medication, Medication.id == runs.c.medication_id)
        .join(Site, Site.id == Medication.site_id)
        .where(Site.is_otp.is_(True))
    )
    # The first dose of each OTP: one probe of the (site, day) index per site, not a pass over the record.
    first_dose = (
        select(func.min(Dose.given_on))
        .where(Dose.site_id == Site.id, Dose.voided_at.is_(None))
        .correlate(Site)
        .scalar_subquery()
    )
    record_began = (
        select(Site.id.label("site_id"), first_dose.label("first_on")).where(Site.is_otp.is_(True)).subquery()
    )
    day_before_record = add_days(record_began.c.first_on, -1)
    before_record = (
        select(
            Medication.id.label("row_id"),
            literal(2).label("source"),
            Medication.client_id,
            Medication.site_id,
            Medication.medication,
            Medication.start_on,
            case((order_end < day_before_record, order_end), else_=day_before_record).label("end_on"),
        )
        .join(Site, Site.id == Medication.site_id)
        .join(record_began, record_began.c.site_id == Medication.site_id)
        .where(
            Medication.start_on < record_began.c.first_on,
            order_end >= literal(since),
            day_before_record >= literal(since),
            dosed_at_otp,
        )
    )
    return union_all(orders, doses, before_record).subquery()


def _islands(ctx: Context) -> Any:
    """The first interval of each client's coverage island, with the island's last day and ``new_start``.

    Intervals are taken per client in (start, source, id) order (:func:`_island_starts`). An island's
    first interval is a new start when the days before it left uncovered reach ``NEW_START_CLEAN_DAYS``,
    or nothing came before.
    """
    # Every interval reaches min(its start, today): none that could begin a counted start is left out.
    cover = _coverage(ctx, min(ctx.start - timedelta(days=NEW_START_CLEAN_DAYS), ctx.today))
    firsts = _island_starts(cover, cover.c.client_id, (cover.c.start_on, cover.c.source, cover.c.row_id)).subquery()
    uncovered_before = days_between(firsts.c.prev_end, firsts.c.start_on) - 1
    new_start = or_(firsts.c.prev_end.is_(None), uncovered_before >= NEW_START_CLEAN_DAYS)
    return select(firsts, case((new_start, 1), else_=0).label("new_start")).subquery()


@report(
    "mat-continuity",
    title="MAT continuity",
    description=(
        "New MAT starts from `from` to `to` (a medication start with no MAT coverage in the 60 days before) and the "
        "share of those at least 180 days old that stayed covered for 180 days. Coverage is the union of medication "
        "intervals (no end date = ongoing); a gap of 8 or more uncovered days breaks it, 7 does not. At an opioid "
        "treatment program an order with doses in the dosing record covers only the days dosed (observed) or taken "
        "home, voided entries excluded: an open order on which nobody is dosed is no treatment."
    ),
    columns=[
        Column("medication", "Medication started"),
        Column("new_starts", "New starts", "starts"),
        Column("eligible", "Starts at least 180 days old", "starts"),
        Column("continuous_180", "Covered for 180 days", "starts"),
        Column("rate", "Continuity rate", "fraction 0..1"),
    ],
    chart=Chart(
        "bars",
        "medication",
        ("new_starts", "eligible", "continuous_180"),
        "Medication started",
        "MAT starts",
        rate="rate",
        names="medication",
        headline=(
            ("rate", "Continuity rate"),
            ("continuous_180", "Covered 180 days"),
            ("eligible", "Starts at least 180 days old"),
        ),
        undefined="no start in the range is 180 days old yet",
    ),
    summary_units={"rate": "fraction", "new_starts": "starts", "eligible": "starts", "continuous_180": "starts"},
)
def mat_continuity(ctx: Context) -> Result:
    islands = _islands(ctx)
    eligible = days_between(islands.c.start_on, literal(ctx.today)) >= CONTINUITY_DAYS
    continuous = days_between(islands.c.start_on, islands.c.island_end) + 1 >= CONTINUITY_DAYS
    stmt = (
        select(
            islands.c.medication,
            func.count().label("new_starts"),
            func.sum(case((eligible, 1), else_=0)).label("eligible"),
            func.sum(case((eligible & continuous, 1), else_=0)).label("continuous_180"),
        )
        .where(
            islands.c.new_start == 1,
            islands.c.start_on >= ctx.start,
            islands.c.start_on <= ctx.end,
            ctx.scope.sites(islands.c.site_id),
            ctx.scope.caseload_clients(islands.c.client_id),
        )
        .group_by(islands.c.medication)
        .order_by(islands.c.medication)
    )
    rows = []
    for medication, starts, elig, cont in db.session.execute(stmt):
        rows.append(
            {
                "medication": getattr(medication, "value", medication),
                "new_starts": as_int(starts),
                "eligible": as_int(elig),
                "continuous_180": as_int(cont),
                "rate": rate(as_int(cont), as_int(elig)),
            }
        )
    new_starts = sum(r["new_starts"] for r in rows)
    eligible_total = sum(r["eligible"] for r in rows)
    continuous_total = sum(r["continuous_180"] for r in rows)
    return Result(
        rows,
        {
            "new_starts": new_starts,
            "eligible": eligible_total,
            "continuous_180": continuous_total,
            "rate": rate(continuous_total, eligible_total),
        },
    )


INITIATION_DAYS = 14  # the admission day + 13
ENGAGEMENT_DAYS = 34


def _care_events(ctx: Context) -> Any:
    """Every dated treatment event: completed appointments, medication starts and dose changes.

    Only what has happened by the report's today: a start or a dose change dated ahead (a scheduled
    change) is not care given yet, and an entry entered in error never counts.
    """
    starts = select(Medication.client_id.label("client_id"), Medication.start_on.label("day")).where(
        Medication.start_on <= ctx.today
    )
    changes = (
        select(Medication.client_id.label("client_id"), MedicationDoseChange.effective_on.label("day"))
        .join(Medication, Medication.id == MedicationDoseChange.medication_id)
        .where(
            or_(MedicationDoseChange.reason.is_(None), MedicationDoseChange.reason != "started"),
            MedicationDoseChange.entered_in_error_at.is_(None),
            MedicationDoseChange.effective_on <= ctx.today,
        )
    )
    parts = [starts, changes, *completed_appointment_days()]
    return union_all(*parts).subquery()


@report(
    "iet",
    title="Initiation and engagement (IET)",
    description=(
        "Admissions from `from` to `to`: initiated = a completed appointment or a medication start within 14 days "
        "(admission day + 13); engaged = at least 2 further completed appointments or medication events within 34 "
        "days after initiation."
    ),
    columns=[
        Column("measure", "Measure"),
        Column("clients", "Admissions", "admissions"),
        Column("rate", "Share of admissions", "fraction 0..1"),
    ],
    chart=Chart(
        "funnel",
        "measure",
        ("clients",),
        "Measure",
        "Admissions",
        rate="rate",
        names="iet_measure",
        rate_phrase="of admissions",
        headline=(
            ("initiation_rate", "Initiation rate"),
            ("engagement_rate", "Engagement rate"),
            ("admissions", "Admissions"),
        ),
        undefined="no admissions in the range",
    ),
    summary_units={"initiation_rate": "fraction", "engagement_rate": "fraction", "admissions": "admissions"},
)
def iet(ctx: Context) -> Result:
    events = _care_events(ctx)
    admissions = (
        select(Episode.id.label("episode_id"), Episode.client_id, Episode.admitted_on)
        .where(
            Episode.admitted_on >= ctx.start,
            Episode.admitted_on <= ctx.end,
            ctx.scope.sites(Episode.site_id),
            ctx.scope.caseload_clients(Episode.client_id),
        )
        .subquery()
    )
    # Each admission's events from its day to the last day engagement can reach (one hash join, not a
    # subquery per admission), materialised once: initiation and engagement both read it.
    nearby = (
        select(admissions.c.episode_id, admissions.c.admitted_on, events.c.day)
        .join(events, events.c.client_id == admissions.c.client_id)
        .where(
            events.c.day >= admissions.c.admitted_on,
            events.c.day <= add_days(admissions.c.admitted_on, INITIATION_DAYS - 1 + ENGAGEMENT_DAYS),
        )
        .cte("iet_nearby")
        .prefix_with("MATERIALIZED")
    )
    initiations = (
        select(nearby.c.episode_id, func.min(nearby.c.day).label("initiated_on"))
        .where(nearby.c.day <= add_days(nearby.c.admitted_on, INITIATION_DAYS - 1))
        .group_by(nearby.c.episode_id)
        .subquery()
    )
    later = (
        select(initiations.c.episode_id, func.count().label("events"))
        .join(nearby, nearby.c.episode_id == initiations.c.episode_id)
        .where(
            nearby.c.day > initiations.c.initiated_on,
            nearby.c.day <= add_days(initiations.c.initiated_on, ENGAGEMENT_DAYS),
        )
        .group_by(initiations.c.episode_id)
        .subquery()
    )
    totals = (
        db.session.execute(
            select(
                select(func.count()).select_from(admissions).scalar_subquery().label("admissions"),
                select(func.count()).select_from(initiations).scalar_subquery().label("initiated"),
                select(func.count()).select_from(later).where(later.c.events >= 2).scalar_subquery().label("engaged"),
            )
        )
        .one()
        ._mapping
    )
    n, initiated, engaged = as_int(totals["admissions"]), as_int(totals["initiated"]), as_int(totals["engaged"])
    rows = [
        {"measure": "admissions", "clients": n, "rate": rate(n, n)},
        {"measure": "initiated", "clients": initiated, "rate": rate(initiated, n)},
        {"measure": "engaged", "clients": engaged, "rate": rate(engaged, n)},
    ]
    return Result(
        rows,
        {
            "admissions": n,
            "initiated": initiated,
            "engaged": engaged,
            "initiation_rate": rate(initiated, n),
            "engagement_rate": rate(engaged, n),
        },
    )
