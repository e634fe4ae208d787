"""FHIR mapping: care. Treatment plans (CarePlan and Goal), medication orders (MedicationRequest), appointments.

- A plan is exported as it is in force: when an active plan was edited and the new revision awaits
  signatures, the CarePlan is the last fully signed revision (``active``); a plan never signed is
  a ``draft`` CarePlan; a closed plan is ``completed``. Each goal and each objective of the tree is
  a Goal (an objective is a milestone of its goal), each intervention an activity of the CarePlan.
- A medication order is one MedicationRequest whose dosage instructions are its dose history in
  sequence; entries of the history marked entered in error never counted and are left out (an
  order itself cannot be entered in error in clinic).
- An individual appointment is one Appointment; a client's seat in a group session is an
  Appointment of its own (``appointment-attendee-<id>``) naming that client only, never the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import and_, or_, select

from clinic.auth.models import User
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.fhir.labels import (
    CAREPLAN_CATEGORY,
    GOAL_ACHIEVEMENT,
    GOAL_RELATIONSHIP_TYPE,
    PARTICIPATION_TYPE,
    RXNORM,
    SNOMED,
    UCUM,
    US_CORE,
    clinic_system,
    labelled,
    narrative,
    patient_reference,
    reference,
)
from clinic.fhir.sources import AnySelect, Scope, Source, register
from clinic.fhir.validate import register_clinic_codes, register_codes
from clinic.plans.content import walk_tree
from clinic.plans.models import Medication, MedicationDoseChange, MedicationName, Plan, PlanRevision, PlanStatus
from clinic.plans.schemas import InterventionKind, ObjectiveStatus
from clinic.plans.summary import MEDICATION_NAMES
from clinic.scheduling.models import (
    Appointment,
    AppointmentAttendee,
    AppointmentKind,
    AppointmentStatus,
    AttendeeStatus,
)

GOAL_RELATIONSHIP: Final = "http://hl7.org/fhir/StructureDefinition/goal-relationship"

# --- code tables -----------------------------------------------------------------------------------

#: Intervention kinds as CarePlan activity codes: SNOMED CT where a concept says exactly that
#: (cognitive and behavioral therapy), clinic's ``intervention-kind`` code system for every kind.
INTERVENTION_SNOMED: Final[dict[InterventionKind, tuple[str, str]]] = {
    InterventionKind.CBT: ("228557008", "Cognitive and behavioral therapy (regime/therapy)"),
}
INTERVENTION_KINDS: Final[dict[InterventionKind, str]] = {
    InterventionKind.MAT: "Medication for opioid use disorder (medication-assisted treatment)",
    InterventionKind.CBT: "Cognitive behavioral therapy",
    InterventionKind.CONTINGENCY_MANAGEMENT: "Contingency management",
    InterventionKind.PEER_SUPPORT: "Peer recovery support",
    InterventionKind.SUPPORT_GROUP: "Mutual-help or support group",
    InterventionKind.OTHER: "Other intervention",
}

#: RxNorm concepts of each medication: ingredients for the agonists, whose product clinic does not
#: record (tablet, film, liquid); clinical drugs for naltrexone (as VSAC's "Opiate Antagonists"
#: value set, 2.16.840.1.113883.3.464.1003.198.12.1132, lists them), one product each. docs/fhir.md.
RXNORM_CODES: Final[dict[MedicationName, tuple[str, str]]] = {
    MedicationName.METHADONE: ("6813", "methadone"),
    MedicationName.BUPRENORPHINE: ("1819", "buprenorphine"),
    MedicationName.BUPRENORPHINE_NALOXONE: ("352364", "buprenorphine / naloxone"),
    MedicationName.NALTREXONE_ORAL: ("1483744", "naltrexone hydrochloride 50 MG Oral Tablet"),
    MedicationName.NALTREXONE_XR: ("637213", "naltrexone 380 MG Injection"),
}
#: The route of each medication (SNOMED CT route of administration).
ROUTES: Final[dict[MedicationName, tuple[str, str]]] = {
    MedicationName.METHADONE: ("26643006", "Oral route"),
    MedicationName.BUPRENORPHINE: ("37839007", "Sublingual route"),
    MedicationName.BUPRENORPHINE_NALOXONE: ("37839007", "Sublingual route"),
    MedicationName.NALTREXONE_ORAL: ("26643006", "Oral route"),
    MedicationName.NALTREXONE_XR: ("78421000", "Intramuscular route"),
}

APPOINTMENT_STATUS: Final[dict[AppointmentStatus, str]] = {
    AppointmentStatus.SCHEDULED: "booked",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CHECKED_IN: "checked-in",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.CANCELLED_BY_CLIENT: "cancelled",
    AppointmentStatus.CANCELLED_BY_CLINIC: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
}
ATTENDEE_STATUS: Final[dict[AttendeeStatus, str]] = {
    AttendeeStatus.REGISTERED: "booked",
    AttendeeStatus.CONFIRMED: "booked",
    AttendeeStatus.ATTENDED: "fulfilled",
    AttendeeStatus.NO_SHOW: "noshow",
    AttendeeStatus.CANCELLED_BY_CLIENT: "cancelled",
    AttendeeStatus.CANCELLED_BY_CLINIC: "cancelled",
}
APPOINTMENT_KINDS: Final[dict[AppointmentKind, str]] = {
    AppointmentKind.INTAKE_ASSESSMENT: "Intake assessment",
    AppointmentKind.INDIVIDUAL_THERAPY: "Individual therapy",
    AppointmentKind.GROUP_THERAPY: "Group therapy",
    AppointmentKind.MEDICATION_VISIT: "Medication visit",
    AppointmentKind.PEER_SUPPORT: "Peer support",
    AppointmentKind.DRUG_SCREEN: "Drug screen",
    AppointmentKind.PLAN_REVIEW: "Plan review",
}

register_codes(SNOMED, dict(INTERVENTION_SNOMED.values()))
register_codes(SNOMED, dict(ROUTES.values()))
register_codes(RXNORM, dict(RXNORM_CODES.values()))
register_clinic_codes("intervention-kind", {kind.value: name for kind, name in INTERVENTION_KINDS.items()})
register_clinic_codes("appointment-kind", {kind.value: name for kind, name in APPOINTMENT_KINDS.items()})


def _number(value: Decimal) -> int | float:
    """A dose as a JSON number: whole milligrams as integers."""
    return int(value) if value == value.to_integral_value() else float(value)


# --- CarePlan and Goal ---------------------------------------------------------------------------

#: An objective's status as the lifecycle and achievement of its Goal.
OBJECTIVE_GOAL: Final[dict[str, tuple[str, str | None]]] = {
    ObjectiveStatus.NOT_STARTED.value: ("planned", None),
    ObjectiveStatus.IN_PROGRESS.value: ("active", "in-progress"),
    ObjectiveStatus.ACHIEVED.value: ("completed", "achieved"),
    ObjectiveStatus.NOT_ACHIEVED.value: ("completed", "not-achieved"),
    ObjectiveStatus.DISCONTINUED.value: ("cancelled", None),
}
#: An objective's status as the status of its interventions (CarePlan.activity.detail.status).
OBJECTIVE_ACTIVITY: Final[dict[str, str]] = {
    ObjectiveStatus.NOT_STARTED.value: "not-started",
    ObjectiveStatus.IN_PROGRESS.value: "in-progress",
    ObjectiveStatus.ACHIEVED.value: "completed",
    ObjectiveStatus.NOT_ACHIEVED.value: "stopped",
    ObjectiveStatus.DISCONTINUED.value: "cancelled",
}
CAREPLAN_STATUS: Final[dict[PlanStatus, str]] = {
    PlanStatus.DRAFT: "draft",
    PlanStatus.ACTIVE: "active",
    PlanStatus.CLOSED: "completed",
}
ACHIEVEMENT_DISPLAY: Final = {"in-progress": "In Progress", "achieved": "Achieved", "not-achieved": "Not Achieved"}


def _goal_id(plan: Plan, node: dict[str, Any]) -> str:
    return f"goal-{plan.id}-{node['id']}"


def _achievement(code: str | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return {"coding": [{"system": GOAL_ACHIEVEMENT, "code": code, "display": ACHIEVEMENT_DISPLAY[code]}]}


def _goal(
    plan: Plan,
    node: dict[str, Any],
    *,
    problem: str,
    lifecycle: str,
    achievement: str | None,
    milestones: Sequence[str] = (),
    due: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": _goal_id(plan, node),
        "meta": {"profile": [US_CORE + "us-core-goal"]},
        "lifecycleStatus": lifecycle,
        "description": {"text": node.get("description") or "(no description)"},
        "subject": patient_reference(plan.client_id),
        "startDate": plan.created_at.date().isoformat(),
        "addresses": [{"display": problem}],
    }
    if achievement is not None:
        resource["achievementStatus"] = _achievement(achievement)
    if due:
        resource["target"] = [{"dueDate": due}]
    if node.get("client_words"):
        resource["note"] = [{"text": f"In the client's own words: {node['client_words']}"}]
    if milestones:
        resource["extension"] = [
            {
                "url": GOAL_RELATIONSHIP,
                "extension": [
                    {
                        "url": "type",
                        "valueCodeableConcept": {
                            "coding": [{"system": GOAL_RELATIONSHIP_TYPE, "code": "milestone", "display": "Milestone"}]
                        },
                    },
                    {"url": "target", "valueReference": reference("Goal", milestone)},
                ],
            }
            for milestone in milestones
        ]
    return labelled(resource)


def _goal_achievement(objectives: Sequence[dict[str, Any]]) -> str | None:
    statuses = {objective.get("status") or ObjectiveStatus.NOT_STARTED.value for objective in objectives}
    if statuses and statuses <= {ObjectiveStatus.ACHIEVED.value}:
        return "achieved"
    if statuses & {ObjectiveStatus.IN_PROGRESS.value, ObjectiveStatus.ACHIEVED.value}:
        return "in-progress"
    return None


def _activity_status(plan_status: str, objective_status: str) -> str:
    """The objective's progress; an intervention of a closed plan that had not ended was stopped."""
    status = OBJECTIVE_ACTIVITY.get(objective_status, "unknown")
    if plan_status == "completed" and status in {"not-started", "in-progress"}:
        return "stopped"
    return status


