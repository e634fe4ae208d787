"""Reminder planning: the outbox rows an appointment needs, and a client's preferences.

:func:`plan_reminders` is called by every scheduling operation that creates or changes an
appointment, in the same transaction: it writes, moves or cancels the appointment's reminder
rows — one per client, consented channel and lead time, never due inside quiet hours (it is
moved earlier instead), never for an opted-out address. Sending is :mod:`clinic.notify.delivery`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import or_, select

from clinic.audit.operations import record
from clinic.auth.models import Site, User
from clinic.clients.models import Channel, Client
from clinic.clients.operations import active_channels
from clinic.core.signals import appointment_booked, appointment_cancelled, appointment_changed, contact_details_changed
from clinic.core.time import from_local, to_local, today, utcnow
from clinic.extensions import db
from clinic.notify.messages import message_language
from clinic.notify.models import NotificationPreference, OptOut, Reminder, ReminderChannel, ReminderStatus
from clinic.scheduling.models import OPEN_ATTENDEE_STATUSES, OPEN_STATUSES, Appointment, AppointmentAttendee

DEFAULT_CHANNELS = (ReminderChannel.SMS, ReminderChannel.EMAIL)
#: A reminder that would fall in quiet hours is due this long before they begin, so that the
#: once-a-minute dispatch and a retry or two still reach the client before the quiet starts.
QUIET_MARGIN = timedelta(minutes=15)


@dataclass(frozen=True)
class Preferences:
    channels: tuple[ReminderChannel, ...]
    lead_times_minutes: tuple[int, ...]
    quiet_start: time
    quiet_end: time
    language: str
    #: The zone times are told in and quiet hours are kept in: the client's, or the site's.
    timezone: str
    #: The client's own zone when they set one, else None.
    own_timezone: str | None
    is_default: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "channels": [c.value for c in self.channels],
            "lead_times_minutes": list(self.lead_times_minutes),
            "quiet_hours": {"start": self.quiet_start.strftime("%H:%M"), "end": self.quiet_end.strftime("%H:%M")},
            "language": self.language,
            "timezone": self.own_timezone,
            "effective_timezone": self.timezone,
            "is_default": self.is_default,
        }


def _clock(value: str) -> time:
    return datetime.strptime(value, "%H:%M").time()  # noqa: DTZ007 - a wall-clock time of day


def preferences_for(client: Client) -> Preferences:
    """The client's preferences, or the defaults (config, the site's zone, their language)."""
    site = db.session.get_one(Site, client.site_id)
    return _preferences(client, site, db.session.get(NotificationPreference, client.id))


def preferences_for_many(clients: Sequence[Client], sites: dict[int, Site]) -> dict[int, Preferences]:
    """:func:`preferences_for` of many clients at once (``sites`` holds theirs): one query."""
    rows = {
        row.client_id: row
        for row in db.session.scalars(
            select(NotificationPreference).where(NotificationPreference.client_id.in_([c.id for c in clients]))
        )
    }
    return {c.id: _preferences(c, sites[c.site_id], rows.get(c.id)) for c in clients}


def _preferences(client: Client, site: Site, row: NotificationPreference | None) -> Preferences:
    if row is None:
        config = current_app.config
        start, end = str(config["REMINDER_QUIET_HOURS"]).split("-")
        return Preferences(
            channels=DEFAULT_CHANNELS,
            lead_times_minutes=tuple(sorted(set(config["REMINDER_LEAD_TIMES_MINUTES"]), reverse=True)),
            quiet_start=_clock(start),
            quiet_end=_clock(end),
            language=message_language(client.preferred_language),
            timezone=site.timezone,
            own_timezone=None,
            is_default=True,
        )
    return Preferences(
        channels=tuple(ReminderChannel(c) for c in row.channels),
        lead_times_minutes=tuple(row.lead_times_minutes),
        quiet_start=_clock(row.quiet_start),
        quiet_end=_clock(row.quiet_end),
        language=message_language(row.language),
        timezone=row.timezone or site.timezone,
        own_timezone=row.timezone,
        is_default=False,
    )


def read_preferences(client: Client) -> dict[str, Any]:
    prefs = preferences_for(client)
    record("notification_preferences.read", resource="client", resource_id=client.id, client_id=client.id)
    consented = active_channels(client.id)
    return {
        **prefs.as_dict(),
        "active_channels": sorted(c.value for c in usable_channels(client, prefs, on=today())),
        "consented_channels": sorted(c.value for c in consented),
        "opted_out_channels": sorted(c.value for c in DEFAULT_CHANNELS if _opted_out_on(client, c)),
    }


def save_preferences(
    client: Client,
    *,
    actor: User,
    channels: Sequence[ReminderChannel],
    lead_times_minutes: Sequence[int],
    quiet_hours: dict[str, str] | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """Replace the client's preferences and re-plan the reminders of their coming appointments."""
    row = db.session.get(NotificationPreference, client.id) or NotificationPreference(client_id=client.id)
    quiet = quiet_hours or {}
    fallback_start, fallback_end = str(current_app.config["REMINDER_QUIET_HOURS"]).split("-")
    row.site_id = client.site_id
    row.channels = list(dict.fromkeys(c.value for c in channels))
    row.lead_times_minutes = sorted(set(lead_times_minutes), reverse=True)
    row.quiet_start = quiet.get("start", fallback_start)
    row.quiet_end = quiet.get("end", fallback_end)
    row.language = language or message_language(client.preferred_language)
    row.timezone = timezone
    row.updated_by_id = actor.id
    db.session.add(row)
    db.session.flush()
    record("notification_preferences.update", resource="client", resource_id=client.id, client_id=client.id)
    replan_client(client.id)
    return read_preferences(client)


