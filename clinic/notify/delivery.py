"""Sending reminders: the periodic claim of due rows, and exactly one send per claim.

A row goes ``pending`` → ``sending`` (claimed by the dispatcher with a fresh token, FOR UPDATE
SKIP LOCKED on PostgreSQL) → ``sent`` | ``pending`` again after a transient failure (with
backoff) | ``failed`` | ``suppressed``. A send task acts only while its token is still the
row's, and counts an attempt (committed) before it talks to the provider. A claim whose task
never finished — the worker was killed, the broker lost its queue — is claimed again after
``REMINDER_STUCK_AFTER_SECONDS``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from clinic.audit.models import Outcome
from clinic.audit.operations import audit, record
from clinic.auth.models import Site, User
from clinic.auth.permissions import scoped_select
from clinic.clients.models import Channel, Client, Consent, ConsentKind
from clinic.clients.operations import channels_in_force
from clinic.core import unit_of_work
from clinic.core.pagination import Page, keyset_page
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.email import (
    Attachment,
    Mailer,
    PermanentEmailError,
    TransientEmailError,
    build_message,
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
    mask,
    opt_out,
    opted_out_among,
    preferences_for_many,
    quiet_hours_end,
)
from clinic.notify.sms import PermanentSmsError, SmsBackend, TransientSmsError, sms_backend
from clinic.scheduling.models import OPEN_ATTENDEE_STATUSES, Appointment

#: Opens the connection a batch's email goes over (tests put a fake in its place).
open_mailer = Mailer
#: Session key: how to record again the outcome of a sent message whose commit is still to come.
log = logging.getLogger(__name__)


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


# --- sending a batch of claims -----------------------------------------------------------------


@dataclass
class _Batch:
    """What the sends of one batch read, loaded up front in a handful of queries."""

    rows: dict[int, Reminder]
    appointments: dict[int, Appointment]
    clients: dict[int, Client]
    sites: dict[int, Site]
    preferences: dict[int, Preferences]
    consents: dict[int, list[Consent]]
    opted_out: set[tuple[ReminderChannel, str]]


def _load(claims: Sequence[Claim]) -> _Batch:
    ids = [claim.reminder_id for claim in claims]
    rows = {row.id: row for row in db.session.scalars(select(Reminder).where(Reminder.id.in_(ids)))}
    appointments = {
        a.id: a
        for a in db.session.scalars(
            select(Appointment)
            .where(Appointment.id.in_({row.appointment_id for row in rows.values()}))
            .options(selectinload(Appointment.attendees))
        )
    }
    clients = {
        c.id: c for c in db.session.scalars(select(Client).where(Client.id.in_({r.client_id for r in rows.values()})))
    }
    site_ids = {c.site_id for c in clients.values()}
    sites = {s.id: s for s in db.session.scalars(select(Site).where(Site.id.in_(site_ids)))}
    consents: dict[int, list[Consent]] = {}
    for consent in db.session.scalars(
        select(Consent).where(Consent.client_id.in_(clients), Consent.kind == ConsentKind.COMMUNICATION)
    ):
        consents.setdefault(consent.client_id, []).append(consent)
    addresses = [
        (row.channel, address)
        for row in rows.values()
        if row.client_id in clients and (address := address_for(clients[row.client_id], row.channel))
    ]
    return _Batch(
        rows=rows,
        appointments=appointments,
        clients=clients,
        sites=sites,
        preferences=preferences_for_many(list(clients.values()), sites),
        consents=consents,
        opted_out=opted_out_among(addresses),
    )


def _why_not(batch: _Batch, row: Reminder, now: datetime) -> str | None:
    """Why this reminder must not go out now (it is suppressed), or None."""
    appointment, client = batch.appointments[row.appointment_id], batch.clients[row.client_id]
    if appointment.starts_at <= now:
        return "the appointment had begun"
    if not appointment.is_open:
        return f"the appointment is {appointment.status.value}"
    if appointment.is_group and not any(
        a.client_id == client.id and a.status in OPEN_ATTENDEE_STATUSES for a in appointment.attendees
    ):
        return "the client no longer has a seat in the session"
    return _contact_problem(batch, row, client, now)


def _contact_problem(batch: _Batch, row: Reminder, client: Client, now: datetime) -> str | None:
    consented = channels_in_force(batch.consents.get(client.id, []), now.date())
    if Channel(row.channel.value) not in consented:
        return f"no active consent to {row.channel.value}"
    address = address_for(client, row.channel)
    if not address:
        return "no phone number" if row.channel is ReminderChannel.SMS else "no email address"
    if (row.channel, address.lower()) in batch.opted_out:
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
    """Record the outcome, if the claim is still this task's; log it (a sent message always).

    Not committed here: the batch commits it together with the next attempt, or at its end.
    """
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
        audit(
            log.value,
            row,
            outcome=Outcome.FAILURE if log is LogStatus.FAILED else Outcome.SUCCESS,
            details={"channel": row.channel.value, "attempt": row.attempts},
        )
    return applied


def _context(batch: _Batch, row: Reminder) -> MessageContext:
    appointment, prefs = batch.appointments[row.appointment_id], batch.preferences[row.client_id]
    link = link_url(make_token(appointment, row.client_id, row.channel))
    return MessageContext(
        site=batch.sites[appointment.site_id].display_name,
        starts_at=appointment.starts_at,
        zone=prefs.timezone,
        language=prefs.language,
        link=link,
        channel=row.channel.value,
    )


class _Channels:
    """The batch's way out: one SMTP connection and one SMS backend, opened when first needed."""

    def __init__(self) -> None:
        self._mailer: Mailer | None = None
        self._sms: SmsBackend | None = None

    def send(self, row: Reminder, appointment: Appointment, context: MessageContext, address: str) -> str:
        """Hand the message to its channel; return the provider's id. Raises the channel's errors."""
        if row.channel is ReminderChannel.SMS:
            if self._sms is None:
                self._sms = sms_backend()
            return self._sms.send(address, render("sms.txt", context))
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
        if self._mailer is None:
            self._mailer = open_mailer()
        self._mailer.send(message)
        return message_id

    def close(self) -> None:
        if self._mailer is not None:
            self._mailer.close()
            self._mailer = None


