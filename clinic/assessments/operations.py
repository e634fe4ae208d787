"""Administering, scoring, signing and amending assessments; score trends; safety alerts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from clinic.assessments.definitions import AnswerError, Instrument, Score, get_instrument, instruments
from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.audit.operations import audit, record
from clinic.auth.models import User
from clinic.clients.models import Client
from clinic.clients.timeline import TimelineEntry
from clinic.core.errors import abort_problem
from clinic.core.pagination import Page, keyset_page
from clinic.core.signals import admission_assessment, assessment_signed, timeline_entries
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.models import StaffNotificationKind
from clinic.notify.staff import safety_recipients, send_safety_alert

_FUTURE_TOLERANCE = timedelta(minutes=5)


def _instrument_or_422(code: str) -> Instrument:
    instrument = get_instrument(code)
    if instrument is None:
        abort_problem(
            422, "Unknown instrument.", errors={"instrument": [f"Must be one of: {', '.join(sorted(instruments()))}."]}
        )
    return instrument


def _score(instrument: Instrument, answers: Any) -> tuple[dict[str, Any], Score]:
    try:
        valid = instrument.validate(answers)
    except AnswerError as exc:
        abort_problem(422, "Some answers do not fit the instrument.", errors=exc.errors)
    return valid, instrument.score(valid)


def _check_administered_at(value: datetime) -> None:
    if value > utcnow() + _FUTURE_TOLERANCE:
        abort_problem(
            422,
            "An assessment cannot be administered in the future.",
            errors={"administered_at": ["Must not be in the future."]},
        )


def administer(client: Client, *, actor: User, instrument: str, answers: Any, administered_at: datetime) -> Assessment:
    """Record a draft assessment, scored by clinic; safety flags alert the client's clinician."""
    definition = _instrument_or_422(instrument)
    _check_administered_at(administered_at)
    valid, score = _score(definition, answers)
    assessment = Assessment(
        client_id=client.id,
        site_id=client.site_id,
        instrument=definition.code,
        version=definition.version,
        answers=valid,
        total_score=score.total,
        severity=score.severity,
        flags=score.flags,
        status=AssessmentStatus.DRAFT,
        administered_at=administered_at,
        clinician_id=actor.id,
        revision=1,
    )
    db.session.add(assessment)
    db.session.flush()
    audit(
        "create",
        assessment,
        details={"instrument": definition.code, "flags": score.flags}
        if score.flags
        else {"instrument": definition.code},
    )
    _raise_alerts(client, assessment, score, actor=actor)
    return assessment


def _raise_alerts(client: Client, assessment: Assessment, score: Score, *, actor: User) -> None:
    """Raise each flag's safety alert at once, routed so someone always gets it.

    To the client's primary clinician if active, else the site's supervisors, else its admins
    (``send_safety_alert``); without an active primary clinician the clinician who administered
    it gets it too. Sent once more when nobody acknowledges it in time.
    """
    if not score.alerts:
        return
    routed = safety_recipients(client.site_id, client.primary_clinician_id)
    has_clinician = client.primary_clinician_id is not None and routed == [client.primary_clinician_id]
    for rule in score.alerts:
        send_safety_alert(
            client,
            kind=StaffNotificationKind.SAFETY_FLAG,
            title=rule.alert_title or f"Safety flag {rule.flag} on a {assessment.instrument}",
            body=(
                f"{rule.alert_title or rule.flag}. Client MRN {client.mrn}, assessment {assessment.id} "
                f"administered {assessment.administered_at.isoformat()}. Review the client's safety today."
            ),
            resource="assessment",
            resource_id=assessment.id,
            dedupe_key=f"safety:{rule.flag}:assessment:{assessment.id}",
            also_user_ids=() if has_clinician else (actor.id,),
        )


def update_draft(assessment: Assessment, changes: dict[str, Any], *, actor: User) -> Assessment:
    """Correct a draft; a signed assessment is immutable (409)."""
    if assessment.status is AssessmentStatus.SIGNED:
        abort_problem(409, "A signed assessment cannot change; amend it instead.", problem="assessment-signed")
    if "administered_at" in changes:
        _check_administered_at(changes["administered_at"])
        assessment.administered_at = changes["administered_at"]
    if "answers" in changes:
        definition = _instrument_or_422(assessment.instrument)
        valid, score = _score(definition, changes["answers"])
        assessment.answers = valid
        assessment.total_score = score.total
        assessment.severity = score.severity
        assessment.flags = score.flags
        assessment.version = definition.version
        client = db.session.get_one(Client, assessment.client_id)
        _raise_alerts(client, assessment, score, actor=actor)
    db.session.flush()
    audit("update", assessment, details={"fields": sorted(changes)})
    return assessment


def sign(assessment: Assessment, *, actor: User) -> Assessment:
    if assessment.status is AssessmentStatus.SIGNED:
        abort_problem(409, "This assessment is already signed.", problem="assessment-signed")
    assessment.status = AssessmentStatus.SIGNED
    assessment.signed_at = utcnow()
    assessment.signed_by_id = actor.id
    if assessment.amends_id is not None:
        original = db.session.get_one(Assessment, assessment.amends_id)
        original.superseded_by_id = assessment.id
    db.session.flush()
    audit("sign", assessment)
    assessment_signed.send(assessment, actor=actor)
    return assessment


