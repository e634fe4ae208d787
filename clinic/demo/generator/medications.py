# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Medication orders with their dose history, within the medication safety rules (docs/medications.md).

A buprenorphine induction follows a COWS of 8 or more on the day of the first dose; doses stay within
the usual limits, except for the documented overrides a clinic makes: a low-dose ("micro")
induction without waiting for withdrawal, and a buprenorphine dose above the usual maximum. A few
orders have a change scheduled for a coming day, and one entry of a dose history was entered in
error and corrected. Naltrexone starts only after a week of opioid-negative screens (``add_screens``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from clinic.demo.generator.assessments import add_assessment, withdrawal_answers
from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.sites import SiteStaff

BUPRENORPHINE = frozenset({"buprenorphine", "buprenorphine_naloxone"})
AGONISTS = frozenset({"methadone", *BUPRENORPHINE})
NALTREXONE = frozenset({"naltrexone_oral", "naltrexone_xr"})

#: (lowest, highest) daily dose in mg of each medication's usual range, and how often it is given.
DOSES: dict[str, tuple[tuple[int, int], str]] = {
    "methadone": ((30, 120), "daily"),
    "buprenorphine": ((8, 24), "daily"),
    "buprenorphine_naloxone": ((8, 24), "daily"),
    "naltrexone_oral": ((50, 50), "daily"),
    "naltrexone_xr": ((380, 380), "every 28 days"),
}
MICRO_INDUCTION_MG = 1
MICRO_INDUCTION_REASON = (
    "Low-dose (micro) induction while still using fentanyl: buprenorphine started at 1 mg without waiting "
    "for withdrawal, as agreed with the client."
)
HIGH_DOSE_MG = 28
HIGH_DOSE_REASON = "Cravings and fentanyl-positive screens persist at 24 mg; 28 mg with a weekly review."


@dataclass
class Order:
    """A generated medication order, as later builders (the dosing record) need it."""

    id: int
    name: str
    row: Row
    start_on: date
    end_on: date | None
    prescriber_id: int
    #: (effective day, dose) of each entry of the dose history that counts, in order (scheduled ones too).
    steps: list[tuple[date, Decimal]] = field(default_factory=list)

    def dose_on(self, day: date) -> Decimal | None:
        """The dose in force on ``day`` (None when the order does not run that day)."""
        if day < self.start_on or (self.end_on is not None and day > self.end_on):
            return None
        dose = None
        for effective_on, step_dose in self.steps:
            if effective_on <= day:
                dose = step_dose
        return dose

    def next_change_after(self, day: date) -> date | None:
        """The first day after ``day`` on which the dose in force changes (or the order ends, the day after)."""
        for effective_on, _dose in self.steps:
            if effective_on > day:
                return effective_on
        return None if self.end_on is None else self.end_on + timedelta(days=1)


def _dose_change(
    ctx: Context,
    chunk: Chunk,
    medication_id: int,
    day: date,
    dose: int,
    frequency: str,
    phase: str,
    reason: str | None,
    clinician_id: int,
    at: datetime,
) -> Row:
    return ctx.add(
        chunk,
        "medication_dose_changes",
        {
            "id": ctx.ids.take("medication_dose_changes"),
            "medication_id": medication_id,
            "effective_on": day,
            "dose": Decimal(dose),
            "unit": "mg",
            "frequency": frequency,
            "phase": phase,
            "reason": reason,
            "changed_by_id": clinician_id,
            "changed_at": at,
        },
    )


def _override(
    ctx: Context, chunk: Chunk, medication_id: int, rule: str, reason: str, clinician_id: int, at: datetime
) -> None:
    if ctx.with_overrides:
        ctx.add(
            chunk,
            "medication_overrides",
            {
                "id": ctx.ids.take("medication_overrides"),
                "medication_id": medication_id,
                "rule": rule,
                "reason": reason,
                "by_user_id": clinician_id,
                "at": at,
            },
        )


def add_medication(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    plan_id: int,
    admitted_on: date,
    discharged_on: date | None,
    clinician_id: int,
) -> Order | None:
    """Three in four get a medication, titrated to maintenance; returns the order (None: none)."""
    rng = ctx.rng
    if rng.random() > 0.75:
        return None
    if site.spec.is_otp:
        name: str = weighted(
            rng, (("methadone", 60), ("buprenorphine", 25), ("buprenorphine_naloxone", 10), ("naltrexone_xr", 5))
        )
    else:
        name = weighted(
            rng, (("buprenorphine_naloxone", 60), ("buprenorphine", 20), ("naltrexone_xr", 15), ("naltrexone_oral", 5))
        )
    start_on = min(admitted_on + timedelta(days=rng.randrange(0, 10)), discharged_on or ctx.today)
    # Some stop before discharge, leaving a gap in coverage.
    end_on = discharged_on
    if end_on is not None and rng.random() < 0.2 and (end_on - start_on).days > 20:
        end_on = start_on + timedelta(days=rng.randrange(10, (end_on - start_on).days))
    (low, high), frequency = DOSES[name]
    medication_id = ctx.ids.take("medications")
    at = ctx.instant(start_on, 13, 0, site)
    steps = [("induction", low, start_on)]
    if high > low:
        maintenance = rng.randrange(low, high + 1, 2 if high - low > 2 else 1)
        steps.append(("stabilization", (low + maintenance) // 2, start_on + timedelta(days=7)))
        steps.append(("maintenance", maintenance, start_on + timedelta(days=35)))
    else:
        steps = [("maintenance", low, start_on)]
    last = end_on or ctx.today
    steps = [step for step in steps if step[2] <= last]
    reasons: dict[int, str | None] = {}
    override_reason = None
    if name in BUPRENORPHINE:
        override_reason = _buprenorphine_start(ctx, chunk, site, client_id, medication_id, steps, reasons, clinician_id)
    phase, dose, _day = steps[-1]
    row = ctx.add(
        chunk,
        "medications",
        {
            "id": medication_id,
            "plan_id": plan_id,
            "client_id": client_id,
            "site_id": site.site_id,
            "medication": name,
            "dose": Decimal(dose),
            "unit": "mg",
            "frequency": frequency,
            "phase": phase,
            "prescriber_id": clinician_id,
            "start_on": start_on,
            "end_on": end_on,
            "override_reason": override_reason,
            "created_by_id": clinician_id,
            "created_at": at,
            "updated_at": at,
        },
    )
    order = Order(medication_id, name, row, start_on, end_on, clinician_id)
    in_error = len(steps) > 1 and ctx.showcase("entered_in_error", first=1, rate=0.003)
    for index, (step_phase, step_dose, day) in enumerate(steps):
        changed_at = ctx.instant(day, 13, 0, site)
        reason = reasons.get(index, None if day == start_on else "titration")
        if index == 1 and in_error:
            _entered_in_error(ctx, chunk, order, day, step_dose, frequency, step_phase, reason, changed_at)
        _dose_change(ctx, chunk, medication_id, day, step_dose, frequency, step_phase, reason, clinician_id, changed_at)
        order.steps.append((day, Decimal(step_dose)))
    if end_on is None and name in AGONISTS and ctx.showcase("scheduled_change", first=2, rate=0.02):
        _scheduled_change(ctx, chunk, site, order, dose, frequency)
    return order


def _buprenorphine_start(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    medication_id: int,
    steps: list[tuple[str, int, date]],
    reasons: dict[int, str | None],
    clinician_id: int,
) -> str | None:
    """The COWS before an induction, or the override of a micro-induction; sometimes the override of a
    maintenance dose above the usual maximum. Changes ``steps`` and ``reasons``; returns the last override's reason."""
    start_on = steps[0][2]
    at = ctx.instant(start_on, 13, 0, site)
    override_reason = None
    if ctx.showcase("micro_induction", first=1, rate=0.05):
        steps[0] = ("induction", MICRO_INDUCTION_MG, start_on)
        override_reason = MICRO_INDUCTION_REASON
        _override(ctx, chunk, medication_id, "induction_requires_cows", override_reason, clinician_id, at)
    else:
        # The withdrawal scale given before the first dose, that day (TIP 63: COWS of 8 or more).
        answers = withdrawal_answers(ctx, ctx.record_rng, ctx.rules.induction_min_cows, 20)
        add_assessment(
            ctx, chunk, site, client_id, clinician_id, "COWS", ctx.instant(start_on, 11, 30, site), answers, True
        )
    if len(steps) == 3 and ctx.showcase("dose_above_usual", first=1, rate=0.02):
        steps[2] = ("maintenance", min(HIGH_DOSE_MG, ctx.rules.buprenorphine_absolute_max_mg), steps[2][2])
        reasons[2] = "dose raised above the usual maximum"
        override_reason = HIGH_DOSE_REASON
        _override(
            ctx,
            chunk,
            medication_id,
            "dose_above_limit",
            override_reason,
            clinician_id,
            ctx.instant(steps[2][2], 13, 0, site),
        )
    return override_reason


def _entered_in_error(
    ctx: Context,
    chunk: Chunk,
    order: Order,
    day: date,
    dose: int,
    frequency: str,
    phase: str,
    reason: str | None,
    at: datetime,
) -> None:
    """A change typed with the wrong dose minutes before the right one, marked entered in error."""
    step = 10 if order.name == "methadone" else 4
    wrong = dose + step if order.name == "methadone" or dose + step <= 24 else dose - step
    row = _dose_change(
        ctx, chunk, order.id, day, wrong, frequency, phase, reason, order.prescriber_id, at - timedelta(minutes=20)
    )
    row["entered_in_error_at"] = at - timedelta(minutes=5)
    row["entered_in_error_reason"] = f"Wrong dose typed ({wrong} mg for {dose} mg); entered again."
    row["entered_in_error_by_id"] = order.prescriber_id


def _scheduled_change(ctx: Context, chunk: Chunk, site: SiteStaff, order: Order, dose: int, frequency: str) -> None:
    """A change agreed in the last days for a coming day: the order's dose stays the current one until then."""
    record = ctx.record_rng
    day = ctx.today + timedelta(days=record.randrange(3, 15))
    if order.name == "methadone":
        new, phase, reason = dose + 10, "maintenance", "Increase agreed at the visit: cravings in the evening."
        if dose > 60 and record.random() < 0.5:
            new, phase, reason = dose - 10, "taper", "Taper agreed with the client, 10 mg every two weeks."
    else:
        new = min(dose - 2, ctx.rules.buprenorphine_usual_max_mg)
        phase, reason = "taper", "Taper agreed with the client, 2 mg every two weeks."
        if dose <= 4:
            new, phase, reason = dose + 2, "maintenance", "Increase agreed at the medication visit."
    at = ctx.instant(ctx.today - timedelta(days=record.randrange(1, 4)), 15, 0, site)
    _dose_change(ctx, chunk, order.id, day, new, frequency, phase, reason, order.prescriber_id, at)
    order.steps.append((day, Decimal(new)))
    order.row["updated_at"] = at
