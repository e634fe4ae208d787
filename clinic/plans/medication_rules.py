"""The medication safety rules, as data: one table of medications and their limits, one function per rule.

Each rule looks at a :class:`ProposedOrder` (a new order, or an order as a change would leave it)
and returns the rules it breaks, each with its code, the request field it names, what is wrong,
and whether a clinician's ``override_reason`` lets it pass. Every number is a setting
(docs/medications.md): state rules are often stricter than the product's defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from clinic.assessments.models import Assessment
from clinic.audit.operations import record
from clinic.auth.models import Site
from clinic.core.time import local_today, start_of_day, to_local, utcnow
from clinic.extensions import db
from clinic.plans.models import (
    NALTREXONE,
    OPIOID_AGONISTS,
    DrugScreen,
    DrugScreenResult,
    Medication,
    MedicationName,
    MedicationPhase,
    MedicationRule,
    ScreenResult,
)

BUPRENORPHINE = frozenset({MedicationName.BUPRENORPHINE, MedicationName.BUPRENORPHINE_NALOXONE})

#: Screen panels and substances whose positive result means recent opioid exposure.
OPIOID_SUBSTANCES = frozenset(
    {
        "opioids",
        "opiates",
        "opiate",
        "fentanyl",
        "norfentanyl",
        "heroin",
        "6-mam",
        "morphine",
        "codeine",
        "oxycodone",
        "hydrocodone",
        "hydromorphone",
        "oxymorphone",
        "methadone",
        "eddp",
        "buprenorphine",
        "norbuprenorphine",
        "tramadol",
        "meperidine",
        "tapentadol",
    }
)

#: Milligrams in one of each unit a dose may be written in; a volume (mL) has no fixed strength.
_MG_PER_UNIT = {"mg": Decimal(1), "mcg": Decimal("0.001")}


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MedicationLimits:
    """A medication's dose limits, each the name of the setting that holds it (in mg)."""

    medication: MedicationName
    #: Above it the order needs an override_reason (rule dose_above_limit, overridable).
    usual_max_setting: str
    #: Above it the order is refused whatever the reason (rule dose_above_limit, not overridable).
    absolute_max_setting: str
    #: What one dose is: "day" (a daily dose) or "injection" (one injection every four weeks).
    per: str = "day"
    #: The first day's limit (rule methadone_first_dose), when there is one.
    first_day_max_setting: str | None = None
    source: str = ""

    @staticmethod
    def _setting(name: str) -> Decimal:
        return Decimal(str(current_app.config[name]))

    @property
    def usual_max(self) -> Decimal:
        return self._setting(self.usual_max_setting)

    @property
    def absolute_max(self) -> Decimal:
        return self._setting(self.absolute_max_setting)

    @property
    def first_day_max(self) -> Decimal | None:
        return None if self.first_day_max_setting is None else self._setting(self.first_day_max_setting)


LIMITS: dict[MedicationName, MedicationLimits] = {
    limits.medication: limits
    for limits in (
        MedicationLimits(
            MedicationName.BUPRENORPHINE,
            "MED_BUPRENORPHINE_USUAL_MAX_MG",
            "MED_BUPRENORPHINE_ABSOLUTE_MAX_MG",
            source="FDA label (buprenorphine sublingual): target 16 mg, 4-24 mg/day",
        ),
        MedicationLimits(
            MedicationName.BUPRENORPHINE_NALOXONE,
            "MED_BUPRENORPHINE_USUAL_MAX_MG",
            "MED_BUPRENORPHINE_ABSOLUTE_MAX_MG",
            source="FDA label (buprenorphine/naloxone sublingual): target 16 mg, 4-24 mg/day",
        ),
        MedicationLimits(
            MedicationName.METHADONE,
            "MED_METHADONE_USUAL_MAX_MG",
            "MED_METHADONE_ABSOLUTE_MAX_MG",
            first_day_max_setting="MED_METHADONE_FIRST_DAY_MAX_MG",
            source="42 CFR 8.12(h) (initial dose)",
        ),
        MedicationLimits(
            MedicationName.NALTREXONE_ORAL,
            "MED_NALTREXONE_ORAL_USUAL_MAX_MG",
            "MED_NALTREXONE_ORAL_ABSOLUTE_MAX_MG",
            source="FDA label (naltrexone tablets)",
        ),
        MedicationLimits(
            MedicationName.NALTREXONE_XR,
            "MED_NALTREXONE_XR_MAX_MG",
            "MED_NALTREXONE_XR_MAX_MG",
            per="injection",
            source="FDA label (Vivitrol): 380 mg every 4 weeks",
        ),
    )
}


