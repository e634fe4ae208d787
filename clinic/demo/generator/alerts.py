# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Safety alerts (missed doses, overdoses) as ``clinic.notify.staff`` raises and escalates them.

An alert goes to the client's primary clinician (and the prescriber, here the same clinician), with
the alert's key shared by every copy. One nobody acknowledged within the escalation delay was sent
once more to the site's supervisor (or, when the clinician is the supervisor, to them again),
marked escalated; its first copy records when.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from clinic.demo.generator.context import Chunk, Context, Row
from clinic.demo.generator.sites import SiteStaff

#: Minutes between the escalation delay running out and the periodic check that escalates.
ESCALATION_CHECK_MINUTES = 5
ACKNOWLEDGEMENT_NOTES = (
    None,
    None,
    "Called the client; seen at the clinic the same day.",
    "Spoke with the client's partner; follow-up booked.",
    "Discussed with the prescriber; plan reviewed.",
)


def _notification(
    ctx: Context,
    chunk: Chunk,
    user_id: int,
    client_id: int,
    kind: str,
    title: str,
    body: str,
    resource: str,
    resource_id: int,
    dedupe_key: str,
    alert_key: str,
    at: datetime,
    *,
    escalated: bool = False,
) -> Row:
    return ctx.add(
        chunk,
        "staff_notifications",
        {
            "id": ctx.ids.take("staff_notifications"),
            "user_id": user_id,
            "kind": kind,
            "title": title[:200],
            "body": body,
            "client_id": client_id,
            "resource": resource,
            "resource_id": str(resource_id),
            "dedupe_key": dedupe_key,
            "created_at": at,
            "read_at": None,
            "acknowledged_at": None,
            "acknowledgement_note": None,
            "email_status": "sent",
            "email_attempts": 1,
            "email_sent_at": at + timedelta(minutes=1),
            "email_last_error": None,
            "alert_key": alert_key,
            "escalated": escalated,
            "escalated_at": None,
        },
    )


def add_safety_alert(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client: dict[str, object],
    kind: str,
    title: str,
    body: str,
    resource: str,
    resource_id: int,
    alert_key: str,
    at: datetime,
    *,
    acknowledged_after: timedelta | None,
) -> None:
    """The alert to the client's clinician at ``at``; acknowledged after ``acknowledged_after`` (None: not
    yet), and escalated when that came later than the delay, or never came and the delay has run out."""
    if not ctx.with_alerts:
        return
    rng = ctx.record_rng
    clinician_id = int(client["primary_clinician_id"])  # type: ignore[call-overload]
    client_id = int(client["id"])  # type: ignore[call-overload]
    first = _notification(
        ctx,
        chunk,
        clinician_id,
        client_id,
        kind,
        title,
        body,
        resource,
        resource_id,
        f"{alert_key}:user:{clinician_id}",
        alert_key,
        at,
    )
    acknowledged_at = None if acknowledged_after is None else at + acknowledged_after
    if acknowledged_at is not None and acknowledged_at > ctx.now:
        acknowledged_at = None
    if acknowledged_at is not None:
        first["read_at"] = first["acknowledged_at"] = acknowledged_at
        first["acknowledgement_note"] = rng.choice(ACKNOWLEDGEMENT_NOTES)
    elif rng.random() < 0.4:
        first["read_at"] = min(at + timedelta(minutes=rng.randrange(5, 120)), ctx.now)
    delay = timedelta(hours=ctx.rules.escalate_hours, minutes=rng.randrange(0, ESCALATION_CHECK_MINUTES))
    escalated_at = at + delay
    if escalated_at > ctx.now or (acknowledged_at is not None and acknowledged_at <= escalated_at):
        return
    first["escalated_at"] = escalated_at
    hours = float(ctx.rules.escalate_hours)
    recipient = site.supervisor_id  # the clinician's supervisor; the supervisor's own alerts come back to them
    copy = _notification(
        ctx,
        chunk,
        recipient,
        client_id,
        kind,
        f"Not acknowledged: {title}",
        f"Nobody acknowledged this safety alert within {hours:g} hours of {at.isoformat()}. {body}",
        resource,
        resource_id,
        f"{alert_key}:escalated:user:{recipient}",
        alert_key,
        escalated_at,
        escalated=True,
    )
    if acknowledged_at is not None:  # the supervisor saw it dealt with
        copy["read_at"] = copy["acknowledged_at"] = acknowledged_at