# --- addresses, consents, opt-outs ---------------------------------------------------------


def address_for(client: Client, channel: ReminderChannel) -> str | None:
    return client.phone if channel is ReminderChannel.SMS else client.email


def mask(channel: ReminderChannel, address: str) -> str:
    """Enough of an address to tell numbers apart in the log, not enough to use it."""
    if channel is ReminderChannel.EMAIL:
        name, _, domain = address.partition("@")
        return f"{name[:1]}•••@{domain}"
    return "•" * max(len(address) - 4, 0) + address[-4:]


def is_opted_out(channel: ReminderChannel, address: str) -> bool:
    return bool(opted_out_among([(channel, address)]))


def opted_out_among(addresses: Sequence[tuple[ReminderChannel, str]]) -> set[tuple[ReminderChannel, str]]:
    """Which of these (channel, address) pairs opted out (addresses lower-cased): one query."""
    wanted = {(channel, address.lower()) for channel, address in addresses}
    if not wanted:
        return set()
    found = db.session.execute(
        select(OptOut.channel, OptOut.address).where(
            OptOut.channel.in_(sorted({c for c, _a in wanted})), OptOut.address.in_(sorted({a for _c, a in wanted}))
        )
    )
    return {(channel, address) for channel, address in found if (channel, address) in wanted}


def _opted_out_on(client: Client, channel: ReminderChannel) -> bool:
    address = address_for(client, channel)
    return address is not None and is_opted_out(channel, address)


def usable_channels(client: Client, prefs: Preferences, *, on: date) -> list[ReminderChannel]:
    """Channels the client wants, has consented to, has an address for and has not opted out of."""
    consented = active_channels(client.id, on=on)
    usable = []
    for channel in prefs.channels:
        address = address_for(client, channel)
        if Channel(channel.value) in consented and address and not is_opted_out(channel, address):
            usable.append(channel)
    return usable


# --- quiet hours ---------------------------------------------------------------------------


def _quiet(clock: time, prefs: Preferences) -> bool:
    start, end = prefs.quiet_start, prefs.quiet_end
    if start == end:
        return False  # no quiet hours
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # across midnight, e.g. 21:00-08:00


def in_quiet_hours(instant: datetime, prefs: Preferences) -> bool:
    return _quiet(to_local(instant, prefs.timezone).time(), prefs)


