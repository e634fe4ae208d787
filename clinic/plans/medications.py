"""MAT medications: orders, dose history (scheduled changes, entries entered in error), and the
safety rules (clinic.plans.medication_rules) checked on starting and changing them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select

from clinic.audit.operations import audit, record
from clinic.auth.models import Role, Site, User
from clinic.clients.models import TEDS_DEATH, Client, Episode
from clinic.core.errors import abort_problem
from clinic.core.signals import episode_discharged, medication_changed
from clinic.core.time import local_today, to_local, utcnow
from clinic.extensions import db
from clinic.plans import medication_rules as rules
from clinic.plans.medication_rules import covered_until
from clinic.plans.models import (
    Medication,
    MedicationDoseChange,
    MedicationName,
    MedicationOverride,
    MedicationPhase,
    Plan,
    PlanStatus,
)

__all__ = ["covered_until", "dose_on", "record_injection"]


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


def _site_today(med: Medication | Plan) -> date:
    return local_today(db.session.get_one(Site, med.site_id).timezone)


def _enforce(broken: list[rules.BrokenRule], override_reason: str | None) -> list[rules.BrokenRule]:
    """Refuse the request when it breaks a rule it may not (or gives no reason to override);
    otherwise return the rules the clinician's ``override_reason`` overrides."""
    if not broken:
        return []
    reason = (override_reason or "").strip()
    blocking = [b for b in broken if not b.overridable]
    if blocking or not reason:
        errors: dict[str, list[str]] = {}
        for b in broken:
            errors.setdefault(b.field, []).append(b.detail)
        if blocking:
            codes = ", ".join(b.rule.value for b in blocking)
            detail = f"The order breaks a medication safety rule that cannot be overridden: {codes}."
        else:
            codes = ", ".join(b.rule.value for b in broken)
            detail = f"The order breaks medication safety rules ({codes}); give override_reason to proceed."
        abort_problem(
            422, detail, errors=errors, problem="medication-safety", extra={"rules": [b.as_dict() for b in broken]}
        )
    return broken


def _record_overrides(med: Medication, overridden: list[rules.BrokenRule], reason: str, actor: User) -> list[str]:
    at = utcnow()
    for broken in overridden:
        db.session.add(
            MedicationOverride(
                medication_id=med.id, rule=broken.rule, reason=reason.strip(), by_user_id=actor.id, at=at
            )
        )
    med.override_reason = reason.strip()
    return [b.rule.value for b in overridden]


def _transfer_from(client_id: int, medication_id: int | None, start_on: date) -> Medication | None:
    """The order a transfer ends the day before ``start_on`` (422 on transfer_from_medication_id when it cannot)."""
    if medication_id is None:
        return None
    previous = db.session.get(Medication, medication_id)
    if previous is None or previous.client_id != client_id:
        abort_problem(
            422,
            "The order to transfer from must be one of this client's medications.",
            errors={"transfer_from_medication_id": ["Not a medication of this client."]},
        )
    last_day = start_on - timedelta(days=1)
    if previous.start_on > last_day:
        abort_problem(
            422,
            "The order to transfer from must have started before the new one.",
            errors={"transfer_from_medication_id": ["It does not start before start_on."]},
        )
    if previous.end_on is not None and previous.end_on < last_day:
        abort_problem(
            422,
            "The order to transfer from has already ended.",
            errors={"transfer_from_medication_id": [f"It ended on {previous.end_on.isoformat()}."]},
        )
    return previous


def _lock_orders(row: Medication | Plan) -> Site:
    """Write one client's orders one after the other (PostgreSQL): two orders or changes made at the
    same moment are checked against the safety rules in turn, so neither misses the other.

    The client's row is locked FOR NO KEY UPDATE, which does not hold up rows that only refer to it
    (a dose, a note), until the transaction ends; an order is read again as it stands under the lock.
    Returns the order's site.
    """
    db.session.execute(select(Client.id).where(Client.id == row.client_id).with_for_update(key_share=True))
    if isinstance(row, Medication):
        db.session.refresh(row)
    return db.session.get_one(Site, row.site_id)