def _hold_back(batch: _Batch, row: Reminder, token: str) -> str | None:
    """Suppress or defer the reminder when it must not go out now; say which, or None to send."""
    now = utcnow()
    appointment, prefs = batch.appointments[row.appointment_id], batch.preferences[row.client_id]
    reason = _why_not(batch, row, now)
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
    """Count the attempt and commit it (with the outcomes recorded before it) while the claim is ours.

    Committed before the provider hears of the message: a worker killed after this leaves a
    claim that is taken again once stuck; one killed before it leaves nothing counted. Either
    way the message is not sent twice in the open.
    """
    began = db.session.execute(
        update(Reminder)
        .where(Reminder.id == row.id, Reminder.claim_token == token, Reminder.status == ReminderStatus.SENDING)
        .values(attempts=Reminder.attempts + 1, attempt_started_at=utcnow())
        .returning(Reminder.attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    db.session.commit()
    if began is None:
        return False
    set_committed_value(row, "attempts", began)  # what the database holds now; nothing to flush
    return True


def deliver_batch(claims: Sequence[Claim]) -> list[str]:
    """Send claimed reminders, or suppress, defer or fail them; return what happened to each, in order.

    The batch is read in a few queries and its email goes over one SMTP connection. Each
    message still has its own transaction boundary: its attempt is committed (together with
    the previous message's outcome) right before it is sent, so a worker killed mid-batch
    leaves at most the one message it was sending to be retried, and no claim that is no longer
    this batch's (cancelled, moved, re-claimed) is sent.
    """
    if not claims:
        return []
    session = db.session()
    keep_expiring = session.expire_on_commit
    # The batch's rows stay readable across its commits; the claim token in every UPDATE's
    # WHERE clause is what guards against a row that changed meanwhile.
    session.expire_on_commit = False
    channels = _Channels()
    try:
        batch = _load(claims)
        outcomes = [_deliver_one(batch, claim, channels) for claim in claims]
        db.session.commit()
    except BaseException:
        # Rolls back, but records again a message already handed over (redo_if_rolled_back below).
        unit_of_work.rollback()
        raise
    finally:
        channels.close()
        session.expire_on_commit = keep_expiring
    return outcomes


def deliver(reminder_id: int, token: str) -> str:
    """Send one claimed reminder (a batch of one)."""
    (outcome,) = deliver_batch([Claim(reminder_id, token)])
    return outcome


def _deliver_one(batch: _Batch, claim: Claim, channels: _Channels) -> str:
    row, token = batch.rows.get(claim.reminder_id), claim.token
    if row is None or row.claim_token != token or row.status is not ReminderStatus.SENDING:
        return "not claimed"
    held = _hold_back(batch, row, token)
    if held is not None:
        return held
    address = address_for(batch.clients[row.client_id], row.channel)
    if address is None:  # _hold_back suppresses a reminder without an address; kept for the types
        _finish(row, token, ReminderStatus.SUPPRESSED, detail="no address", log=LogStatus.SUPPRESSED)
        return "suppressed"
    context = _context(batch, row)
    if not _begin_attempt(row, token):
        return "not claimed"
    appointment = batch.appointments[row.appointment_id]
    return _send_and_settle(row, token, appointment, context, address, channels=channels)


def _send_and_settle(
    row: Reminder, token: str, appointment: Appointment, context: MessageContext, address: str, *, channels: _Channels
) -> str:
    destination = mask(row.channel, address)
    try:
        provider_id = channels.send(row, appointment, context, address)
    except (TransientEmailError, TransientSmsError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:440]
        if row.attempts >= int(current_app.config["REMINDER_MAX_ATTEMPTS"]):
            _finish(
                row,
                token,
                ReminderStatus.FAILED,
                detail=f"gave up after {row.attempts} attempts; {error}",
                log=LogStatus.FAILED,
                destination=destination,
            )
            return "failed"
        retry_at = utcnow() + timedelta(seconds=backoff_seconds(row.attempts))
        _finish(
            row,
            token,
            ReminderStatus.PENDING,
            detail=error,
            log=LogStatus.RETRYING,
            available_at=retry_at,
            destination=destination,
        )
        return "retrying"
    except (PermanentEmailError, PermanentSmsError) as exc:
        _finish(
            row,
            token,
            ReminderStatus.FAILED,
            detail=f"{type(exc).__name__}: {exc}"[:500],
            log=LogStatus.FAILED,
            destination=destination,
        )
        if isinstance(exc, PermanentSmsError) and exc.opted_out:
            opt_out(ReminderChannel.SMS, address, source="provider")
            db.session.commit()
        return "failed"
    record_sent = functools.partial(
        _finish,
        row,
        token,
        ReminderStatus.SENT,
        detail=None,
        log=LogStatus.SENT,
        provider_message_id=provider_id,
        destination=destination,
    )
    record_sent()
    # Committed with the next message's attempt (or the batch's end). If the batch fails in between,
    # a rollback would forget that the provider took the message and the claim would be sent again.
    unit_of_work.redo_if_rolled_back(record_sent)
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
