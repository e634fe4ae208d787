"""MAT medications: orders, dose history, and the safety rules on starting them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select

from clinic.audit.operations import audit, record
from clinic.auth.models import Role, Site, User
from clinic.clients.models import Client
from clinic.core.errors import abort_problem
from clinic.core.signals import medication_changed
from clinic.core.time import today, utcnow
from clinic.extensions import db
from clinic.plans.models import (
    NALTREXONE,
    OPIOID_AGONISTS,
    DrugScreen,
    DrugScreenResult,
    Medication,
    MedicationDoseChange,
    MedicationName,
    Plan,
    PlanStatus,
    ScreenResult,
)

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
#: Naltrexone within this many days of opioid exposure can precipitate withdrawal.
NALTREXONE_WASHOUT_DAYS = 7


def _milligrams(value: float | Decimal) -> Decimal:
    """Doses are kept exactly, to three decimals (the column's scale)."""
    return Decimal(str(value)).quantize(Decimal("0.001"))


def _check_prescriber(prescriber_id: int, site_id: int) -> None:
    prescriber = db.session.get(User, prescriber_id)
    if (
        prescriber is None
        or prescriber.role is not Role.CLINICIAN
        or not prescriber.is_active
        or site_id not in prescriber.site_ids
    ):
        abort_problem(
            422,
            "The prescriber must be an active clinician of the client's site.",
            errors={"prescriber_id": ["Not a clinician of this site."]},
        )


def recent_opioid_exposure(client_id: int, start_on: date, *, exclude_medication_id: int | None = None) -> list[str]:
    """Why starting naltrexone on ``start_on`` risks precipitated withdrawal (empty when it does not)."""
    window_start = start_on - timedelta(days=NALTREXONE_WASHOUT_DAYS)
    reasons: list[str] = []
    positives = db.session.execute(
        select(DrugScreen.collected_at, DrugScreenResult.substance)
        .join(DrugScreenResult, DrugScreenResult.screen_id == DrugScreen.id)
        .where(
            DrugScreen.client_id == client_id,
            DrugScreenResult.result == ScreenResult.POSITIVE,
            DrugScreenResult.substance.in_(OPIOID_SUBSTANCES),
            DrugScreen.collected_at >= datetime.combine(window_start, time.min).replace(tzinfo=utcnow().tzinfo),
            DrugScreen.collected_at
            < datetime.combine(start_on + timedelta(days=1), time.min).replace(tzinfo=utcnow().tzinfo),
        )
        .order_by(DrugScreen.collected_at)
    ).all()
    for collected_at, substance in positives:
        reasons.append(f"{substance} positive screen on {collected_at.date().isoformat()}")
    agonist_stmt = select(Medication).where(
        Medication.client_id == client_id,
        Medication.medication.in_(OPIOID_AGONISTS),
        Medication.start_on <= start_on,
        or_(Medication.end_on.is_(None), Medication.end_on >= window_start),
    )
    if exclude_medication_id is not None:
        agonist_stmt = agonist_stmt.where(Medication.id != exclude_medication_id)
    for med in db.session.scalars(agonist_stmt):
        until = med.end_on.isoformat() if med.end_on else "ongoing"
        reasons.append(f"{med.medication.value} from {med.start_on.isoformat()} ({until})")
    return reasons


def add_medication(
    plan: Plan,
    *,
    actor: User,
    medication: MedicationName,
    dose: float | Decimal,
    unit: str,
    frequency: str,
    phase: Any,
    prescriber_id: int,
    start_on: date,
    end_on: date | None = None,
    override_reason: str | None = None,
) -> Medication:
    """Order a MAT medication under a plan, enforcing the OTP and naltrexone rules."""
    dose = _milligrams(dose)
    if plan.status is PlanStatus.CLOSED:
        abort_problem(409, "This plan is closed and read-only.", problem="plan-closed")
    site = db.session.get_one(Site, plan.site_id)
    _check_prescriber(prescriber_id, plan.site_id)
    if medication is MedicationName.METHADONE and not site.is_otp:
        abort_problem(
            422,
            "Methadone for opioid use disorder is dispensed only by an opioid treatment program.",
            errors={"medication": ["This site is not an opioid treatment program (is_otp)."]},
        )
    if end_on is not None and end_on < start_on:
        abort_problem(422, "The end cannot come before the start.", errors={"end_on": ["Must not be before start_on."]})
    if medication in NALTREXONE:
        exposure = recent_opioid_exposure(plan.client_id, start_on)
        if exposure and not (override_reason and override_reason.strip()):
            abort_problem(
                422,
                "Naltrexone within 7 days of opioid exposure can precipitate withdrawal; "
                "give override_reason to proceed.",
                errors={"override_reason": ["Required: recent opioid exposure (" + "; ".join(exposure) + ")."]},
                problem="naltrexone-washout",
            )
    med = Medication(
        plan_id=plan.id,
        client_id=plan.client_id,
        site_id=plan.site_id,
        medication=medication,
        dose=dose,
        unit=unit,
        frequency=frequency,
        phase=phase,
        prescriber_id=prescriber_id,
        start_on=start_on,
        end_on=end_on,
        override_reason=override_reason,
        created_by_id=actor.id,
    )
    db.session.add(med)
    db.session.flush()
    db.session.add(
        MedicationDoseChange(
            medication_id=med.id,
            effective_on=start_on,
            dose=dose,
            unit=unit,
            frequency=frequency,
            phase=phase,
            reason="started",
            changed_by_id=actor.id,
        )
    )
    details: dict[str, Any] = {"medication": medication.value}
    if override_reason:
        details["override"] = True
    audit("create", med, details=details)
    medication_changed.send(med, actor=actor, created=True, fields=[])
    return med


def update_medication(med: Medication, changes: dict[str, Any], *, actor: User) -> Medication:
    """Change dose, unit, frequency, phase or end; every dose change is kept in the history."""
    reason = changes.pop("reason", None)
    effective_on = changes.pop("effective_on", None) or today()
    if effective_on < med.start_on:
        abort_problem(
            422,
            "A change cannot take effect before the medication started.",
            errors={"effective_on": ["Must not be before start_on."]},
        )
    if "end_on" in changes:
        if changes["end_on"] is not None and changes["end_on"] < med.start_on:
            abort_problem(
                422, "The end cannot come before the start.", errors={"end_on": ["Must not be before start_on."]}
            )
        med.end_on = changes["end_on"]
    if "dose" in changes:
        changes["dose"] = _milligrams(changes["dose"])
    dosing = {k: v for k, v in changes.items() if k in {"dose", "unit", "frequency", "phase"}}
    if any(getattr(med, k) != v for k, v in dosing.items()):
        for key, value in dosing.items():
            setattr(med, key, value)
        db.session.add(
            MedicationDoseChange(
                medication_id=med.id,
                effective_on=effective_on,
                dose=med.dose,
                unit=med.unit,
                frequency=med.frequency,
                phase=med.phase,
                reason=reason,
                changed_by_id=actor.id,
            )
        )
    med.updated_at = utcnow()
    db.session.flush()
    audit("update", med, details={"fields": sorted(changes)})
    medication_changed.send(med, actor=actor, created=False, fields=sorted(changes))
    return med


def view(med: Medication, dose_history: Sequence[MedicationDoseChange]) -> dict[str, Any]:
    """A medication order with its dose history, as the API shows it."""
    return {
        **{column.key: getattr(med, column.key) for column in Medication.__table__.columns},
        "history": dose_history,
    }


def history(med: Medication) -> Sequence[MedicationDoseChange]:
    return db.session.scalars(
        select(MedicationDoseChange)
        .where(MedicationDoseChange.medication_id == med.id)
        .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
    ).all()


def list_for_client(client: Client) -> list[dict[str, Any]]:
    meds = db.session.scalars(
        select(Medication)
        .where(Medication.client_id == client.id)
        .order_by(Medication.start_on.desc(), Medication.id.desc())
    ).all()
    changes: dict[int, list[MedicationDoseChange]] = {m.id: [] for m in meds}
    if meds:
        for change in db.session.scalars(
            select(MedicationDoseChange)
            .where(MedicationDoseChange.medication_id.in_(list(changes)))
            .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
        ):
            changes[change.medication_id].append(change)
    record("medication.read", resource="medication", client_id=client.id, details={"via": "list"})
    return [view(m, changes[m.id]) for m in meds]


def is_active_on(med: Medication, day: date) -> bool:
    """Whether the order runs on ``day`` (from its start to its end, both included)."""
    return med.start_on <= day and (med.end_on is None or day <= med.end_on)


def counted_history(med: Medication) -> list[MedicationDoseChange]:
    """The order's dose history without the entries marked entered in error, oldest first."""
    return [change for change in history(med) if change.entered_in_error_at is None]


def change_in_force(
    med: Medication, day: date, changes: Sequence[MedicationDoseChange] | None = None
) -> MedicationDoseChange | None:
    """The dose-history entry in force on ``day``: the latest one effective on or before it that
    was not entered in error (None when the order does not run that day)."""
    if not is_active_on(med, day):
        return None
    in_force = None
    for change in counted_history(med) if changes is None else changes:
        if change.entered_in_error_at is None and change.effective_on <= day:
            in_force = change
    return in_force


def dose_on(med: Medication, day: date) -> Decimal | None:
    """The dose in force on ``day`` in the order's unit (None when the order is not active that day).

    Derived from the dose history, so a change dated in the future counts from its day on, and an
    entry marked entered in error never counts.
    """
    change = change_in_force(med, day)
    return None if change is None else change.dose


def covered_until(med: Medication) -> date | None:
    """naltrexone_xr: the last day its latest injection covers (None for any other medication).

    An injection covers MED_NALTREXONE_XR_COVERAGE_DAYS days from the day it is given; the order's
    start counts as the first injection.
    """
    if med.medication is not MedicationName.NALTREXONE_XR:
        return None
    given = med.last_injection_on or med.start_on
    return given + timedelta(days=current_app.config["MED_NALTREXONE_XR_COVERAGE_DAYS"] - 1)


def record_injection(med: Medication, day: date) -> None:
    """A naltrexone XR injection given on ``day``: its coverage runs from the latest injection.

    Called by the dosing record; recording an earlier day than the latest one changes nothing.
    """
    if med.medication is not MedicationName.NALTREXONE_XR:
        raise ValueError(f"{med.medication.value} is not given by injection")
    if med.last_injection_on is None or day > med.last_injection_on:
        med.last_injection_on = day
        db.session.flush()


def active_on(client_id: int, day: date) -> Sequence[Medication]:
    return db.session.scalars(
        select(Medication).where(
            Medication.client_id == client_id,
            Medication.start_on <= day,
            and_(or_(Medication.end_on.is_(None), Medication.end_on >= day)),
        )
    ).all()