def add_medication(
    plan: Plan,
    *,
    actor: User,
    medication: MedicationName,
    dose: float | Decimal,
    unit: str,
    frequency: str,
    phase: MedicationPhase,
    prescriber_id: int,
    start_on: date,
    end_on: date | None = None,
    override_reason: str | None = None,
    first_dose_at: datetime | None = None,
    transfer_from_medication_id: int | None = None,
) -> dict[str, Any]:
    """Order a MAT medication under a plan, enforcing the medication safety rules (medication_rules)."""
    dose = _milligrams(dose)
    if plan.status is PlanStatus.CLOSED:
        abort_problem(409, "This plan is closed and read-only.", problem="plan-closed")
    site = _lock_orders(plan)
    _check_prescriber(prescriber_id, plan.site_id)
    if end_on is not None and end_on < start_on:
        abort_problem(422, "The end cannot come before the start.", errors={"end_on": ["Must not be before start_on."]})
    if first_dose_at is not None and to_local(first_dose_at, site.timezone).date() != start_on:
        abort_problem(
            422,
            "The first dose is given on the day the order starts.",
            errors={"first_dose_at": [f"Must be on start_on ({start_on.isoformat()}) at the site."]},
        )
    previous = _transfer_from(plan.client_id, transfer_from_medication_id, start_on)
    proposed = rules.ProposedOrder(
        client_id=plan.client_id,
        site=site,
        medication=medication,
        dose=dose,
        unit=unit,
        phase=phase,
        start_on=start_on,
        end_on=end_on,
        dose_effective_on=start_on,
        first_dose_at=first_dose_at,
        transfer_from_id=previous.id if previous else None,
    )
    overridden = _enforce(rules.check(proposed), override_reason)
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
        override_reason=override_reason.strip() if override_reason and override_reason.strip() else None,
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
    if overridden:
        details["override"] = True
        details["overridden_rules"] = _record_overrides(med, overridden, override_reason or "", actor)
    if previous is not None:
        previous.end_on = start_on - timedelta(days=1)
        previous.updated_at = utcnow()
        details["transfer_from_medication_id"] = previous.id
        db.session.flush()
        audit("update", previous, details={"fields": ["end_on"], "transfer_to_medication_id": med.id})
        medication_changed.send(previous, actor=actor, created=False, fields=["end_on"])
    db.session.flush()
    audit("create", med, details=details)
    medication_changed.send(med, actor=actor, created=True, fields=[])
    return detail_view(med)


_DOSING_FIELDS = ("dose", "unit", "frequency", "phase")


def _check_first_dose_day(first_dose: datetime | None, effective_on: date, site: Site) -> None:
    """A change's first dose (a re-induction) is given on the day the change takes effect (422 otherwise)."""
    if first_dose is not None and to_local(first_dose, site.timezone).date() != effective_on:
        abort_problem(
            422,
            "The first dose of the change is given on the day it takes effect.",
            errors={"first_dose_at": [f"Must be on effective_on ({effective_on.isoformat()}) at the site."]},
        )


def update_medication(med: Medication, changes: dict[str, Any], *, actor: User) -> dict[str, Any]:
    """Change dose, unit, frequency, phase or end; every dose change is kept in the history.

    A change dated after the site's today is scheduled: the order's dose stays the one in force
    until that day. The safety rules a change can break are checked on the order as it would stand.
    """
    reason = changes.pop("reason", None)
    override_reason = changes.pop("override_reason", None)
    first_dose = changes.pop("first_dose_at", None)
    site = _lock_orders(med)
    site_today = local_today(site.timezone)
    effective_on = changes.pop("effective_on", None) or site_today
    if effective_on < med.start_on:
        abort_problem(
            422,
            "A change cannot take effect before the medication started.",
            errors={"effective_on": ["Must not be before start_on."]},
        )
    _check_first_dose_day(first_dose, effective_on, site)
    new_end = changes.get("end_on", med.end_on)
    if "end_on" in changes and new_end is not None and new_end < med.start_on:
        abort_problem(422, "The end cannot come before the start.", errors={"end_on": ["Must not be before start_on."]})
    if "dose" in changes:
        changes["dose"] = _milligrams(changes["dose"])
    history_now = counted_history(med)
    base = change_in_force(med, effective_on, history_now) or (history_now[-1] if history_now else None)
    current = {k: getattr(base, k) if base is not None else getattr(med, k) for k in _DOSING_FIELDS}
    dosing = {k: v for k, v in changes.items() if k in _DOSING_FIELDS}
    new = {**current, **dosing}
    dosing_changed = any(current[k] != v for k, v in dosing.items())
    # The rules a change can break: its dose (and the first day's), a new induction, a longer order.
    to_check: list[rules.Rule] = []
    if dosing_changed and (new["dose"] != current["dose"] or new["unit"] != current["unit"]):
        to_check += [rules.dose_above_limit, rules.methadone_first_dose]
    induction = MedicationPhase.INDUCTION
    if dosing_changed and new["phase"] is induction and current["phase"] is not induction:
        to_check.append(rules.induction_requires_cows)
    if "end_on" in changes and (new_end is None or (med.end_on is not None and new_end > med.end_on)):
        to_check += [rules.agonist_antagonist_conflict, rules.duplicate_agonist]
    overridden: list[rules.BrokenRule] = []
    if to_check:
        proposed = rules.ProposedOrder(
            client_id=med.client_id,
            site=site,
            medication=med.medication,
            dose=new["dose"],
            unit=new["unit"],
            phase=new["phase"],
            start_on=med.start_on,
            end_on=new_end,
            dose_effective_on=effective_on,
            first_dose_at=first_dose,
            medication_id=med.id,
        )
        ordered = [rule for rule in rules.RULES if rule in to_check]
        overridden = _enforce(rules.check(proposed, ordered), override_reason)
    if "end_on" in changes:
        med.end_on = new_end
    if dosing_changed:
        db.session.add(
            MedicationDoseChange(
                medication_id=med.id,
                effective_on=effective_on,
                dose=new["dose"],
                unit=new["unit"],
                frequency=new["frequency"],
                phase=new["phase"],
                reason=reason,
                changed_by_id=actor.id,
            )
        )
        db.session.flush()
        sync_dose_in_force(med, site_today)
    med.updated_at = utcnow()
    details: dict[str, Any] = {"fields": sorted(changes)}
    if dosing_changed and effective_on > site_today:
        details["scheduled_for"] = effective_on.isoformat()
    if overridden:
        details["override"] = True
        details["overridden_rules"] = _record_overrides(med, overridden, override_reason or "", actor)
    db.session.flush()
    audit("update", med, details=details)
    medication_changed.send(med, actor=actor, created=False, fields=sorted(changes))
    return detail_view(med)