def _quiet_began(instant: datetime, prefs: Preferences) -> datetime:
    """The instant the quiet hours holding ``instant`` began (on the client's wall clock)."""
    local = to_local(instant, prefs.timezone)
    day = local.date()
    if prefs.quiet_start > prefs.quiet_end and local.time() < prefs.quiet_end:
        day -= timedelta(days=1)  # after midnight: they began the evening before
    return from_local(datetime.combine(day, prefs.quiet_start), prefs.timezone)


def quiet_hours_end(instant: datetime, prefs: Preferences) -> datetime:
    """The instant the quiet hours holding ``instant`` end."""
    local = to_local(instant, prefs.timezone)
    day = local.date()
    if prefs.quiet_start > prefs.quiet_end and local.time() >= prefs.quiet_start:
        day += timedelta(days=1)  # in the evening: they end the next morning
    return from_local(datetime.combine(day, prefs.quiet_end), prefs.timezone)


def before_quiet_hours(due: datetime, prefs: Preferences) -> datetime:
    """``due``, or — when it falls in quiet hours — shortly before those quiet hours began."""
    if not in_quiet_hours(due, prefs):
        return due
    return _quiet_began(due, prefs) - QUIET_MARGIN


# --- planning ------------------------------------------------------------------------------

Key = tuple[int, ReminderChannel, int]


def _reminded_clients(appointment: Appointment) -> list[int]:
    if appointment.client_id is not None:
        return [appointment.client_id]
    return [a.client_id for a in appointment.attendees if a.status in OPEN_ATTENDEE_STATUSES]


#: Per client, their preferences and usable channels: looked up once when planning many appointments.
ContactCache = dict[int, tuple[Preferences, list[ReminderChannel]]]


def _contact(client_id: int, now: datetime, cache: ContactCache) -> tuple[Preferences, list[ReminderChannel]]:
    if client_id not in cache:
        client = db.session.get_one(Client, client_id)
        prefs = preferences_for(client)
        cache[client_id] = (prefs, usable_channels(client, prefs, on=now.date()))
    return cache[client_id]


def desired_reminders(
    appointment: Appointment, *, now: datetime, cache: ContactCache | None = None
) -> dict[Key, datetime]:
    """The due time of every reminder the appointment should have now."""
    if appointment.status not in OPEN_STATUSES or appointment.starts_at <= now:
        return {}
    cache = {} if cache is None else cache
    desired: dict[Key, datetime] = {}
    for client_id in _reminded_clients(appointment):
        prefs, channels = _contact(client_id, now, cache)
        for channel in channels:
            for lead in prefs.lead_times_minutes:
                due = before_quiet_hours(appointment.starts_at - timedelta(minutes=lead), prefs)
                desired[(client_id, channel, lead)] = due
    return desired


def _schedule(row: Reminder, due: datetime, now: datetime) -> None:
    row.due_at = row.available_at = due
    row.claim_token = None
    row.claimed_at = row.attempt_started_at = None
    if due > now:
        row.status, row.detail = ReminderStatus.PENDING, None
    else:
        row.status, row.detail = ReminderStatus.SUPPRESSED, "due before it was planned"


def _replan(row: Reminder, due: datetime, starts_at: datetime, now: datetime) -> None:
    if row.for_starts_at != starts_at:
        # The appointment moved: this reminder announces the new time, whatever it did before.
        row.for_starts_at = starts_at
        row.attempts = 0
        row.sent_at = None
        row.provider_message_id = None
        _schedule(row, due, now)
    elif row.status is ReminderStatus.PENDING:
        if row.due_at != due:
            _schedule(row, due, now)
    elif row.status in (ReminderStatus.CANCELLED, ReminderStatus.SUPPRESSED) and due > now:
        _schedule(row, due, now)  # wanted again: consent given, seat taken again, preferences


