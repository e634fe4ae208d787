"""The contingency-management ledger as one SQL query: the one implementation of the CM rules.

Streaks, vouchers, draws, prizes and the annual cap are computed here and nowhere else. The ledger
endpoint (:func:`clinic.plans.cm.ledger`) reads one client's rows of :func:`ledger_entries`; the
``cm-incentives`` report sums everyone's. Calendar dates and years are UTC, as in every report.

A screen entered in error is no sample: it earns nothing and leaves every streak. What it had
earned before (a voucher paid, draws given) was handed to the client and is kept: a fixed entry
(:class:`CMKeptIncentive`, written when the screen was marked) at the screen's time, against the cap.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Subquery,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    union_all,
)

from clinic.core.sql import json_has_text, json_length, utc_date, utc_year
from clinic.extensions import db
from clinic.plans.models import (
    CMKeptIncentive,
    CMPrize,
    CMProgram,
    CMSchedule,
    DrugScreen,
    DrugScreenResult,
    ScreenResult,
)


def active_in(year: Any) -> ColumnElement[bool]:
    """A program is active in a calendar year when its dates overlap it, or when it paid a prize in it.

    The prize clause covers a prize drawn after the program ended: that program pays in that year,
    so its cap counts then too.
    """
    dates_overlap = and_(
        extract("year", CMProgram.starts_on) <= year,
        or_(CMProgram.ends_on.is_(None), extract("year", CMProgram.ends_on) >= year),
    )
    paid_a_prize = exists().where(CMPrize.program_id == CMProgram.id, utc_year(CMPrize.drawn_at) == year)
    return or_(dates_overlap, paid_a_prize)


def annual_cap(client_id: int, year: int, *, program: CMProgram | None = None) -> int | None:
    """The client's cap in ``year``: the lowest of the caps of their programs active that year.

    With ``program``, that program counts as active even when it is not: what it could still pay
    this year would fall under its own cap too.
    """
    active = active_in(literal(year, Integer))
    if program is not None:
        active = or_(active, CMProgram.id == program.id)
    stmt = select(func.min(CMProgram.annual_cap_cents)).where(CMProgram.client_id == client_id, active)
    return db.session.scalar(stmt)


def _samples(client_ids: Any) -> Any:
    """Every (program, screen in the program's window) pair: 1 when the sample counts as negative."""
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
    # Negative: not missed, and every target substance present with a negative result.
    negative = case(
        (DrugScreen.missed.is_(True), 0), (target_negatives == json_length(CMProgram.target_substances), 1), else_=0
    )
    # The windows sort every sample three times: carry only what they need, and join the program's
    # schedule and parameters (parsed from JSON once per program) afterwards.
    samples = (
        select(
            CMProgram.id.label("program_id"),
            DrugScreen.id.label("screen_id"),
            DrugScreen.collected_at.label("at"),
            negative.label("negative"),
        )
        .join(DrugScreen, DrugScreen.client_id == CMProgram.client_id)
        .where(
            DrugScreen.counts(),
            screen_day >= CMProgram.starts_on,
            or_(CMProgram.ends_on.is_(None), screen_day <= CMProgram.ends_on),
        )
    )
    if client_ids is not None:
        samples = samples.where(CMProgram.client_id.in_(client_ids))
    # Materialised: the correlated count runs once per sample, not once per later reference to it.
    return samples.cte("cm_samples").prefix_with("MATERIALIZED")


def _earnings_from_screens(client_ids: Any) -> Any:
    """One entry per sample: the streak k, then the voucher or the draws it earns before the cap."""
    samples = _samples(client_ids)
    order = (samples.c.at, samples.c.screen_id)
    # A run is the samples after one that is not negative; k counts the negatives within a run.
    runs = select(
        samples,
        func.sum(1 - samples.c.negative)
        .over(partition_by=samples.c.program_id, order_by=order, rows=(None, 0))
        .label("run"),
    ).subquery()
    streaked_only = select(
        runs,
        func.sum(runs.c.negative)
        .over(partition_by=(runs.c.program_id, runs.c.run), order_by=(runs.c.at, runs.c.screen_id), rows=(None, 0))
        .label("k"),
    ).subquery()
    param = CMProgram.params
    programs = select(
        CMProgram.id,
        CMProgram.client_id,
        CMProgram.site_id,
        CMProgram.schedule,
        param["start_cents"].as_integer().label("start_cents"),
        param["increment_cents"].as_integer().label("increment_cents"),
        param["bonus_cents"].as_integer().label("bonus_cents"),
        param["bonus_every"].as_integer().label("bonus_every"),
        param["max_draws"].as_integer().label("max_draws"),
    ).subquery()
    s = (
        select(streaked_only, *(c for c in programs.c if c.key != "id"))
        .join(programs, programs.c.id == streaked_only.c.program_id)
        .subquery()
    )
    k = case((s.c.negative == 1, s.c.k), else_=0)
    every = func.coalesce(s.c.bonus_every, 0)
    voucher = case(
        (k == 0, 0),
        else_=s.c.start_cents
        + (k - 1) * s.c.increment_cents
        + case((every > 0, case((k % every == 0, s.c.bonus_cents), else_=0)), else_=0),
    )
    is_voucher = s.c.schedule == CMSchedule.ESCALATING_VOUCHER
    return select(
        s.c.program_id,
        s.c.client_id,
        s.c.site_id,
        s.c.schedule,
        s.c.at,
        literal(0).label("kind_order"),
        s.c.screen_id.label("entry_id"),
        cast(case((is_voucher, literal("voucher")), else_=literal("draws")), String).label("kind"),
        case((is_voucher, voucher), else_=0).label("earned"),
        case((is_voucher, None), (k == 0, 0), (k < s.c.max_draws, k), else_=s.c.max_draws).label("draws"),
        s.c.negative,
        literal(0).label("kept"),
    )


def _prizes(client_ids: Any) -> Any:
    """One entry per prize drawn, worth its value before the cap."""
    stmt = select(
        CMProgram.id,
        CMProgram.client_id,
        CMProgram.site_id,
        CMProgram.schedule,
        CMPrize.drawn_at,
        literal(1),
        CMPrize.id,
        cast(literal("prize"), String),
        CMPrize.prize_cents,
        literal(None),
        literal(0),
        literal(0),
    ).join(CMProgram, CMProgram.id == CMPrize.program_id)
    if client_ids is not None:
        stmt = stmt.where(CMProgram.client_id.in_(client_ids))
    return stmt


def _kept(client_ids: Any) -> Any:
    """One entry per incentive kept from a screen entered in error: its value then, no sample."""
    is_voucher = CMProgram.schedule == CMSchedule.ESCALATING_VOUCHER
    stmt = select(
        CMProgram.id,
        CMProgram.client_id,
        CMProgram.site_id,
        CMProgram.schedule,
        CMKeptIncentive.at,
        literal(0),
        CMKeptIncentive.drug_screen_id,
        cast(case((is_voucher, literal("voucher")), else_=literal("draws")), String),
        CMKeptIncentive.amount_cents,
        CMKeptIncentive.draws,
        literal(0),
        literal(1),
    ).join(CMProgram, CMProgram.id == CMKeptIncentive.program_id)
    if client_ids is not None:
        stmt = stmt.where(CMProgram.client_id.in_(client_ids))
    return stmt


def ledger_entries(*, client_ids: Any = None) -> Subquery:
    """Every CM ledger entry, with the annual cap applied, as one SQL selectable.

    Columns: ``program_id, client_id, site_id, schedule, at, kind_order, entry_id`` (the screen's or
    the prize's id), ``kind`` (voucher, draws, prize), ``earned`` (cents before the cap), ``draws``,
    ``negative`` (1 for a negative sample), ``kept`` (1 for what a screen entered in error had
    earned, kept: no sample), ``year`` (UTC), ``cap`` (the client's cap that year) and ``amount``
    (cents paid). ``client_ids`` (a list or a subquery) limits it to those clients.

    The cap is per client and calendar year, across all their programs: the lowest
    ``annual_cap_cents`` of the programs active that year (:func:`active_in`), even one with no
    entries yet. Entries use it up in time order (screens before prizes at the same instant), and
    the entry that would pass it is cut to what remains.
    """
    both = union_all(_earnings_from_screens(client_ids), _prizes(client_ids), _kept(client_ids)).subquery()
    entries = select(both, utc_year(both.c.at).label("year")).cte("cm_entries").prefix_with("MATERIALIZED")
    client_years = select(entries.c.client_id, entries.c.year).distinct().subquery()
    caps = (
        select(client_years.c.client_id, client_years.c.year, func.min(CMProgram.annual_cap_cents).label("cap"))
        .join(CMProgram, and_(CMProgram.client_id == client_years.c.client_id, active_in(client_years.c.year)))
        .group_by(client_years.c.client_id, client_years.c.year)
        .subquery()
    )
    running = (
        select(
            entries,
            caps.c.cap,
            func.sum(entries.c.earned)
            .over(
                partition_by=(entries.c.client_id, entries.c.year),
                order_by=(entries.c.at, entries.c.kind_order, entries.c.program_id, entries.c.entry_id),
                rows=(None, 0),
            )
            .label("cumulative"),
        )
        .join(caps, and_(caps.c.client_id == entries.c.client_id, caps.c.year == entries.c.year))
        .subquery()
    )
    # Paid so far, capped, after this entry minus before it: the entry crossing the cap gets what remains.
    before = running.c.cumulative - running.c.earned
    capped_now = case((running.c.cumulative < running.c.cap, running.c.cumulative), else_=running.c.cap)
    capped_before = case((before < running.c.cap, before), else_=running.c.cap)
    return select(
        *(c for c in running.c if c.key != "cumulative"), cast(capped_now - capped_before, Integer).label("amount")
    ).subquery("cm_ledger")
