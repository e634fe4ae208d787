"""The signed, expiring confirm/cancel link a reminder carries, and what it lets the client do.

The token is signed with ``SECRET_KEY`` (itsdangerous) and names the appointment, the client,
the start it was sent for and the channel. It stops working LINK_MAX_AGE after it was made,
once the appointment begins, or when the appointment has moved since (a newer reminder carries
a newer link).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from clinic.audit.operations import record
from clinic.auth.models import Site
from clinic.clients.models import Client
from clinic.core.http import mark_client_data
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.messages import MessageContext
from clinic.notify.models import ReminderChannel
from clinic.notify.reminders import address_for, is_opted_out, opt_out, preferences_for
from clinic.scheduling import client_answers
from clinic.scheduling.models import (
    OPEN_ATTENDEE_STATUSES,
    Appointment,
    AppointmentStatus,
    AttendeeStatus,
)

LINK_MAX_AGE = timedelta(days=30)
_SALT = "clinic.reminder-link"
_CHANNEL_CODES = {ReminderChannel.SMS: "s", ReminderChannel.EMAIL: "e"}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def make_token(appointment: Appointment, client_id: int, channel: ReminderChannel) -> str:
    payload = [appointment.id, client_id, int(appointment.starts_at.timestamp()), _CHANNEL_CODES[channel]]
    return str(_serializer().dumps(payload))


def link_url(token: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/r/{token}"


@dataclass
class LinkTarget:
    appointment: Appointment
    client: Client
    channel: ReminderChannel


def read_token(token: str) -> LinkTarget | None:
    """The appointment and client a link is for; None when forged, expired or out of date.

    The link pages' loader: whatever it finds, the page is marked ``no-store`` (it shows an
    appointment's time).
    """
    mark_client_data()
    try:
        payload = _serializer().loads(token, max_age=int(LINK_MAX_AGE.total_seconds()))
    except BadData:
        return None
    if not (isinstance(payload, list) and len(payload) == 4):
        return None
    appointment_id, client_id, starts, code = payload
    channel = next((c for c, letter in _CHANNEL_CODES.items() if letter == code), None)
    if not isinstance(appointment_id, int) or not isinstance(client_id, int) or channel is None:
        return None
    appointment = db.session.get(Appointment, appointment_id)
    client = db.session.get(Client, client_id)
    if appointment is None or client is None or int(appointment.starts_at.timestamp()) != starts:
        return None
    if client_id != appointment.client_id and all(a.client_id != client_id for a in appointment.attendees):
        return None
    return LinkTarget(appointment, client, channel)


def _state(target: LinkTarget) -> str:
    """What the page offers: "open" (confirm, cancel), "confirmed" (cancel), "cancelled", "closed"."""
    appointment = target.appointment
    if appointment.is_group:
        seat = next(a for a in appointment.attendees if a.client_id == target.client.id)
        status: str = seat.status.value
        is_open = seat.status in OPEN_ATTENDEE_STATUSES and appointment.is_open
        confirmed = seat.status is AttendeeStatus.CONFIRMED
    else:
        status = appointment.status.value
        is_open = appointment.is_open
        confirmed = appointment.status is AppointmentStatus.CONFIRMED
    if status.startswith("cancelled"):
        return "cancelled"
    if not is_open or utcnow() >= appointment.starts_at:
        return "closed"
    return "confirmed" if confirmed else "open"


def page(target: LinkTarget, *, outcome: str | None = None) -> dict[str, Any]:
    """What the link page shows (reading it is audited: it tells the appointment's time)."""
    prefs = preferences_for(target.client)
    site = db.session.get_one(Site, target.appointment.site_id)
    address = address_for(target.client, target.channel)
    record(
        "appointment.read",
        resource="appointment",
        resource_id=target.appointment.id,
        client_id=target.client.id,
        details={"via": "reminder link"},
    )
    context = MessageContext(
        site=site.display_name,
        starts_at=target.appointment.starts_at,
        zone=prefs.timezone,
        language=prefs.language,
        channel=target.channel.value,
    )
    return {
        "context": context,
        "outcome": outcome,
        "state": _state(target),
        "opted_out": address is None or is_opted_out(target.channel, address),
    }


def act(target: LinkTarget, action: str) -> str:
    """Do what the client chose on the page; return the outcome the page reports."""
    appointment, client_id = target.appointment, target.client.id
    if action == "confirm":
        done = client_answers.confirm_by_client(appointment, client_id, via="reminder link")
        return "confirmed" if done else "too_late"
    if action == "cancel":
        done = client_answers.cancel_by_client(appointment, client_id, via="reminder link")
        return "cancelled" if done else "too_late"
    if action == "stop":
        address = address_for(target.client, target.channel)
        if address:
            opt_out(target.channel, address, source="link")
            record(
                "notify.opt_out",
                resource="client",
                resource_id=client_id,
                client_id=client_id,
                details={"channel": target.channel.value, "via": "reminder link"},
            )
        return "stopped"
    return "invalid"