def plan_reminders(appointment: Appointment, *, now: datetime | None = None, cache: ContactCache | None = None) -> None:
    """Make the appointment's reminder rows match it: write, move or cancel them.

    ``cache`` may be shared by the calls of one unit of work that plans many appointments.
    """
    now = now or utcnow()
    desired = desired_reminders(appointment, now=now, cache=cache)
    rows = db.session.scalars(select(Reminder).where(Reminder.appointment_id == appointment.id)).all()
    for row in rows:
        due = desired.pop((row.client_id, row.channel, row.lead_time_minutes), None)
        if due is not None:
            _replan(row, due, appointment.starts_at, now)
        elif row.status in (ReminderStatus.PENDING, ReminderStatus.SENDING):
            row.status = ReminderStatus.CANCELLED
            row.claim_token = None
            row.detail = "no longer needed: the appointment or the client's preferences changed"
    for (client_id, channel, lead), due in desired.items():
        row = Reminder(
            appointment_id=appointment.id,
            client_id=client_id,
            site_id=appointment.site_id,
            channel=channel,
            lead_time_minutes=lead,
            for_starts_at=appointment.starts_at,
            attempts=0,
        )
        _schedule(row, due, now)
        if row.status is ReminderStatus.SUPPRESSED:
            row.detail = "due before the appointment was booked"
        db.session.add(row)
    db.session.flush()


def replan_client(client_id: int) -> None:
    """Re-plan the reminders of every coming appointment of the client."""
    now = utcnow()
    seats = select(AppointmentAttendee.appointment_id).where(
        AppointmentAttendee.client_id == client_id, AppointmentAttendee.status.in_(OPEN_ATTENDEE_STATUSES)
    )
    appointments = db.session.scalars(
        select(Appointment).where(
            Appointment.starts_at > now,
            Appointment.status.in_(OPEN_STATUSES),
            or_(Appointment.client_id == client_id, Appointment.id.in_(seats)),
        )
    ).all()
    cache: ContactCache = {}
    for appointment in appointments:
        plan_reminders(appointment, now=now, cache=cache)


@contact_details_changed.connect
def _replan_after_contact_change(client_id: int, **_: Any) -> None:
    replan_client(client_id)


@appointment_booked.connect
@appointment_changed.connect
@appointment_cancelled.connect
def _replan_appointments(appointments: Sequence[Appointment], **_: Any) -> None:
    """Make the reminder rows (the outbox) of appointments just booked, changed or cancelled match them."""
    cache: ContactCache = {}
    for appointment in appointments:
        plan_reminders(appointment, cache=cache)


def opt_out(channel: ReminderChannel, address: str, *, source: str) -> list[int]:
    """Record that ``address`` wants no more messages on ``channel``; return the clients it reaches."""
    address = address.lower()
    if not is_opted_out(channel, address):
        db.session.add(OptOut(channel=channel, address=address, source=source))
        db.session.flush()
    clients = clients_at(channel, address)
    for client_id in clients:
        replan_client(client_id)
    return clients


def opt_back_in(channel: ReminderChannel, address: str) -> list[int]:
    """Forget an opt-out (the client texted START); return the clients the address reaches."""
    row = db.session.scalars(
        select(OptOut).where(OptOut.channel == channel, OptOut.address == address.lower())
    ).first()
    if row is not None:
        db.session.delete(row)
        db.session.flush()
    clients = clients_at(channel, address)
    for client_id in clients:
        replan_client(client_id)
    return clients


def clients_at(channel: ReminderChannel, address: str) -> list[int]:
    column = Client.phone if channel is ReminderChannel.SMS else Client.email
    return list(db.session.scalars(select(Client.id).where(column == address.lower()).order_by(Client.id)))


def list_for_appointment(appointment: Appointment) -> list[Reminder]:
    """The appointment's reminders (every client, channel and lead time), soonest due first."""
    rows = list(
        db.session.scalars(
            select(Reminder)
            .where(Reminder.appointment_id == appointment.id)
            .order_by(Reminder.due_at, Reminder.client_id, Reminder.channel, Reminder.id)
        )
    )
    for client_id in sorted({row.client_id for row in rows}):
        record("reminder.read", resource="appointment", resource_id=appointment.id, client_id=client_id)
    return rows
