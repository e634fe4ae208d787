"""Sending reminders: the periodic claim of due rows, and exactly one send per claim.

A row goes ``pending`` → ``sending`` (claimed by the dispatcher with a fresh token, FOR UPDATE
SKIP LOCKED on PostgreSQL) → ``sent`` | ``pending`` again after a transient failure (with
backoff) | ``failed`` | ``suppressed``. A send task acts only while its token is still the
row's, and counts an attempt (committed) before it talks to the provider. A claim whose task
never finished — the worker was killed, the broker lost its queue — is claimed again after
``REMINDER_STUCK_AFTER_SECONDS``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from clinic.audit.models import Outcome
from clinic.audit.operations import record
from clinic.auth.models import Site, User
from clinic.auth.permissions import scoped_select
from clinic.clients.models import Channel, Client
from clinic.clients.operations import active_channels
from clinic.core.pagination import Page, keyset_page
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.email import (
    Attachment,
    PermanentEmailError,
    TransientEmailError,
    build_message,
    send_email,
)
from clinic.notify.ics import appointment_calendar
from clinic.notify.links import link_url, make_token
from clinic.notify.messages import MessageContext, render
from clinic.notify.models import (
    LogDirection,
    LogStatus,
    NotificationLogEntry,
    Reminder,
    ReminderChannel,
    ReminderStatus,
)
from clinic.notify.reminders import (
    Preferences,
    address_for,
    in_quiet_hours,
    is_opted_out,
    mask,
    opt_out,
    preferences_for,
    quiet_hours_end,
)
from clinic.notify.sms import PermanentSmsError, TransientSmsError, sms_backend
from clinic.scheduling.models import OPEN_ATTENDEE_STATUSES, Appointment


@dataclass(frozen=True)
class Claim:
    reminder_id: int
    token: str


def _claimable(now: datetime) -> Any:
    stuck_before = now - timedelta(seconds=int(current_app.config["REMINDER_STUCK_AFTER_SECONDS"]))
    return or_(
        and_(Reminder.status == ReminderStatus.PENDING, Reminder.available_at <= now),
        and_(
            Reminder.status == ReminderStatus.SENDING,
            func.coalesce(Reminder.attempt_started_at, Reminder.claimed_at) < stuck_before,
        ),
    )


def claim_due(*, now: datetime | None = None, limit: int | None = None) -> list[Claim]:
    """Claim due rows (and rows whose claim was lost) for sending; the caller commits, then queues."""
    now = now or utcnow()
    limit = limit or int(current_app.config["REMINDER_BATCH_SIZE"])
    candidates = (
        select(Reminder.id)
        .where(_claimable(now))
        .order_by(Reminder.available_at, Reminder.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # Read first: an idle minute writes nothing (SQLite would otherwise take its write lock
    # every minute); on PostgreSQL the rows read are locked, and rows locked by another
    # dispatcher are skipped.
    ids = list(db.session.scalars(candidates))
    if not ids:
        return []
    token = uuid.uuid4().hex
    claimed = db.session.execute(
        update(Reminder)
        .where(Reminder.id.in_(ids), _claimable(now))
        .values(status=ReminderStatus.SENDING, claim_token=token, claimed_at=now, attempt_started_at=None)
        .returning(Reminder.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    return [Claim(reminder_id, token) for reminder_id in sorted(claimed)]


def backoff_seconds(attempt: int) -> int:
    config = current_app.config
    base, cap = int(config["REMINDER_RETRY_BASE_SECONDS"]), int(config["REMINDER_RETRY_MAX_SECONDS"])
    return int(min(cap, base * 2 ** max(attempt - 1, 0)))


# --- one send --------------------------------------------------------------------------------


def _why_not(row: Reminder, appointment: Appointment, client: Client, now: datetime) -> str | None:
    """Why this reminder must not go out now (it is suppressed), or None."""
    if appointment.starts_at <= now:
        return "the appointment had begun"
    if not appointment.is_open:
        return f"the appointment is {appointment.status.value}"
    if appointment.is_group and not any(
        a.client_id == client.id and a.status in OPEN_ATTENDEE_STATUSES for a in appointment.attendees
    ):
        return "the client no longer has a seat in the session"
    return _contact_problem(row.channel, client, now)


def _contact_problem(channel: ReminderChannel, client: Client, now: datetime) -> str | None:
    if Channel(channel.value) not in active_channels(client.id, on=now.date()):
        return f"no active consent to {channel.value}"
    address = address_for(client, channel)
    if not address:
        return "no phone number" if channel is ReminderChannel.SMS else "no email address"
    if is_opted_out(channel, address):
        return "the address opted out"
    return None


def _finish(
    row: Reminder,
    token: str,
    status: ReminderStatus,
    *,
    detail: str | None,
    log: LogStatus | None,
    available_at: datetime | None = None,
    provider_message_id: str | None = None,
    destination: str | None = None,
) -> bool:
    """Record the outcome, if the claim is still this task's; log it (a sent message always)."""
    now = utcnow()
    values: dict[str, Any] = {"status": status, "detail": detail, "claim_token": None}
    if available_at is not None:
        values["available_at"] = available_at
    if status is ReminderStatus.SENT:
        values["sent_at"] = now
        values["provider_message_id"] = provider_message_id
    result = db.session.execute(
        update(Reminder)
        .where(Reminder.id == row.id, Reminder.claim_token == token, Reminder.status == ReminderStatus.SENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    applied = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if log is not None and (applied or log is LogStatus.SENT):
        db.session.add(
            NotificationLogEntry(
                at=now,
                direction=LogDirection.OUTBOUND,
                channel=row.channel,
                status=log,
                site_id=row.site_id,
                client_id=row.client_id,
                appointment_id=row.appointment_id,
                reminder_id=row.id,
                attempt=row.attempts,
                destination=destination,
                detail=(detail or "") if applied else "sent; the reminder was re-planned meanwhile",
                provider_message_id=provider_message_id,
            )
        )
        record(
            f"reminder.{log.value}",
            resource="reminder",
            resource_id=row.id,
            client_id=row.client_id,
            outcome=Outcome.FAILURE if log is LogStatus.FAILED else Outcome.SUCCESS,
            details={"channel": row.channel.value, "attempt": row.attempts},
        )
    db.session.commit()
    return applied


def _context(row: Reminder, appointment: Appointment, prefs: Preferences) -> MessageContext:
    site = db.session.get_one(Site, appointment.site_id)
    link = link_url(make_token(appointment, row.client_id, row.channel))
    return MessageContext(
        site=site.display_name,
        starts_at=appointment.starts_at,
        zone=prefs.timezone,
        language=prefs.language,
        link=link,
        channel=row.channel.value,
    )


def _send(row: Reminder, appointment: Appointment, context: MessageContext, address: str) -> str:
    """Hand the message to the channel; return the provider's id. Raises the channel's errors."""
    if row.channel is ReminderChannel.SMS:
        return sms_backend().send(address, render("sms.txt", context))
    calendar = appointment_calendar(
        appointment_id=appointment.id,
        sequence=appointment.sequence,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        summary=render("ics_summary.txt", context),
        site=context.site,
        link=context.link,
        public_base_url=current_app.config["PUBLIC_BASE_URL"],
    )
    # The same reminder for the same start keeps its Message-ID, so a resend is recognisable.
    message_id = f"<reminder-{row.id}-{int(row.for_starts_at.timestamp())}@clinic.local>"
    message = build_message(
        to=address,
        subject=render("email_subject.txt", context),
        text=render("email_body.txt", context),
        attachments=[Attachment("appointment.ics", calendar, "text", "calendar")],
        message_id=message_id,
    )
    send_email(message)
    return message_id


def _hold_back(row: Reminder, token: str, appointment: Appointment, client: Client, prefs: Preferences) -> str | None:
    """Suppress or defer the reminder when it must not go out now; say which, or None to send."""
    now = utcnow()
    reason = _why_not(row, appointment, client, now)
    if reason is None and in_quiet_hours(now, prefs):
        resume = quiet_hours_end(now, prefs)
        if resume < appointment.starts_at:
            _finish(row, token, ReminderStatus.PENDING, detail="deferred: quiet hours", log=None, available_at=resume)
            return "deferred"
        reason = "quiet hours until the appointment"
    if reason is None:
        return None
    _finish(row, token, ReminderStatus.SUPPRESSED, detail=reason, log=LogStatus.SUPPRESSED)
    return "suppressed"


def _begin_attempt(row: Reminder, token: str) -> bool:
    """Count the attempt, committed before the provider hears of it, while the claim is ours.

    A worker killed after this leaves a claim that is taken again once stuck; one killed
    before it leaves nothing counted. Either way the message is not sent twice in the open.
    """
    began = db.session.execute(
        update(Reminder)
        .where(Reminder.id == row.id, Reminder.claim_token == token, Reminder.status == ReminderStatus.SENDING)
        .values(attempts=Reminder.attempts + 1, attempt_started_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if began.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        return False
    db.session.commit()
    db.session.refresh(row)
    return True


def deliver(reminder_id: int, token: str) -> str:
    """Send one claimed reminder, or suppress, defer or fail it; return what happened."""
    row = db.session.get(Reminder, reminder_id)
    if row is None or row.claim_token != token or row.status is not ReminderStatus.SENDING:
        return "not claimed"
    appointment = db.session.get_one(Appointment, row.appointment_id)
    client = db.session.get_one(Client, row.client_id)
    prefs = preferences_for(client)
    held = _hold_back(row, token, appointment, client, prefs)
    if held is not None:
        return held
    address = address_for(client, row.channel)
    if address is None:  # _hold_back suppresses a reminder without an address; kept for the types
        _finish(row, token, ReminderStatus.SUPPRESSED, detail="no address", log=LogStatus.SUPPRESSED)
        return "suppressed"
    context = _context(row, appointment, prefs)
    if not _begin_attempt(row, token):
        return "not claimed"
    return _send_and_settle(row, token, appointment, context, address)


def _send_and_settle(
    row: Reminder, token: str, appointment: Appointment, context: MessageContext, address: str
) -> str:
    destination = mask(row.channel, address)
    try:
        provider_id = _send(row, appointment, context, address)
    except (TransientEmailError, TransientSmsError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:440]
        if row.attempts >= int(current_app.config["REMINDER_MAX_ATTEMPTS"]):
            _finish(row, token, ReminderStatus.FAILED, detail=f"gave up after {row.attempts} attempts; {error}",
                    log=LogStatus.FAILED, destination=destination)
            return "failed"
        retry_at = utcnow() + timedelta(seconds=backoff_seconds(row.attempts))
        _finish(row, token, ReminderStatus.PENDING, detail=error, log=LogStatus.RETRYING,
                available_at=retry_at, destination=destination)
        return "retrying"
    except (PermanentEmailError, PermanentSmsError) as exc:
        _finish(row, token, ReminderStatus.FAILED, detail=f"{type(exc).__name__}: {exc}"[:500],
                log=LogStatus.FAILED, destination=destination)
        if isinstance(exc, PermanentSmsError) and exc.opted_out:
            opt_out(ReminderChannel.SMS, address, source="provider")
            db.session.commit()
        return "failed"
    _finish(row, token, ReminderStatus.SENT, detail=None, log=LogStatus.SENT,
            provider_message_id=provider_id, destination=destination)
    return "sent"


# --- the delivery log ------------------------------------------------------------------------


def delivery_log(
    user: User,
    *,
    limit: int,
    cursor: str | None,
    client_id: int | None = None,
    site_id: int | None = None,
    status: LogStatus | None = None,
    channel: ReminderChannel | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
) -> Page[NotificationLogEntry]:
    """Every outcome of a send and every inbound text in the caller's sites, newest first."""
    stmt = scoped_select(NotificationLogEntry, user)
    if client_id is not None:
        stmt = stmt.where(NotificationLogEntry.client_id == client_id)
    if site_id is not None:
        stmt = stmt.where(NotificationLogEntry.site_id == site_id)
    if status is not None:
        stmt = stmt.where(NotificationLogEntry.status == status)
    if channel is not None:
        stmt = stmt.where(NotificationLogEntry.channel == channel)
    if from_ is not None:
        stmt = stmt.where(NotificationLogEntry.at >= from_)
    if to is not None:
        stmt = stmt.where(NotificationLogEntry.at <= to)
    page = keyset_page(
        stmt, keys=[NotificationLogEntry.at, NotificationLogEntry.id], limit=limit, cursor=cursor, descending=True
    )
    for logged_client in sorted({e.client_id for e in page.items if e.client_id is not None}):
        record("notification_log.read", resource="notification_log", client_id=logged_client)
    return page
