"""Contingency management: programs, prizes, and the ledger computed from drug screens.

The ledger is never stored: it is recomputed from the client's screens and recorded prizes on
every read, so correcting or re-recording a screen can never count an earning twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from clinic.audit.operations import record
from clinic.auth.models import User
from clinic.core.errors import abort_problem
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.plans.models import CMPrize, CMProgram, CMSchedule, DrugScreen, Plan, PlanStatus
from clinic.plans.screens import results_of

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


@dataclass
class Entry:
    at: datetime
    kind: str  # voucher | draws | prize
    program_id: int
    earned_cents: int
    draws: int | None = None
    drug_screen_id: int | None = None
    entry_id: int = 0
    amount_cents: int = 0
    capped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _local_date(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _program_entries(program: CMProgram, zone: ZoneInfo) -> list[Entry]:
    """Earnings of one program from the screens in its window, before the cap."""
    start = datetime.combine(program.starts_on, time.min, tzinfo=zone)
    stmt = select(DrugScreen).where(DrugScreen.client_id == program.client_id, DrugScreen.collected_at >= start)
    if program.ends_on is not None:
        stmt = stmt.where(
            DrugScreen.collected_at < datetime.combine(program.ends_on + timedelta(days=1), time.min, tzinfo=zone)
        )
    screens: Sequence[DrugScreen] = db.session.scalars(stmt.order_by(DrugScreen.collected_at, DrugScreen.id)).all()
    results = results_of([s.id for s in screens])
    params = program.params
    entries: list[Entry] = []
    streak = 0
    for screen in screens:
        found = results[screen.id]
        negative = not screen.missed and all(found.get(s) == "negative" for s in program.target_substances)
        streak = streak + 1 if negative else 0
        if program.schedule is CMSchedule.ESCALATING_VOUCHER:
            earned = 0
            if negative:
                earned = params["start_cents"] + (streak - 1) * params["increment_cents"]
                if params["bonus_every"] and streak % params["bonus_every"] == 0:
                    earned += params["bonus_cents"]
            entries.append(
                Entry(screen.collected_at, "voucher", program.id, earned, drug_screen_id=screen.id, entry_id=screen.id)
            )
        else:
            draws = min(streak, params["max_draws"]) if negative else 0
            entries.append(
                Entry(
                    screen.collected_at,
                    "draws",
                    program.id,
                    0,
                    draws=draws,
                    drug_screen_id=screen.id,
                    entry_id=screen.id,
                )
            )
    for prize in db.session.scalars(select(CMPrize).where(CMPrize.program_id == program.id)):
        entries.append(
            Entry(
                prize.drawn_at, "prize", program.id, prize.prize_cents, entry_id=prize.id, extra={"prize_id": prize.id}
            )
        )
    return entries


def _client_ledger(client_id: int) -> tuple[list[Entry], dict[int, int]]:
    """Every CM entry of the client across programs, with the yearly cap applied in time order.

    The cap is per client: with several programs, the smallest of their caps applies. Program windows
    and calendar years are UTC dates, as in the cm-incentives report, which computes the same in SQL.
    """
    programs = db.session.scalars(select(CMProgram).where(CMProgram.client_id == client_id)).all()
    if not programs:
        return [], {}
    zone = ZoneInfo("UTC")
    cap = min(p.annual_cap_cents for p in programs)
    entries = sorted(
        (e for p in programs for e in _program_entries(p, zone)),
        key=lambda e: (e.at, 0 if e.kind != "prize" else 1, e.program_id, e.entry_id),
    )
    earned_by_year: dict[int, int] = {}
    for entry in entries:
        year = _local_date(entry.at, zone).year
        so_far = earned_by_year.get(year, 0)
        room = max(0, cap - so_far)
        entry.amount_cents = min(entry.earned_cents, room)
        entry.capped = entry.amount_cents < entry.earned_cents
        earned_by_year[year] = so_far + entry.amount_cents
    return entries, earned_by_year


def ledger(program: CMProgram) -> dict[str, Any]:
    """The program's entries in time order, its total, and what the cap leaves this year."""
    entries, earned_by_year = _client_ledger(program.client_id)
    this_year = utcnow().year
    cap = min(
        p.annual_cap_cents
        for p in db.session.scalars(select(CMProgram).where(CMProgram.client_id == program.client_id))
    )
    mine = [e for e in entries if e.program_id == program.id]
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
                "at": e.at,
                "kind": e.kind,
                "amount_cents": e.amount_cents,
                "draws": e.draws,
                "drug_screen_id": e.drug_screen_id,
                "capped": e.capped,
                "earned_before_cap_cents": e.earned_cents,
            }
            for e in mine
        ],
        "total_cents": sum(e.amount_cents for e in mine),
        "cap_remaining_cents": max(0, cap - earned_by_year.get(this_year, 0)),
    }


def list_programs(plan: Plan) -> Sequence[CMProgram]:
    return db.session.scalars(select(CMProgram).where(CMProgram.plan_id == plan.id).order_by(CMProgram.id)).all()
