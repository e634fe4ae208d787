"""What the client banner and chart show from the domains above clients.

clients asks (``client_flags``, ``client_summary`` in clinic.core.signals); plans, above intake,
notify and assessments in the layers, answers: the risk flags reported on the client's intake
calls, the safety alerts on the client not yet acknowledged, and the plan and medications in
force. Each read is audited as the API's read of the same data is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from clinic.assessments.models import Assessment
from clinic.audit.operations import audit, record
from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, has_permission, scoped_select
from clinic.clients.banner import ActiveMedication, ActivePlan, CareSummary, Flag
from clinic.clients.models import Client
from clinic.console.dates import long_date
from clinic.core.signals import client_flags, client_summary
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.intake.models import IntakeCall, RiskFlag
from clinic.notify.models import SAFETY_KINDS, StaffNotification, StaffNotificationKind
from clinic.plans import medications
from clinic.plans import operations as plan_ops
from clinic.plans.models import MedicationName, PlanStatus

#: Each risk flag an intake call may carry: its chip's words, its order, its colour.
RISK_FLAGS: dict[str, tuple[str, int, str]] = {
    RiskFlag.SUICIDAL_IDEATION.value: ("Risk: thoughts of suicide", 10, "red"),
    RiskFlag.RECENT_OVERDOSE.value: ("Risk: recent overdose", 11, "red"),
    RiskFlag.WITHDRAWAL_NOW.value: ("Risk: in withdrawal when calling", 12, "orange"),
    RiskFlag.INJECTION_USE.value: ("Risk: injects drugs", 13, "orange"),
    RiskFlag.PREGNANT.value: ("Pregnant", 14, "orange"),
}

#: What a safety alert's chip says it is about, for alerts not raised on an assessment.
SAFETY_ALERT_WORDS: dict[StaffNotificationKind, str] = {
    StaffNotificationKind.OVERDOSE: "overdose reported",
    StaffNotificationKind.MISSED_DOSES: "missed doses",
}

MEDICATION_NAMES: dict[MedicationName, str] = {
    MedicationName.METHADONE: "Methadone",
    MedicationName.BUPRENORPHINE: "Buprenorphine",
    MedicationName.BUPRENORPHINE_NALOXONE: "Buprenorphine/naloxone",
    MedicationName.NALTREXONE_ORAL: "Naltrexone (oral)",
    MedicationName.NALTREXONE_XR: "Naltrexone (extended-release injection)",
}


def _site_zone(client: Client) -> str:
    return db.session.get_one(Site, client.site_id).timezone


def _risk_flags(client: Client, user: User, zone: str) -> list[Flag]:
    """The risk flags of the calls the client made (converted or linked), each call's read audited."""
    calls = db.session.scalars(
        scoped_select(IntakeCall, user)
        .where(
            or_(IntakeCall.client_id == client.id, IntakeCall.linked_client_id == client.id),
            IntakeCall.has_risk_flags.is_(True),
        )
        .order_by(IntakeCall.occurred_at.desc(), IntakeCall.id.desc())
    ).all()
    latest: dict[str, IntakeCall] = {}
    for call in calls:
        audit("read", call, details={"via": "banner"})
        for name in call.risk_flags:
            latest.setdefault(name, call)
    flags = []
    for name, call in latest.items():
        label, rank, tone = RISK_FLAGS.get(name, (f"Risk: {name.replace('_', ' ')}", 19, "orange"))
        detail = f"Reported on the intake call of {long_date(call.occurred_at, zone)}"
        flags.append(Flag(label=label, kind="risk", rank=rank, tone=tone, detail=detail))
    return flags


def _assessment_id(alert: StaffNotification) -> int | None:
    """The assessment an alert was raised on, when it names one."""
    if alert.resource == "assessment" and alert.resource_id and alert.resource_id.isdigit():
        return int(alert.resource_id)
    return None


