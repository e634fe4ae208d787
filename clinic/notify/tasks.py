"""Background delivery: staff notification emails and client reminders."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from flask import current_app

from clinic.core.locks import job_lock
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.delivery import Claim, claim_due, deliver, deliver_batch
from clinic.notify.email import PermanentEmailError, TransientEmailError, build_message, send_email
from clinic.notify.models import EmailStatus, StaffNotification
from clinic.notify.staff import claim_for_email, due_for_sweep, escalate_safety_alerts, settle_without_mail_server

log = logging.getLogger(__name__)


@shared_task(name="clinic.notify.tasks.send_staff_email", bind=True, ignore_result=True, max_retries=None)
def send_staff_email(self: object, notification_id: int) -> str:
    """Email one staff notification. Safe to run twice: only a pending row is claimed.

    Two short transactions: the claim is committed before the SMTP conversation, so a second
    worker cannot send the same message; the outcome is committed after it.
    """
    if not current_app.config.get("MAIL_SERVER"):
        # Say what happened: the alert is in clinic, but no email left it.
        if not settle_without_mail_server(notification_id):
            return "not pending"
        log.info("staff notification %s: MAIL_SERVER is not set, so no email was sent", notification_id)
        return EmailStatus.NOT_CONFIGURED.value
    row = claim_for_email(notification_id)
    if row is None:
        return "not pending"
    user = row.user_id
    db.session.commit()
    from clinic.auth.models import User

    recipient = db.session.get(User, user)
    link = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/api/v1/staff-notifications?unread=true"
    message = build_message(
        to=recipient.email if recipient else "",
        subject=f"clinic: {row.title}",
        text=f"{row.title}\n\nSign in to clinic to see the details:\n{link}\n",
        message_id=f"<staff-notification-{row.id}@clinic.local>",
    )
    row = db.session.get_one(StaffNotification, notification_id)
    try:
        send_email(message)
    except TransientEmailError as exc:
        max_attempts = int(current_app.config["STAFF_EMAIL_MAX_ATTEMPTS"])
        row.email_last_error = str(exc)[:500]
        if row.email_attempts >= max_attempts:
            row.email_status = EmailStatus.FAILED
            return "failed"
        row.email_status = EmailStatus.PENDING
        db.session.commit()
        countdown = min(300, 15 * 2 ** (row.email_attempts - 1))
        raise self.retry(countdown=countdown, exc=exc)  # type: ignore[attr-defined]  # noqa: B904
    except PermanentEmailError as exc:
        row.email_status = EmailStatus.FAILED
        row.email_last_error = str(exc)[:500]
        return "failed"
    row.email_status = EmailStatus.SENT
    row.email_sent_at = utcnow()
    return "sent"


@shared_task(name="clinic.notify.tasks.sweep_staff_emails", ignore_result=True)
def sweep_staff_emails() -> int:
    """Queue every pending staff email (those whose task was lost or never queued)."""
    ids = list(due_for_sweep())
    db.session.commit()
    for notification_id in ids:
        send_staff_email.delay(notification_id)
    return len(ids)


@shared_task(name="clinic.notify.tasks.escalate_safety_alerts", ignore_result=True)
def escalate_safety_alerts_task() -> int:
    """Every few minutes (beat): send each safety alert nobody acknowledged in time once more.

    The lock keeps two beats from doing the work twice at once; the claim in the database keeps
    an alert from being escalated twice even when the lock expired or was never held.
    """
    ttl = max(int(current_app.config["SAFETY_ALERT_ESCALATE_CHECK_SECONDS"]), 1)
    with job_lock("notify.escalate_safety_alerts", ttl_seconds=ttl) as held:
        if not held:
            return 0
        return escalate_safety_alerts()


@shared_task(name="clinic.notify.tasks.dispatch_reminders", ignore_result=True)
def dispatch_reminders() -> int:
    """Every minute (beat): claim due reminders and hand them, a few at a time, to send tasks.

    Reminders are rows, never Celery ``eta``s; a claim whose task is lost is claimed again later.
    """
    ttl = max(int(current_app.config["REMINDER_DISPATCH_SECONDS"]), 1)
    chunk = int(current_app.config["REMINDER_SEND_CHUNK"])  # at least 1 (checked at start-up)
    with job_lock("notify.dispatch_reminders", ttl_seconds=ttl) as held:
        if not held:
            return 0
        claims = claim_due()
        db.session.commit()
        for start in range(0, len(claims), chunk):
            part = claims[start : start + chunk]
            try:
                send_reminders.delay([[claim.reminder_id, claim.token] for claim in part])
            except Exception:  # noqa: BLE001 - the broker is down: these claims are retried when stuck
                log.warning("could not queue %d reminders; they are claimed again later", len(claims) - start)
                break
        return len(claims)


@shared_task(name="clinic.notify.tasks.send_reminders", ignore_result=True)
def send_reminders(claims: list[list[Any]]) -> list[str]:
    """Send a chunk of claimed reminders (``[[reminder_id, token], ...]``); harmless when run twice."""
    return deliver_batch([Claim(int(reminder_id), str(token)) for reminder_id, token in claims])


@shared_task(name="clinic.notify.tasks.send_reminder", ignore_result=True)
def send_reminder(reminder_id: int, token: str) -> str:
    """Send one claimed reminder (tasks queued by earlier versions); harmless when run twice."""
    return deliver(reminder_id, token)