def in_mg(dose: Decimal, unit: str) -> Decimal | None:
    """The dose in mg, or None for a unit without a fixed strength (mL)."""
    factor = _MG_PER_UNIT.get(unit)
    return None if factor is None else dose * factor


# --- what the rules look at --------------------------------------------------------------------


@dataclass(frozen=True)
class ProposedOrder:
    """An order as it would stand if the request were accepted."""

    client_id: int
    site: Site
    medication: MedicationName
    dose: Decimal
    unit: str
    phase: MedicationPhase
    start_on: date
    end_on: date | None
    #: The day ``dose`` takes effect (start_on for a new order, a change's effective_on otherwise).
    dose_effective_on: date
    #: When the first dose is (or was) given; None: see :func:`first_dose_at`.
    first_dose_at: datetime | None = None
    #: The order itself, when the request changes it (it is not its own duplicate).
    medication_id: int | None = None
    #: An order the request ends the day before ``start_on`` (a transfer).
    transfer_from_id: int | None = None


@dataclass(frozen=True)
class BrokenRule:
    rule: MedicationRule
    field: str
    detail: str
    overridable: bool

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule.value, "field": self.field, "detail": self.detail, "overridable": self.overridable}


Rule = Callable[[ProposedOrder], list[BrokenRule]]


def first_dose_at(order: ProposedOrder) -> datetime:
    """When the first dose is: ``first_dose_at`` when given; else now for a dose taking effect on the
    site's today; else the end of that day in the site's zone (so a COWS of that day counts).

    The day is ``dose_effective_on``: ``start_on`` for a new order, the change's day for a change
    to phase induction (a re-induction is judged by the COWS before its own first dose)."""
    if order.first_dose_at is not None:
        return order.first_dose_at
    if order.dose_effective_on == local_today(order.site.timezone):
        return utcnow()
    return start_of_day(order.dose_effective_on + timedelta(days=1), order.site.timezone)


def covered_until(med: Medication) -> date | None:
    """naltrexone_xr: the last day its latest injection covers (None for any other medication).

    An injection covers MED_NALTREXONE_XR_COVERAGE_DAYS days from the day it is given, that day
    included; the order's start counts as the first injection.
    """
    if med.medication is not MedicationName.NALTREXONE_XR:
        return None
    given = med.last_injection_on or med.start_on
    return given + timedelta(days=current_app.config["MED_NALTREXONE_XR_COVERAGE_DAYS"] - 1)


def _other_orders(order: ProposedOrder) -> Sequence[Medication]:
    stmt = select(Medication).where(Medication.client_id == order.client_id).order_by(Medication.start_on)
    if order.medication_id is not None:
        stmt = stmt.where(Medication.id != order.medication_id)
    return db.session.scalars(stmt).all()


def _last_day(med: Medication, order: ProposedOrder) -> date | None:
    """The last day ``med`` acts (None: open-ended): a transfer ends it the day before the new start,
    and a naltrexone XR injection acts until its coverage ends."""
    end = order.start_on - timedelta(days=1) if med.id == order.transfer_from_id else med.end_on
    covered = covered_until(med)
    if end is not None and covered is not None:
        end = max(end, covered)
    return end


def _overlaps(med: Medication, order: ProposedOrder) -> bool:
    last = _last_day(med, order)
    return (order.end_on is None or med.start_on <= order.end_on) and (last is None or last >= order.start_on)


def _describe(med: Medication, order: ProposedOrder) -> str:
    last = _last_day(med, order)
    return f"{med.medication.value} (order {med.id}) from {med.start_on.isoformat()} to " + (
        last.isoformat() if last else "open end"
    )


# --- the rules, in the order they are checked -------------------------------------------------


