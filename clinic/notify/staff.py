"""Staff notifications: alerts a user lists in clinic and receives by email through the worker.

The row is written in the same transaction as the event that causes it (an outbox); the email
is sent by a task after commit, and a periodic sweep resends whatever a lost task left behind.
Emails carry no client data: they say that something needs attention and link to clinic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import aliased

from clinic.audit.operations import audit, record
from clinic.auth.models import Role, User, site_memberships
from clinic.clients.models import Client
from clinic.core.celery import send_after_commit
from clinic.core.errors import abort_problem
from clinic.core.pagination import Page, keyset_page
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.models import SAFETY_KINDS, EmailStatus, StaffNotification, StaffNotificationKind

log = logging.getLogger(__name__)


def notify_staff(
    user_id: int,
    *,
    kind: StaffNotificationKind,
    title: str,
    body: str,
    client_id: int | None = None,
    resource: str | None = None,
    resource_id: object | None = None,
    dedupe_key: str | None = None,
    alert_key: str | None = None,
    escalated: bool = False,
) -> StaffNotification | None:
    """Create a notification (once per ``dedupe_key``); its email is queued after commit.

    ``alert_key`` ties the copies of one safety alert together (see :func:`send_safety_alert`).
    """
    if dedupe_key is not None:
        existing = db.session.scalars(
            select(StaffNotification).where(StaffNotification.dedupe_key == dedupe_key)
        ).first()
        if existing is not None:
            return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    row = StaffNotification(
        user_id=user_id,
        kind=kind,
        title=title,
        body=body,
        client_id=client_id,
        resource=resource,
        resource_id=None if resource_id is None else str(resource_id),
        dedupe_key=dedupe_key,
        alert_key=alert_key,
        escalated=escalated,
        email_status=EmailStatus.PENDING if user.email else EmailStatus.SKIPPED,
    )
    db.session.add(row)
    db.session.flush()
    if row.email_status is EmailStatus.PENDING:
        # Queued once the transaction commits; the periodic sweep sends it if the broker is down.
        send_after_commit("clinic.notify.tasks.send_staff_email", row.id)
    return row


def _site_staff(site_id: int) -> list[User]:
    """The site's active members, in id order."""
    return list(
        db.session.scalars(
            select(User)
            .join(site_memberships, site_memberships.c.user_id == User.id)
            .where(site_memberships.c.site_id == site_id, User.is_active.is_(True))
            .order_by(User.id)
        ).all()
    )


def _supervisors(members: Sequence[User]) -> list[int]:
    return [u.id for u in members if u.is_supervisor and u.role is Role.CLINICIAN]


def _admins(members: Sequence[User]) -> list[int]:
    return [u.id for u in members if u.role is Role.ADMIN]


def safety_recipients(client_site_id: int, primary_clinician_id: int | None) -> list[int]:
    """Who gets a safety alert: the primary clinician if active, else the site's supervisors, else its admins.

    Never nobody while the site has any active supervisor or admin (DOMAIN.md, "Safety alerts").
    A primary clinician counts only while active and still a member of the client's site.
    """
    if primary_clinician_id is not None:
        clinician = db.session.get(User, primary_clinician_id)
        if clinician is not None and clinician.is_active and client_site_id in clinician.site_ids:
            return [clinician.id]
    members = _site_staff(client_site_id)
    return _supervisors(members) or _admins(members)


def send_safety_alert(
    client: Client,
    *,
    kind: StaffNotificationKind,
    title: str,
    body: str,
    resource: str | None = None,
    resource_id: object | None = None,
    dedupe_key: str,
    also_user_ids: Sequence[int | None] = (),
) -> list[StaffNotification]:
    """Raise a safety alert about ``client``, routed so it always reaches someone.

    ``also_user_ids`` (e.g. the prescriber of a missed dose) get it too when active and members
    of the client's site; each recipient gets one notification, deduplicated per recipient with
    ``dedupe_key``, which is also the alert's key: every copy of the alert shares it, and
    :func:`escalate_safety_alerts` sends it once more when no copy is acknowledged in time.
    ``title`` and ``body`` must not name the client (an MRN may stand for them).
    """
    if kind not in SAFETY_KINDS:
        raise ValueError(f"{kind} is not a safety alert kind")
    alert_key = dedupe_key[:160]
    recipients = safety_recipients(client.site_id, client.primary_clinician_id)
    for extra in also_user_ids:
        if extra is not None and extra not in recipients:
            user = db.session.get(User, extra)
            if user is not None and user.is_active and client.site_id in user.site_ids:
                recipients.append(extra)
    made = []
    for user_id in recipients:
        row = notify_staff(
            user_id,
            kind=kind,
            title=title,
            body=body,
            client_id=client.id,
            resource=resource,
            resource_id=resource_id,
            dedupe_key=f"{alert_key}:user:{user_id}",
            alert_key=alert_key,
        )
        if row is not None:
            made.append(row)
    if made:  # who was told about the client, as the escalation records it
        record(
            "staff_notification.route",
            resource="staff_notification",
            resource_id=made[0].id,
            client_id=client.id,
            details={"kind": kind.value, "alert_key": alert_key, "to_user_ids": [row.user_id for row in made]},
        )
    if not recipients:
        log.error("Safety alert %s on client %s has no active recipient at site %s", kind, client.id, client.site_id)
    return made