def sync_dose_in_force(med: Medication, day: date) -> list[str]:
    """Make the order's dose, unit, frequency and phase those in force on ``day``; the fields that changed."""
    changes = counted_history(med)
    in_force = change_in_force(med, day, changes)
    if in_force is None:
        # Not running that day: the columns keep the latest entry that has begun, else the first.
        begun = [c for c in changes if c.effective_on <= day]
        in_force = begun[-1] if begun else (changes[0] if changes else None)
    if in_force is None:
        return []
    changed = []
    for key in _DOSING_FIELDS:
        if getattr(med, key) != getattr(in_force, key):
            setattr(med, key, getattr(in_force, key))
            changed.append(key)
    return changed


def apply_due_changes(on: date) -> int:
    """Bring every order whose scheduled change fell due in the last days to the dose in force on
    its site's today (idempotent: run again, it changes nothing). Returns how many changed."""
    candidates = db.session.scalars(
        select(Medication)
        .join(MedicationDoseChange, MedicationDoseChange.medication_id == Medication.id)
        .where(
            MedicationDoseChange.effective_on > on - timedelta(days=7),
            MedicationDoseChange.effective_on <= on + timedelta(days=1),
        )
        .distinct()
    ).all()
    zones: dict[int, str] = {}
    changed = 0
    for med in candidates:
        if med.site_id not in zones:
            zones[med.site_id] = db.session.get_one(Site, med.site_id).timezone
        site_today = local_today(zones[med.site_id])
        fields = sync_dose_in_force(med, site_today)
        if fields:
            med.updated_at = utcnow()
            db.session.flush()
            in_force = change_in_force(med, site_today)
            audit(
                "update",
                med,
                details={
                    "via": "scheduled-change",
                    "fields": fields,
                    "effective_on": in_force.effective_on.isoformat() if in_force is not None else None,
                },
            )
            changed += 1
    db.session.flush()
    return changed


def mark_entered_in_error(med: Medication, change_id: int, *, reason: str, actor: User) -> dict[str, Any]:
    """Mark one entry of the dose history entered in error: it stays, marked, and no longer counts."""
    _lock_orders(med)
    change = db.session.get(MedicationDoseChange, change_id)
    if change is None or change.medication_id != med.id:
        abort_problem(404, "No such entry in this medication's history.")
    if change.entered_in_error_at is not None:
        abort_problem(409, "This entry is already marked entered in error.", problem="already-entered-in-error")
    remaining = [c for c in counted_history(med) if c.id != change.id]
    if not any(c.effective_on <= med.start_on for c in remaining):
        abort_problem(
            409,
            "The order would have no dose from its start: correct the entry with a change dated on the start, "
            "or end the order.",
            problem="no-dose-left",
        )
    change.entered_in_error_at = utcnow()
    change.entered_in_error_reason = reason.strip()
    change.entered_in_error_by_id = actor.id
    db.session.flush()
    sync_dose_in_force(med, _site_today(med))
    med.updated_at = utcnow()
    db.session.flush()
    audit(
        "update",
        med,
        details={"entered_in_error": change.id, "effective_on": change.effective_on.isoformat()},
    )
    medication_changed.send(med, actor=actor, created=False, fields=["history"])
    return detail_view(med)


def _shown_entry(med: Medication, day: date, counted: Sequence[MedicationDoseChange]) -> MedicationDoseChange | None:
    """The entry whose dose the order shows on ``day``: the one in force, else (an order not yet
    started, or ended) its first entry, or the latest that had begun."""
    in_force = change_in_force(med, day, counted)
    if in_force is not None:
        return in_force
    begun = [c for c in counted if c.effective_on <= day]
    return begun[-1] if begun else (counted[0] if counted else None)