def _activity(
    intervention: dict[str, Any], goal_ids: list[str], objective_status: str, plan_status: str
) -> dict[str, Any]:
    kind = InterventionKind(intervention["kind"])
    codings = [{"system": clinic_system("intervention-kind"), "code": kind.value, "display": INTERVENTION_KINDS[kind]}]
    if kind in INTERVENTION_SNOMED:
        code, display = INTERVENTION_SNOMED[kind]
        codings.insert(0, {"system": SNOMED, "code": code, "display": display})
    detail: dict[str, Any] = {
        "code": {"coding": codings, "text": INTERVENTION_KINDS[kind]},
        "goal": [reference("Goal", goal_id) for goal_id in goal_ids],
        "status": _activity_status(plan_status, objective_status),
    }
    if intervention.get("description"):
        detail["description"] = intervention["description"]
    if intervention.get("frequency"):
        detail["scheduledString"] = intervention["frequency"]
    return {"detail": detail}


def care_plan(plan: Plan, content_in_force: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The plan in force as a US Core CarePlan and its goals and objectives as US Core Goals."""
    in_force = content_in_force is not None
    content = content_in_force if content_in_force is not None else plan.content
    status = "active" if in_force else CAREPLAN_STATUS[plan.status]
    goals: list[dict[str, Any]] = []
    activities: list[dict[str, Any]] = []
    problems: list[str] = []
    for problem in content or []:
        problem_text = problem.get("description") or "(no description)"
        problems.append(problem_text)
        for goal in problem.get("goals") or []:
            objectives = goal.get("objectives") or []
            goal_id = _goal_id(plan, goal)
            milestones: list[dict[str, Any]] = []
            for objective in objectives:
                objective_status = objective.get("status") or ObjectiveStatus.NOT_STARTED.value
                lifecycle, achievement = OBJECTIVE_GOAL.get(objective_status, ("active", None))
                milestones.append(
                    _goal(
                        plan,
                        objective,
                        problem=problem_text,
                        lifecycle=_lifecycle(status, lifecycle),
                        achievement=achievement,
                        due=objective.get("target_date"),
                    )
                )
                for intervention in objective.get("interventions") or []:
                    activities.append(
                        _activity(intervention, [_goal_id(plan, objective), goal_id], objective_status, status)
                    )
            goals.append(
                _goal(
                    plan,
                    goal,
                    problem=problem_text,
                    lifecycle=_lifecycle(status, "active"),
                    achievement=_goal_achievement(objectives),
                    milestones=[milestone["id"] for milestone in milestones],
                )
            )
            goals.extend(milestones)
    lines = [f"Treatment plan ({status}), revision {plan.active_revision if in_force else plan.revision}."]
    lines += [f"{path}." for path, _level, _node in walk_tree(content or [])]
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": f"careplan-{plan.id}",
        "meta": {"profile": [US_CORE + "us-core-careplan"]},
        "text": narrative(*lines),
        "status": status,
        "intent": "plan",
        "category": [
            {
                "coding": [
                    {"system": CAREPLAN_CATEGORY, "code": "assess-plan", "display": "Assessment and Plan of Treatment"}
                ]
            }
        ],
        "title": "Treatment plan",
        "subject": patient_reference(plan.client_id),
        "created": plan.created_at.isoformat(),
    }
    if plan.episode_id is not None:
        resource["supportingInfo"] = [reference("EpisodeOfCare", f"episode-{plan.episode_id}")]
    if problems:
        resource["addresses"] = [{"display": text} for text in problems]
    if goals:
        resource["goal"] = [reference("Goal", goal["id"]) for goal in goals]
    if activities:
        resource["activity"] = activities
    return [labelled(resource), *goals]


def _lifecycle(plan_status: str, lifecycle: str) -> str:
    """A goal of a plan never signed is only proposed; of a closed plan, no longer pursued unless it ended."""
    if plan_status == "draft":
        return "proposed"
    if plan_status == "completed" and lifecycle in {"planned", "active"}:
        return "completed"
    return lifecycle


def _select_plans(scope: Scope) -> AnySelect:
    in_force = and_(
        PlanRevision.plan_id == Plan.id,
        PlanRevision.number == Plan.active_revision,
        Plan.status == PlanStatus.DRAFT,
    )
    return (
        select(Plan, PlanRevision.content)
        .outerjoin(PlanRevision, in_force)
        .where(scope.where(client=Plan.client_id, site=Plan.site_id, changed=(Plan.updated_at,)))
        .order_by(Plan.client_id, Plan.id)
    )


def _plans_to_fhir(row: Any) -> Iterable[dict[str, Any]]:
    plan, content_in_force = row
    return care_plan(plan, content_in_force)


# --- MedicationRequest ---------------------------------------------------------------------------

_EVERY = re.compile(r"^every (\d+) (day|week)s?$")
_TIMES_DAILY: Final = {"daily": 1, "once daily": 1, "twice daily": 2, "three times daily": 3, "four times daily": 4}


def timing_repeat(frequency: str) -> dict[str, Any]:
    """A frequency in words ("daily", "twice daily", "every 28 days") as Timing.repeat, where it is one."""
    words = " ".join(frequency.lower().split())
    if words in _TIMES_DAILY:
        return {"frequency": _TIMES_DAILY[words], "period": 1, "periodUnit": "d"}
    if words == "weekly":
        return {"frequency": 1, "period": 1, "periodUnit": "wk"}
    match = _EVERY.match(words)
    if match:
        return {"frequency": 1, "period": int(match.group(1)), "periodUnit": "d" if match.group(2) == "day" else "wk"}
    return {}


def _dosage(
    med: Medication, change: MedicationDoseChange | Medication, sequence: int, until: date | None
) -> dict[str, Any]:
    start = change.effective_on if isinstance(change, MedicationDoseChange) else med.start_on
    dose = f"{_number(change.dose)} {change.unit}"
    text = f"{dose} {change.frequency} ({change.phase.value}), from {start.isoformat()}"
    bounds = {"start": start.isoformat()}
    if until is not None:
        bounds["end"] = until.isoformat()
        text += f" to {until.isoformat()}"
    route_code, route_display = ROUTES[med.medication]
    quantity: dict[str, Any] = {"value": _number(change.dose), "unit": change.unit}
    if change.unit == "mg":
        quantity |= {"system": UCUM, "code": "mg"}
    return {
        "sequence": sequence,
        "text": text,
        "timing": {
            "repeat": {"boundsPeriod": bounds, **timing_repeat(change.frequency)},
            "code": {"text": change.frequency},
        },
        "route": {"coding": [{"system": SNOMED, "code": route_code, "display": route_display}]},
        "doseAndRate": [{"doseQuantity": quantity}],
    }


def medication_request(med: Medication, prescriber: str, history: Sequence[MedicationDoseChange]) -> dict[str, Any]:
    """A medication order as a US Core MedicationRequest; its counted dose history as dosage instructions."""
    today = utcnow().date()
    status = "completed" if med.end_on is not None and med.end_on < today else "active"
    code, display = RXNORM_CODES[med.medication]
    steps: list[MedicationDoseChange | Medication] = list(history) or [med]
    dosages = []
    for index, change in enumerate(steps):
        if index + 1 < len(steps):
            following = steps[index + 1]
            assert isinstance(following, MedicationDoseChange)  # noqa: S101 - only the lone fallback is the order
            until: date | None = following.effective_on - timedelta(days=1)
        else:
            until = med.end_on
        dosages.append(_dosage(med, change, index + 1, until))
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": f"medication-{med.id}",
        "meta": {"profile": [US_CORE + "us-core-medicationrequest"]},
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": MEDICATION_NAMES[med.medication],
        },
        "subject": patient_reference(med.client_id),
        "authoredOn": med.created_at.isoformat(),
        "requester": {"display": prescriber},
        "dosageInstruction": dosages,
    }
    if med.end_on is not None:
        resource["dispenseRequest"] = {
            "validityPeriod": {"start": med.start_on.isoformat(), "end": med.end_on.isoformat()}
        }
    return labelled(resource)


def _select_medications(scope: Scope) -> AnySelect:
    stmt = select(Medication, User.name).join(User, User.id == Medication.prescriber_id)
    stmt = stmt.where(scope.where(client=Medication.client_id, site=Medication.site_id))
    if scope.since is not None:
        # An order changes with its dose history: a change, or an entry marked entered in error.
        history_changed = (
            select(MedicationDoseChange.id)
            .where(
                MedicationDoseChange.medication_id == Medication.id,
                or_(
                    MedicationDoseChange.changed_at >= scope.since,
                    MedicationDoseChange.entered_in_error_at >= scope.since,
                ),
            )
            .exists()
        )
        stmt = stmt.where(or_(Medication.updated_at >= scope.since, history_changed))
    return stmt.order_by(Medication.client_id, Medication.id)


def _medication_histories(rows: Sequence[Any]) -> Sequence[Any]:
    """Each order of the batch with its counted dose history, loaded in one statement."""
    histories: dict[int, list[MedicationDoseChange]] = {row[0].id: [] for row in rows}
    if histories:
        for change in db.session.scalars(
            select(MedicationDoseChange)
            .where(
                MedicationDoseChange.medication_id.in_(list(histories)),
                MedicationDoseChange.entered_in_error_at.is_(None),
            )
            .order_by(MedicationDoseChange.medication_id, MedicationDoseChange.effective_on, MedicationDoseChange.id)
        ):
            histories[change.medication_id].append(change)
    return [(med, prescriber, histories[med.id]) for med, prescriber in rows]


def _medications_to_fhir(row: Any) -> Iterable[dict[str, Any]]:
    med, prescriber, history = row
    yield medication_request(med, prescriber, history)


# --- Appointment ---------------------------------------------------------------------------------


def _appointment(
    appointment: Appointment,
    *,
    resource_id: str,
    status: str,
    client_id: int,
    clinician: str,
    cancel_reason: str | None,
    client_cancelled: bool,
) -> dict[str, Any]:
    kind = appointment.kind
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": resource_id,
        "status": status,
        "serviceType": [
            {
                "coding": [
                    {
                        "system": clinic_system("appointment-kind"),
                        "code": kind.value,
                        "display": APPOINTMENT_KINDS[kind],
                    }
                ],
                "text": APPOINTMENT_KINDS[kind],
            }
        ],
        "description": APPOINTMENT_KINDS[kind] + (" (group session)" if appointment.is_group else ""),
        "start": appointment.starts_at.isoformat(),
        "end": appointment.ends_at.isoformat(),
        "minutesDuration": appointment.duration_minutes,
        "created": appointment.created_at.isoformat(),
        "participant": [
            {
                "actor": patient_reference(client_id),
                "required": "required",
                "status": "declined" if client_cancelled else "accepted",
            },
            {
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF", "display": "primary performer"}]}],
                "actor": {"display": clinician},
                "required": "required",
                "status": "accepted",
            },
        ],
    }
    if status == "cancelled" and cancel_reason:
        resource["cancelationReason"] = {"text": cancel_reason}
    return labelled(resource)


def appointment(appointment: Appointment, clinician: str) -> dict[str, Any]:
    """An individual appointment; clinic's statuses as FHIR's (scheduled and confirmed are both booked)."""
    assert appointment.client_id is not None  # noqa: S101 - the select takes individual appointments only
    return _appointment(
        appointment,
        resource_id=f"appointment-{appointment.id}",
        status=APPOINTMENT_STATUS[appointment.status],
        client_id=appointment.client_id,
        clinician=clinician,
        cancel_reason=appointment.cancel_reason,
        client_cancelled=appointment.status is AppointmentStatus.CANCELLED_BY_CLIENT,
    )


def group_seat(seat: AppointmentAttendee, session: Appointment, clinician: str) -> dict[str, Any]:
    """A client's seat in a group session: the session's time and kind, the client's own attendance."""
    status = (
        APPOINTMENT_STATUS[session.status]
        if session.status is AppointmentStatus.CANCELLED_BY_CLINIC
        else (ATTENDEE_STATUS[seat.status])
    )
    return _appointment(
        session,
        resource_id=f"appointment-attendee-{seat.id}",
        status=status,
        client_id=seat.client_id,
        clinician=clinician,
        cancel_reason=seat.cancel_reason or session.cancel_reason,
        client_cancelled=status == "cancelled" and seat.status is AttendeeStatus.CANCELLED_BY_CLIENT,
    )


def _select_appointments(scope: Scope) -> AnySelect:
    return (
        select(Appointment, User.name)
        .join(User, User.id == Appointment.clinician_id)
        .where(
            Appointment.client_id.is_not(None),
            scope.where(client=Appointment.client_id, site=Appointment.site_id, changed=(Appointment.updated_at,)),
        )
        .order_by(Appointment.client_id, Appointment.starts_at, Appointment.id)
    )


def _appointments_to_fhir(row: Any) -> Iterable[dict[str, Any]]:
    session, clinician = row
    yield appointment(session, clinician)


def _select_seats(scope: Scope) -> AnySelect:
    return (
        select(AppointmentAttendee, Appointment, User.name)
        .join(Appointment, Appointment.id == AppointmentAttendee.appointment_id)
        .join(User, User.id == Appointment.clinician_id)
        .where(
            scope.where(
                client=AppointmentAttendee.client_id,
                site=AppointmentAttendee.site_id,
                changed=(AppointmentAttendee.updated_at, Appointment.updated_at),
            )
        )
        .order_by(AppointmentAttendee.client_id, Appointment.starts_at, AppointmentAttendee.id)
    )


def _seats_to_fhir(row: Any) -> Iterable[dict[str, Any]]:
    seat, session, clinician = row
    yield group_seat(seat, session, clinician)


register(Source(name="plans", produces=("CarePlan", "Goal"), select=_select_plans, to_fhir=_plans_to_fhir))
register(
    Source(
        name="medications",
        produces=("MedicationRequest",),
        select=_select_medications,
        to_fhir=_medications_to_fhir,
        enrich=_medication_histories,
    )
)
register(
    Source(name="appointments", produces=("Appointment",), select=_select_appointments, to_fhir=_appointments_to_fhir)
)
register(Source(name="group seats", produces=("Appointment",), select=_select_seats, to_fhir=_seats_to_fhir))
