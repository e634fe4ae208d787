"""The client's own answers to a reminder — a tap on its link, a text back — applied to appointments.

Unlike staff actions these never raise: a client who is too late is told so, not given an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select

from clinic.audit.operations import record
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.scheduling.groups import attendee_or_404, cancel_attendee
from clinic.scheduling.models import (
    OPEN_ATTENDEE_STATUSES,
    Appointment,
    AppointmentAttendee,
    AppointmentStatus,
    AttendeeStatus,
)
from clinic.scheduling.operations import booked_clients, transition

S = AppointmentStatus

def _confirm_seat(appointment: Appointment, client_id: int, *, via: str) -> bool:
    attendee = attendee_or_404(appointment, client_id)
    if attendee.status is AttendeeStatus.CONFIRMED:
        return True
    if attendee.status is not AttendeeStatus.REGISTERED or not appointment.is_open:
        return False
    attendee.status = AttendeeStatus.CONFIRMED
    attendee.confirmed_at = utcnow()
    db.session.flush()
    record(
        "appointment.attendee.confirm",
        resource="appointment",
        resource_id=appointment.id,
        client_id=client_id,
        details={"via": via},
    )
    return True


def confirm_by_client(appointment: Appointment, client_id: int, *, via: str) -> bool:
    """The client confirms; True when it is (or already was) confirmed, False when too late."""
    if utcnow() >= appointment.starts_at:
        return False
    if appointment.is_group:
        return _confirm_seat(appointment, client_id, via=via)
    if appointment.status is S.CONFIRMED:
        return True
    if appointment.status is not S.SCHEDULED:
        return False
    transition(appointment, S.CONFIRMED, actor=None, via=via)
    return True


def cancel_by_client(appointment: Appointment, client_id: int, *, via: str) -> bool:
    """The client cancels (their seat, for a group); False when it can no longer be cancelled."""
    if appointment.is_group:
        attendee = attendee_or_404(appointment, client_id)
        if attendee.status not in OPEN_ATTENDEE_STATUSES or utcnow() >= appointment.starts_at:
            return attendee.status is AttendeeStatus.CANCELLED_BY_CLIENT
        cancel_attendee(appointment, client_id, by="client", reason="cancelled by the client", actor=None, via=via)
        return True
    if appointment.status is S.CANCELLED_BY_CLIENT:
        return True
    if not appointment.is_open or utcnow() >= appointment.starts_at:
        return False
    transition(appointment, S.CANCELLED_BY_CLIENT, actor=None, reason="cancelled by the client", via=via)
    return True


def next_open_for_clients(client_ids: Sequence[int]) -> tuple[Appointment, int] | None:
    """The soonest appointment not yet begun that one of the clients may still confirm."""
    if not client_ids:
        return None
    now = utcnow()
    seats = select(AppointmentAttendee.appointment_id).where(
        AppointmentAttendee.client_id.in_(client_ids), AppointmentAttendee.status.in_(OPEN_ATTENDEE_STATUSES)
    )
    appointment = db.session.scalars(
        select(Appointment)
        .where(
            Appointment.starts_at > now,
            Appointment.status.in_([S.SCHEDULED, S.CONFIRMED]),
            or_(Appointment.client_id.in_(client_ids), Appointment.id.in_(seats)),
        )
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(1)
    ).first()
    if appointment is None:
        return None
    booked = set(booked_clients(appointment)) & set(client_ids)
    return appointment, min(booked)
