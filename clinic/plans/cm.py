"""Contingency management: programs, prizes, and the ledger computed from drug screens.

The ledger is never stored: it is recomputed from the client's screens and recorded prizes on
every read, so correcting or re-recording a screen can never count an earning twice. The rules
themselves are one SQL query in :mod:`clinic.plans.cm_ledger`, which the cm-incentives report sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select

from clinic.audit.operations import record
from clinic.auth.models import User
from clinic.core.errors import abort_problem
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.plans.cm_ledger import annual_cap, ledger_entries
from clinic.plans.models import CMKeptIncentive, CMPrize, CMProgram, CMSchedule, DrugScreen, Plan, PlanStatus

DEFAULT_PARAMS = {
    CMSchedule.ESCALATING_VOUCHER: {"start_cents": 250, "increment_cents": 125, "bonus_cents": 1000, "bonus_every": 3},
    CMSchedule.PRIZE_DRAW: {"max_draws": 8},
}
#: The federal limit on incentives per client per calendar year since 2025 ($750).
DEFAULT_ANNUAL_CAP_CENTS = 75_000


def create_program(
    plan: Plan,
    *,
    actor: User,
    target_substances: list[str],
    schedule: CMSchedule,
    params: dict[str, int] | None = None,
    annual_cap_cents: int | None = None,
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> CMProgram:
    if plan.status is PlanStatus.CLOSED:
        abort_problem(409, "This plan is closed and read-only.", problem="plan-closed")
    allowed = DEFAULT_PARAMS[schedule]
    unknown = sorted(set(params or {}) - set(allowed))
    if unknown:
        abort_problem(
            422,
            "Unknown parameters for this schedule.",
            errors={f"params.{k}": [f"Not a parameter of {schedule.value}."] for k in unknown},
        )
    start = starts_on or utcnow().date()
    if ends_on is not None and ends_on < start:
        abort_problem(
            422, "The end cannot come before the start.", errors={"ends_on": ["Must not be before starts_on."]}
        )
    program = CMProgram(
        plan_id=plan.id,
        client_id=plan.client_id,
        site_id=plan.site_id,
        target_substances=sorted({s.strip().lower() for s in target_substances}),
        schedule=schedule,
        params={**allowed, **(params or {})},
        annual_cap_cents=DEFAULT_ANNUAL_CAP_CENTS if annual_cap_cents is None else annual_cap_cents,
        starts_on=start,
        ends_on=ends_on,
        created_by_id=actor.id,
    )
    db.session.add(program)
    db.session.flush()
    record("cm_program.create", resource="cm_program", resource_id=program.id, client_id=plan.client_id)
    return program


def end_program(program: CMProgram, *, actor: User, ends_on: date | None = None) -> CMProgram:
    """End a program on ``ends_on`` (default today, UTC as the ledger's days): later screens earn nothing in it.

    A program already ended is a 409; an end before its start, or before a sample it already counted
    (what was earned is never taken back), a 422 naming ``ends_on``.
    """
    # Two ends at once: the second waits here, then finds the program ended (PostgreSQL locks the row).
    db.session.refresh(program, with_for_update=True)
    today = utcnow().date()
    if program.ends_on is not None and program.ends_on < today:
        abort_problem(409, f"This program already ended on {program.ends_on.isoformat()}.", problem="program-ended")
    end = ends_on or today
    if end < program.starts_on:
        abort_problem(
            422,
            "The end cannot come before the start.",
            errors={"ends_on": [f"Must not be before the program's start, {program.starts_on.isoformat()}."]},
        )
    entries = ledger_entries(client_ids=[program.client_id])
    last_sample = db.session.scalar(
        select(func.max(entries.c.at)).where(entries.c.program_id == program.id, entries.c.kind != "prize")
    )
    if last_sample is not None and end < last_sample.date():
        day = last_sample.date().isoformat()
        abort_problem(
            422,
            "Screens after that day already count in this program.",
            errors={"ends_on": [f"A screen of {day} counts in this program: end it on {day} or later."]},
        )
    before = program.ends_on
    program.ends_on = end
    program.updated_at = utcnow()
    db.session.flush()
    record(
        "cm_program.update",
        resource="cm_program",
        resource_id=program.id,
        client_id=program.client_id,
        details={"ends_on": end.isoformat(), "was": None if before is None else before.isoformat()},
    )
    return program


def record_prize(program: CMProgram, *, actor: User, prize_cents: int) -> CMPrize:
    if program.schedule is not CMSchedule.PRIZE_DRAW:
        abort_problem(409, "Prizes are drawn only in prize-draw programs.", problem="not-prize-draw")
    prize = CMPrize(program_id=program.id, prize_cents=prize_cents, recorded_by_id=actor.id, drawn_at=utcnow())
    db.session.add(prize)
    db.session.flush()
    record(
        "cm_prize.create",
        resource="cm_prize",
        resource_id=prize.id,
        client_id=program.client_id,
        details={"prize_cents": prize_cents},
    )
    return prize


def ledger(program: CMProgram, *, with_next: bool = False) -> dict[str, Any]:
    """The program's entries in time order, its total, and what the cap leaves this year.

    ``with_next`` adds ``next_earning`` (:func:`next_earning`): what the next sample earns if it
    is negative, from the same rows.
    """
    entries = ledger_entries(client_ids=[program.client_id])
    rows = db.session.execute(
        select(entries).order_by(entries.c.at, entries.c.kind_order, entries.c.program_id, entries.c.entry_id)
    ).all()
    this_year = utcnow().year
    cap = annual_cap(program.client_id, this_year, program=program) or 0
    mine = [r for r in rows if r.program_id == program.id]
    cap_remaining = max(0, cap - sum(r.amount for r in rows if r.year == this_year))
    extra: dict[str, Any] = {}
    if with_next:
        streak = 0
        for row in mine:
            if row.kind != "prize" and not row.kept:
                streak = streak + 1 if row.negative == 1 else 0
        extra["next_earning"] = next_earning(program, streak=streak, cap_remaining_cents=cap_remaining)
    record(
        "cm_program.read",
        resource="cm_program",
        resource_id=program.id,
        client_id=program.client_id,
        details={"via": "ledger"},
    )
    return {
        "program_id": program.id,
        "entries": [
            {
                "at": r.at,
                "kind": r.kind,
                "amount_cents": r.amount,
                "draws": r.draws,
                "drug_screen_id": None if r.kind == "prize" else r.entry_id,
                "kept": bool(r.kept),
                "capped": r.amount < r.earned,
                "earned_before_cap_cents": r.earned,
            }
            for r in mine
        ],
        "total_cents": sum(r.amount for r in mine),
        "cap_remaining_cents": cap_remaining,
        **extra,
    }


def next_earning(program: CMProgram, *, streak: int, cap_remaining_cents: int) -> dict[str, Any] | None:
    """What the program's next sample earns if it is negative, after ``streak`` consecutive negatives.

    The rules of :mod:`clinic.plans.cm_ledger` for k = streak + 1: an escalating voucher's
    ``start + (k-1)·increment`` (plus the bonus on every ``bonus_every``-th), cut to what the cap
    leaves this year; a prize draw's ``min(k, max_draws)`` draws (their prizes count against the cap
    when drawn). None when the program has ended.
    """
    if program.ends_on is not None and program.ends_on < utcnow().date():
        return None
    k = streak + 1
    params = program.params
    if program.schedule is CMSchedule.ESCALATING_VOUCHER:
        every = int(params.get("bonus_every") or 0)
        earned = int(params["start_cents"]) + (k - 1) * int(params["increment_cents"])
        bonus = every > 0 and k % every == 0
        if bonus:
            earned += int(params["bonus_cents"])
        paid = min(earned, cap_remaining_cents)
        return {
            "kind": "voucher",
            "streak": streak,
            "earned_before_cap_cents": earned,
            "amount_cents": paid,
            "capped": paid < earned,
            "bonus": bonus,
            "draws": None,
        }
    draws = min(k, int(params["max_draws"]))
    return {
        "kind": "draws",
        "streak": streak,
        "earned_before_cap_cents": 0,
        "amount_cents": 0,
        "capped": False,
        "bonus": False,
        "draws": draws,
    }


def keep_incentives(screen: DrugScreen) -> list[CMKeptIncentive]:
    """Freeze what ``screen`` earned in each CM program (a voucher paid, draws given), before it is
    marked entered in error: handed to the client, it stays in the ledger and against the cap."""
    entries = ledger_entries(client_ids=[screen.client_id])
    earned = db.session.execute(
        select(entries.c.program_id, entries.c.amount, entries.c.draws).where(
            entries.c.entry_id == screen.id,
            entries.c.kind != "prize",
            entries.c.kept == 0,
            or_(entries.c.amount > 0, entries.c.draws > 0),
        )
    ).all()
    kept = [
        CMKeptIncentive(
            program_id=row.program_id,
            drug_screen_id=screen.id,
            at=screen.collected_at,
            amount_cents=row.amount,
            draws=row.draws,
        )
        for row in earned
    ]
    db.session.add_all(kept)
    for incentive in kept:
        record(
            "cm_program.update",
            resource="cm_program",
            resource_id=incentive.program_id,
            client_id=screen.client_id,
            details={
                "kept_from_drug_screen": screen.id,
                "amount_cents": incentive.amount_cents,
                "draws": incentive.draws,
            },
        )
    return kept


def programs_of_client(client_id: int) -> Sequence[CMProgram]:
    """The client's CM programs under any of their plans, the newest first."""
    return db.session.scalars(
        select(CMProgram)
        .where(CMProgram.client_id == client_id)
        .order_by(CMProgram.starts_on.desc(), CMProgram.id.desc())
    ).all()


def list_programs(plan: Plan) -> Sequence[CMProgram]:
    return db.session.scalars(select(CMProgram).where(CMProgram.plan_id == plan.id).order_by(CMProgram.id)).all()