def _entry(change: MedicationDoseChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "effective_on": change.effective_on,
        "dose": change.dose,
        "unit": change.unit,
        "frequency": change.frequency,
        "phase": change.phase,
        "reason": change.reason,
        "changed_by_id": change.changed_by_id,
        "changed_at": change.changed_at,
        "entered_in_error": None
        if change.entered_in_error_at is None
        else {
            "reason": change.entered_in_error_reason,
            "by_user_id": change.entered_in_error_by_id,
            "at": change.entered_in_error_at,
        },
    }


def view(
    med: Medication,
    dose_history: Sequence[MedicationDoseChange],
    overrides: Sequence[MedicationOverride] = (),
    on: date | None = None,
) -> dict[str, Any]:
    """A medication order as the API shows it: the dose in force on ``on`` (the site's today), its
    whole dose history (entries entered in error marked), the changes still to come, its overrides."""
    on = on if on is not None else _site_today(med)
    counted = [c for c in dose_history if c.entered_in_error_at is None]
    shown = _shown_entry(med, on, counted)
    result: dict[str, Any] = {column.key: getattr(med, column.key) for column in Medication.__table__.columns}
    if shown is not None:
        result.update({key: getattr(shown, key) for key in _DOSING_FIELDS})
    result["history"] = [_entry(c) for c in dose_history]
    result["scheduled_changes"] = [_entry(c) for c in counted if c.effective_on > max(on, med.start_on)]
    result["overrides"] = [
        {"rule": o.rule, "reason": o.reason, "by_user_id": o.by_user_id, "at": o.at} for o in overrides
    ]
    result["covered_until"] = covered_until(med)
    return result


def history(med: Medication) -> Sequence[MedicationDoseChange]:
    """The order's whole dose history, entries entered in error included, in effective order."""
    return db.session.scalars(
        select(MedicationDoseChange)
        .where(MedicationDoseChange.medication_id == med.id)
        .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
    ).all()


def overrides_of(med: Medication) -> Sequence[MedicationOverride]:
    return db.session.scalars(
        select(MedicationOverride).where(MedicationOverride.medication_id == med.id).order_by(MedicationOverride.id)
    ).all()


def detail_view(med: Medication) -> dict[str, Any]:
    return view(med, history(med), overrides_of(med))


def list_for_client(client: Client) -> list[dict[str, Any]]:
    meds = db.session.scalars(
        select(Medication)
        .where(Medication.client_id == client.id)
        .order_by(Medication.start_on.desc(), Medication.id.desc())
    ).all()
    changes: dict[int, list[MedicationDoseChange]] = {m.id: [] for m in meds}
    overrides: dict[int, list[MedicationOverride]] = {m.id: [] for m in meds}
    if meds:
        for change in db.session.scalars(
            select(MedicationDoseChange)
            .where(MedicationDoseChange.medication_id.in_(list(changes)))
            .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
        ):
            changes[change.medication_id].append(change)
        for override in db.session.scalars(
            select(MedicationOverride)
            .where(MedicationOverride.medication_id.in_(list(changes)))
            .order_by(MedicationOverride.id)
        ):
            overrides[override.medication_id].append(override)
    record("medication.read", resource="medication", client_id=client.id, details={"via": "list"})
    days: dict[int, date] = {}
    for m in meds:
        if m.site_id not in days:
            days[m.site_id] = _site_today(m)
    return [view(m, changes[m.id], overrides[m.id], days[m.site_id]) for m in meds]


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


# --- after a death -------------------------------------------------------------------------------


@episode_discharged.connect
def _end_orders_after_death(episode: Episode, *, actor: User, reason_code: int, **_: Any) -> None:
    """A client who has died is on no medication: every order still running ends on the day of death.

    Orders that end on their own later, or never, are ended that day; nothing is deleted, each
    change is audited (``medication.update`` via death). Other discharges leave the orders to the
    prescriber (a transfer to another program may continue them).
    """
    if reason_code != TEDS_DEATH or episode.discharged_on is None:
        return
    died_on = episode.discharged_on
    running = db.session.scalars(
        select(Medication)
        .where(
            Medication.client_id == episode.client_id,
            Medication.start_on <= died_on,
            or_(Medication.end_on.is_(None), Medication.end_on > died_on),
        )
        .order_by(Medication.id)
        .with_for_update()
    ).all()
    for med in running:
        med.end_on = died_on
        med.updated_at = utcnow()
        db.session.flush()
        audit("update", med, details={"fields": ["end_on"], "via": "death"})
        medication_changed.send(med, actor=actor, created=False, fields=["end_on"])