def escalation_recipients(site_id: int, first_recipients: Sequence[int]) -> list[int]:
    """Who gets an unacknowledged safety alert once more.

    The site's active supervisors who did not get it first; when there are none (the alert went
    to the only supervisor, or to all of them, or the site has none), the site's active admins
    who did not get it; when there are none either, the first recipients again, so the alert is
    still sent once more.
    """
    members = _site_staff(site_id)
    first = set(first_recipients)
    supervisors = [uid for uid in _supervisors(members) if uid not in first]
    if supervisors:
        return supervisors
    admins = [uid for uid in _admins(members) if uid not in first]
    if admins:
        return admins
    active = {u.id for u in members}
    return [uid for uid in sorted(first) if uid in active]


def _unacknowledged_alerts(cutoff: datetime, limit: int) -> Sequence[str]:
    """Keys of safety alerts first sent at or before ``cutoff``, not escalated, no first copy acknowledged.

    Reads only open first copies (unacknowledged, not escalated), so the work does not grow with
    the alerts dealt with long ago.
    """
    acknowledged = aliased(StaffNotification)
    return db.session.scalars(
        select(StaffNotification.alert_key)
        .where(
            StaffNotification.alert_key.is_not(None),
            StaffNotification.kind.in_(SAFETY_KINDS),
            StaffNotification.escalated.is_(False),
            StaffNotification.escalated_at.is_(None),
            StaffNotification.acknowledged_at.is_(None),
            StaffNotification.created_at <= cutoff,
            ~exists().where(
                acknowledged.alert_key == StaffNotification.alert_key,
                acknowledged.escalated.is_(False),
                acknowledged.acknowledged_at.is_not(None),
            ),
        )
        .group_by(StaffNotification.alert_key)
        .order_by(func.min(StaffNotification.created_at))
        .limit(limit)
    ).all()  # type: ignore[return-value]