def methadone_requires_otp(order: ProposedOrder) -> list[BrokenRule]:
    """Methadone for opioid use disorder is dispensed only by an opioid treatment program (42 CFR 8.12)."""
    if order.medication is MedicationName.METHADONE and not order.site.is_otp:
        return [
            BrokenRule(
                MedicationRule.METHADONE_REQUIRES_OTP,
                "medication",
                "This site is not an opioid treatment program (is_otp): methadone for opioid use disorder "
                "is dispensed only by one.",
                overridable=False,
            )
        ]
    return []


def induction_requires_cows(order: ProposedOrder) -> list[BrokenRule]:
    """Buprenorphine induction: a COWS of MED_INDUCTION_MIN_COWS or more administered in the
    MED_INDUCTION_COWS_WINDOW_HOURS before the first dose (TIP 63)."""
    if order.medication not in BUPRENORPHINE or order.phase is not MedicationPhase.INDUCTION:
        return []
    config = current_app.config
    minimum, hours = config["MED_INDUCTION_MIN_COWS"], config["MED_INDUCTION_COWS_WINDOW_HOURS"]
    first = first_dose_at(order)
    scores = db.session.execute(
        select(Assessment.total_score, Assessment.id)
        .where(
            Assessment.client_id == order.client_id,
            Assessment.instrument == "COWS",
            Assessment.superseded_by_id.is_(None),
            Assessment.administered_at >= first - timedelta(hours=hours),
            Assessment.administered_at <= first,
        )
        .order_by(Assessment.administered_at.desc(), Assessment.id.desc())
    ).all()
    if any(score is not None and score >= minimum for score, _id in scores):
        return []
    local = to_local(first, order.site.timezone)
    found = f"the latest scored {scores[0][0]}" if scores else "there is none"
    if scores:  # the refusal shows that score: read, even when the request is refused and rolled back
        record(
            "assessment.read",
            resource="assessment",
            resource_id=scores[0][1],
            client_id=order.client_id,
            details={"via": "medication-rules"},
            even_if_rolled_back=True,
        )
    return [
        BrokenRule(
            MedicationRule.INDUCTION_REQUIRES_COWS,
            "cows",
            f"A buprenorphine induction needs a COWS of {minimum} or more in the {hours} hours before the "
            f"first dose ({local:%Y-%m-%d %H:%M} at the site); {found}.",
            overridable=True,
        )
    ]


def dose_above_limit(order: ProposedOrder) -> list[BrokenRule]:
    """A dose above the medication's usual maximum (overridable) or its absolute maximum (never)."""
    limits = LIMITS[order.medication]
    mg = in_mg(order.dose, order.unit)
    if mg is None:
        return [
            BrokenRule(
                MedicationRule.DOSE_ABOVE_LIMIT,
                "unit",
                f"Give the dose in mg (or mcg): the limits of {order.medication.value} are in mg.",
                overridable=False,
            )
        ]
    per = f"mg per {limits.per}"
    if mg > limits.absolute_max:
        return [
            BrokenRule(
                MedicationRule.DOSE_ABOVE_LIMIT,
                "dose",
                f"{mg.normalize():f} {per} is above the absolute maximum for {order.medication.value} "
                f"({limits.absolute_max.normalize():f} {per}).",
                overridable=False,
            )
        ]
    if mg > limits.usual_max:
        return [
            BrokenRule(
                MedicationRule.DOSE_ABOVE_LIMIT,
                "dose",
                f"{mg.normalize():f} {per} is above the usual maximum for {order.medication.value} "
                f"({limits.usual_max.normalize():f} {per}).",
                overridable=True,
            )
        ]
    return []


def methadone_first_dose(order: ProposedOrder) -> list[BrokenRule]:
    """The first day's methadone above MED_METHADONE_FIRST_DAY_MAX_MG (42 CFR 8.12(h))."""
    limit = LIMITS[order.medication].first_day_max
    if limit is None or order.dose_effective_on != order.start_on:
        return []
    mg = in_mg(order.dose, order.unit)
    if mg is None or mg <= limit:
        return []
    return [
        BrokenRule(
            MedicationRule.METHADONE_FIRST_DOSE,
            "dose",
            f"{mg.normalize():f} mg is above the first day's limit for methadone ({limit.normalize():f} mg).",
            overridable=True,
        )
    ]