def _safety_alerts(client: Client, zone: str) -> list[Flag]:
    """Safety alerts on the client (assessments, overdoses, missed doses) that nobody has acknowledged yet."""
    alerts = db.session.scalars(
        select(StaffNotification)
        .where(
            StaffNotification.client_id == client.id,
            StaffNotification.kind.in_(SAFETY_KINDS),
            StaffNotification.acknowledged_at.is_(None),
        )
        .order_by(StaffNotification.created_at.desc(), StaffNotification.id.desc())
    ).all()
    assessment_ids = {_assessment_id(alert) for alert in alerts} - {None}
    assessments: dict[int, Assessment] = {}
    if assessment_ids:
        found = select(Assessment).where(Assessment.id.in_(assessment_ids), Assessment.client_id == client.id)
        assessments = {row.id: row for row in db.session.scalars(found)}
    for assessment in assessments.values():
        audit("read", assessment, details={"via": "banner"})
    if alerts:  # the alerts themselves are read too, as the alerts list records them
        record("staff_notification.read", resource="staff_notification", client_id=client.id,
               details={"via": "banner", "ids": [alert.id for alert in alerts]})
    flags = []
    seen: set[str] = set()
    for alert in alerts:
        # One chip per alert, however many copies it has (each supervisor's, the escalated ones).
        key = alert.alert_key or alert.dedupe_key or f"alert:{alert.id}"
        if key in seen:
            continue
        seen.add(key)
        raised_on = assessments.get(_assessment_id(alert) or 0)
        if alert.kind is StaffNotificationKind.SAFETY_FLAG:
            what = raised_on.instrument if raised_on is not None else "assessment"
        else:
            what = SAFETY_ALERT_WORDS.get(alert.kind, alert.kind.value.replace("_", " "))
        detail = f"{alert.title} (raised {long_date(alert.created_at, zone)}, not acknowledged)"
        flags.append(Flag(label=f"Safety alert: {what}", kind="safety", rank=0, tone="red", detail=detail))
    return flags


@client_flags.connect
def _flags(client: Client, *, user: User, **_: Any) -> list[Flag]:
    zone = _site_zone(client)
    flags: list[Flag] = []
    if has_permission(user, Permission.CLINICAL_READ):
        flags.extend(_safety_alerts(client, zone))
    if has_permission(user, Permission.INTAKE_READ):
        flags.extend(_risk_flags(client, user, zone))
    return flags


@client_summary.connect
def _care(client: Client, *, user: User, **_: Any) -> CareSummary | None:
    """The plan in force (else the newest draft) and today's medications, read as the API lists them."""
    if not has_permission(user, Permission.CLINICAL_READ):
        return None
    on = to_local(utcnow(), _site_zone(client)).date()
    plans = plan_ops.list_plans(client)  # newest first; audited as plan.read (via list)
    chosen = next((p for p in plans if p.status is PlanStatus.ACTIVE), None) or next(
        (p for p in plans if p.status is PlanStatus.DRAFT), None
    )
    plan = None
    if chosen is not None:
        plan = ActivePlan(
            id=chosen.id,
            status=chosen.status.value,
            revision=chosen.revision,
            next_review_on=chosen.next_review_on,
            last_reviewed_on=chosen.last_reviewed_on,
            review_overdue=chosen.status is PlanStatus.ACTIVE
            and chosen.next_review_on is not None
            and chosen.next_review_on < on,
        )
    in_force = [
        ActiveMedication(
            id=med["id"],
            name=MEDICATION_NAMES.get(med["medication"], str(med["medication"])),
            dose=med["dose"],
            unit=med["unit"],
            frequency=med["frequency"],
            phase=med["phase"].value,
            start_on=med["start_on"],
        )
        for med in medications.list_for_client(client)  # audited as medication.read (via list)
        if med["start_on"] <= on and (med["end_on"] is None or med["end_on"] >= on)
    ]
    return CareSummary(plan=plan, medications=in_force, plan_count=len(plans))