def amend(assessment: Assessment, *, actor: User, answers: Any, reason: str) -> Assessment:
    """A new version of a signed assessment, with a reason, linked to it; both stay readable."""
    if assessment.status is not AssessmentStatus.SIGNED:
        abort_problem(409, "Only a signed assessment is amended; change the draft instead.", problem="assessment-draft")
    pending = db.session.scalars(
        select(Assessment).where(Assessment.amends_id == assessment.id, Assessment.status == AssessmentStatus.DRAFT)
    ).first()
    if pending is not None:
        abort_problem(
            409,
            "An amendment of this assessment is already in draft.",
            problem="amendment-pending",
            extra={"amendment_id": pending.id},
        )
    definition = _instrument_or_422(assessment.instrument)
    valid, score = _score(definition, answers)
    amendment = Assessment(
        client_id=assessment.client_id,
        site_id=assessment.site_id,
        instrument=assessment.instrument,
        version=definition.version,
        answers=valid,
        total_score=score.total,
        severity=score.severity,
        flags=score.flags,
        status=AssessmentStatus.DRAFT,
        administered_at=assessment.administered_at,
        clinician_id=actor.id,
        revision=assessment.revision + 1,
        amends_id=assessment.id,
        amendment_reason=reason,
    )
    db.session.add(amendment)
    db.session.flush()
    audit("amend", amendment, details={"amends_id": assessment.id})
    client = db.session.get_one(Client, assessment.client_id)
    _raise_alerts(client, amendment, score, actor=actor)
    return amendment


def list_for_client(
    client: Client, *, instrument: str | None = None, limit: int, cursor: str | None
) -> Page[Assessment]:
    stmt = select(Assessment).where(Assessment.client_id == client.id)
    if instrument is not None:
        stmt = stmt.where(Assessment.instrument == instrument)
    page = keyset_page(
        stmt, keys=[Assessment.administered_at, Assessment.id], limit=limit, cursor=cursor, descending=True
    )
    record(
        "assessment.read",
        resource="assessment",
        client_id=client.id,
        details={"via": "list", "ids": [a.id for a in page.items]},
    )
    return page


def current_signed(client_id: int, instrument: str) -> Sequence[Assessment]:
    """Signed assessments not superseded by a signed amendment, oldest first."""
    return db.session.scalars(
        select(Assessment)
        .where(
            Assessment.client_id == client_id,
            Assessment.instrument == instrument,
            Assessment.status == AssessmentStatus.SIGNED,
            Assessment.superseded_by_id.is_(None),
        )
        .order_by(Assessment.administered_at, Assessment.id)
    ).all()


def trend(client: Client, instrument: str) -> dict[str, Any]:
    """The score series of signed assessments and each point's change from the first score."""
    definition = _instrument_or_422(instrument)
    series = [a for a in current_signed(client.id, definition.code) if a.total_score is not None]
    first = series[0].total_score if series else None
    points = [
        {
            "assessment_id": a.id,
            "administered_at": a.administered_at,
            "total_score": a.total_score,
            "severity": a.severity,
            "change_from_first": (a.total_score - first) if first is not None and a.total_score is not None else None,
        }
        for a in series
    ]
    record(
        "assessment.read",
        resource="assessment",
        client_id=client.id,
        details={"via": "trend", "instrument": definition.code},
    )
    return {
        "instrument": definition.code,
        "points": points,
        "first_score": first,
        "latest_score": series[-1].total_score if series else None,
        "change_from_first": (series[-1].total_score - first) if series and first is not None else None,  # type: ignore[operator]
    }


@admission_assessment.connect
def level_of_care_chosen(client: Client, *, assessment_id: int) -> tuple[str, str]:
    """The level of care and ASAM edition a signed ASAM assessment of this client chose (else a 422)."""
    asam = signed_asam_for_admission(client, assessment_id)
    return asam.answers["level_of_care"], str(asam.answers["edition"])


def signed_asam_for_admission(client: Client, assessment_id: int) -> Assessment:
    """The signed ASAM assessment of this client whose level of care sets a new episode's level."""
    assessment = db.session.get(Assessment, assessment_id)
    if (
        assessment is None
        or assessment.client_id != client.id
        or assessment.instrument != "ASAM"
        or assessment.status is not AssessmentStatus.SIGNED
    ):
        abort_problem(
            422,
            "Not a signed ASAM assessment of this client.",
            errors={"assessment_id": ["Must be a signed ASAM assessment of this client."]},
        )
    return assessment


@timeline_entries.connect
def _assessment_entries(client_id: int) -> Iterable[TimelineEntry]:
    rows = db.session.scalars(select(Assessment).where(Assessment.client_id == client_id)).all()
    for a in rows:
        score = (
            f" {a.total_score} ({a.severity})"
            if a.total_score is not None and a.severity
            else (f" {a.total_score}" if a.total_score is not None else "")
        )
        label = f"{a.instrument}{score}" + (" amended" if a.amends_id else "") + f" [{a.status.value}]"
        yield TimelineEntry(a.administered_at, "assessment", a.id, label, clinical=True)