def agonist_antagonist_conflict(order: ProposedOrder) -> list[BrokenRule]:
    """Naltrexone while methadone or buprenorphine runs, or an agonist while naltrexone does (a
    naltrexone XR injection acting for MED_NALTREXONE_XR_COVERAGE_DAYS days)."""
    if order.medication in NALTREXONE:
        opposite = OPIOID_AGONISTS
        words = "Naltrexone would overlap an opioid agonist"
    elif order.medication in OPIOID_AGONISTS:
        opposite = NALTREXONE
        words = "An opioid agonist would overlap naltrexone"
    else:
        return []
    clashes = [_describe(m, order) for m in _other_orders(order) if m.medication in opposite and _overlaps(m, order)]
    if not clashes:
        return []
    return [
        BrokenRule(
            MedicationRule.AGONIST_ANTAGONIST_CONFLICT,
            "medication",
            f"{words}: {'; '.join(clashes)}.",
            overridable=True,
        )
    ]


def naltrexone_washout(order: ProposedOrder) -> list[BrokenRule]:
    """Naltrexone less than MED_NALTREXONE_WASHOUT_DAYS after an opioid-positive screen or the end
    of buprenorphine, or MED_NALTREXONE_WASHOUT_METHADONE_DAYS after the end of methadone."""
    if order.medication not in NALTREXONE:
        return []
    config = current_app.config
    days, methadone_days = config["MED_NALTREXONE_WASHOUT_DAYS"], config["MED_NALTREXONE_WASHOUT_METHADONE_DAYS"]
    zone = order.site.timezone
    reasons: list[str] = []
    positives = db.session.execute(
        select(DrugScreen.collected_at, DrugScreenResult.substance)
        .join(DrugScreenResult, DrugScreenResult.screen_id == DrugScreen.id)
        .where(
            DrugScreen.client_id == order.client_id,
            DrugScreen.counts(),
            DrugScreenResult.result == ScreenResult.POSITIVE,
            DrugScreenResult.substance.in_(OPIOID_SUBSTANCES),
            DrugScreen.collected_at >= start_of_day(order.start_on - timedelta(days=days - 1), zone),
            DrugScreen.collected_at < start_of_day(order.start_on + timedelta(days=1), zone),
        )
        .order_by(DrugScreen.collected_at)
    ).all()
    for collected_at, substance in positives:
        reasons.append(f"{substance} positive screen on {to_local(collected_at, zone).date().isoformat()}")
    for med in _other_orders(order):
        if med.medication not in OPIOID_AGONISTS or med.start_on > order.start_on:
            continue
        last = _last_day(med, order)
        if last is None or last >= order.start_on:
            continue  # still running: agonist_antagonist_conflict
        washout = methadone_days if med.medication is MedicationName.METHADONE else days
        if (order.start_on - last).days < washout:
            reasons.append(f"{med.medication.value} ended {last.isoformat()} ({washout} days' washout)")
    if not reasons:
        return []
    return [
        BrokenRule(
            MedicationRule.NALTREXONE_WASHOUT,
            "start_on",
            "Naltrexone this soon after opioid exposure can precipitate withdrawal: " + "; ".join(reasons) + ".",
            overridable=True,
        )
    ]


def duplicate_agonist(order: ProposedOrder) -> list[BrokenRule]:
    """Two opioid agonists at once, unless transfer_from_medication_id ends the first."""
    if order.medication not in OPIOID_AGONISTS:
        return []
    others = [
        _describe(m, order) for m in _other_orders(order) if m.medication in OPIOID_AGONISTS and _overlaps(m, order)
    ]
    if not others:
        return []
    return [
        BrokenRule(
            MedicationRule.DUPLICATE_AGONIST,
            "medication",
            f"Another opioid agonist runs at the same time: {'; '.join(others)}. For a transfer, name it in "
            "transfer_from_medication_id: it then ends the day before this one starts.",
            overridable=True,
        )
    ]


#: Every rule, in the order API.md gives.
RULES: tuple[Rule, ...] = (
    methadone_requires_otp,
    induction_requires_cows,
    dose_above_limit,
    methadone_first_dose,
    agonist_antagonist_conflict,
    naltrexone_washout,
    duplicate_agonist,
)


def check(order: ProposedOrder, rules: Sequence[Rule] = RULES) -> list[BrokenRule]:
    """Every rule of ``rules`` that ``order`` breaks, in order."""
    return [broken for rule in rules for broken in rule(order)]