def _claim_escalation(alert_key: str, now: datetime) -> list[StaffNotification]:
    """Mark the alert's first copies escalated; one caller wins, whoever else tries at the same time.

    The UPDATE sets ``escalated_at`` only where it is still null and no first copy is acknowledged:
    a second worker's UPDATE waits for the first's row locks (PostgreSQL) or its write lock
    (SQLite), then finds nothing to change.
    """
    acknowledged = aliased(StaffNotification)
    result = db.session.execute(
        update(StaffNotification)
        .where(
            StaffNotification.alert_key == alert_key,
            StaffNotification.escalated.is_(False),
            StaffNotification.escalated_at.is_(None),
            ~exists().where(
                acknowledged.alert_key == alert_key,
                acknowledged.escalated.is_(False),
                acknowledged.acknowledged_at.is_not(None),
            ),
        )
        .values(escalated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return []
    return list(
        db.session.scalars(
            select(StaffNotification)
            .where(StaffNotification.alert_key == alert_key, StaffNotification.escalated.is_(False))
            .order_by(StaffNotification.id)
            .execution_options(populate_existing=True)
        ).all()
    )


def escalate_safety_alerts(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send each safety alert nobody acknowledged within ``SAFETY_ALERT_ESCALATE_HOURS`` once more.

    The copies go to :func:`escalation_recipients`, marked ``escalated``; returns how many alerts
    were escalated. Run by the periodic task under a job lock; the database makes it once per
    alert even without the lock (the claim on ``escalated_at``, and the escalated copies' unique
    ``dedupe_key``).
    """
    moment = now or utcnow()
    hours = float(current_app.config["SAFETY_ALERT_ESCALATE_HOURS"])
    cutoff = moment - timedelta(hours=hours)
    escalated = 0
    for alert_key in _unacknowledged_alerts(cutoff, limit):
        firsts = _claim_escalation(alert_key, moment)
        if not firsts:
            continue
        original = firsts[0]
        client = db.session.get(Client, original.client_id) if original.client_id is not None else None
        if client is None:
            continue
        recipients = escalation_recipients(client.site_id, [row.user_id for row in firsts])
        made = []
        for user_id in recipients:
            row = notify_staff(
                user_id,
                kind=original.kind,
                title=f"Not acknowledged: {original.title}"[:200],
                body=(
                    f"Nobody acknowledged this safety alert within {hours:g} hours of "
                    f"{original.created_at.isoformat()}. {original.body}"
                ),
                client_id=client.id,
                resource=original.resource,
                resource_id=original.resource_id,
                dedupe_key=f"{alert_key}:escalated:user:{user_id}",
                alert_key=alert_key,
                escalated=True,
            )
            if row is not None:
                made.append(row.user_id)
        if not made:
            log.error("Safety alert %s on client %s could not be escalated: no active recipient", alert_key, client.id)
        record(
            "staff_notification.escalate",
            resource="staff_notification",
            resource_id=original.id,
            client_id=client.id,
            details={"kind": original.kind.value, "to_user_ids": made, "after_hours": hours},
        )
        escalated += 1
    return escalated


def list_own(
    user: User, *, limit: int, cursor: str | None, unread: bool | None = None, acknowledged: bool | None = None
) -> Page[StaffNotification]:
    stmt = select(StaffNotification).where(StaffNotification.user_id == user.id)
    if unread is True:
        stmt = stmt.where(StaffNotification.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(StaffNotification.read_at.is_not(None))
    if acknowledged is True:
        stmt = stmt.where(StaffNotification.acknowledged_at.is_not(None))
    elif acknowledged is False:
        stmt = stmt.where(StaffNotification.acknowledged_at.is_(None))
    page = keyset_page(stmt, keys=[StaffNotification.id], limit=limit, cursor=cursor, descending=True)
    # Alerts name clients (an MRN, a flag): reading them is reading client data.
    for client_id in sorted({n.client_id for n in page.items if n.client_id is not None}):
        record("staff_notification.read", resource="staff_notification", client_id=client_id)
    return page


def count_open(user: User) -> tuple[int, int]:
    """How many of the user's alerts are unread, and how many not acknowledged (counts name no client)."""
    unread, unacknowledged = db.session.execute(
        select(
            func.count().filter(StaffNotification.read_at.is_(None)),
            func.count().filter(StaffNotification.acknowledged_at.is_(None)),
        ).where(StaffNotification.user_id == user.id)
    ).one()
    return int(unread or 0), int(unacknowledged or 0)


def get_own(user: User, notification_id: int) -> StaffNotification:
    """One of the user's own notifications; 404 when it is not theirs (or does not exist)."""
    row = db.session.scalars(
        select(StaffNotification).where(StaffNotification.id == notification_id, StaffNotification.user_id == user.id)
    ).first()
    if row is None:
        abort_problem(404, "Not found.")
    return row


def acknowledge(user: User, notification_id: int, *, note: str | None = None) -> StaffNotification:
    """The user dealt with the alert: acknowledged (and read) once, with their note; again changes nothing."""
    row = get_own(user, notification_id)
    if row.acknowledged_at is not None:
        if row.client_id is not None:
            audit("read", row)
        return row
    now = utcnow()
    row.acknowledged_at = now
    row.acknowledgement_note = note.strip() if note and note.strip() else None
    if row.read_at is None:
        row.read_at = now
    db.session.flush()
    audit("acknowledge", row, details={"kind": row.kind.value})
    return row


def mark_read(user: User, notification_id: int) -> StaffNotification:
    row = get_own(user, notification_id)
    if row.read_at is None:
        row.read_at = utcnow()
        db.session.flush()
    if row.client_id is not None:
        audit("read", row)
    return row


def claim_for_email(notification_id: int) -> StaffNotification | None:
    """Move a pending notification to ``sending`` (one claimant wins); None if nothing to send."""
    result = db.session.execute(
        update(StaffNotification)
        .where(StaffNotification.id == notification_id, StaffNotification.email_status == EmailStatus.PENDING)
        .values(email_status=EmailStatus.SENDING, email_attempts=StaffNotification.email_attempts + 1)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return db.session.get(StaffNotification, notification_id)


def settle_without_mail_server(notification_id: int) -> bool:
    """No mail server: a pending email is marked ``not_configured`` (nothing is sent); False if not pending."""
    result = db.session.execute(
        update(StaffNotification)
        .where(StaffNotification.id == notification_id, StaffNotification.email_status == EmailStatus.PENDING)
        .values(email_status=EmailStatus.NOT_CONFIGURED)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def due_for_sweep() -> Sequence[int]:
    """Pending emails, and emails stuck in ``sending`` by a worker that died, to (re)send."""
    stale = utcnow() - timedelta(seconds=current_app.config["STAFF_EMAIL_STUCK_AFTER_SECONDS"])
    db.session.execute(
        update(StaffNotification)
        .where(StaffNotification.email_status == EmailStatus.SENDING, StaffNotification.created_at < stale)
        .values(email_status=EmailStatus.PENDING)
    )
    return db.session.scalars(
        select(StaffNotification.id)
        .where(StaffNotification.email_status == EmailStatus.PENDING)
        .order_by(StaffNotification.id)
        .limit(500)
    ).all()
