"""Group sessions: seats with capacity, and each attendee's own attendance."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clinic.audit.operations import audit, record
from clinic.auth.models import User
from clinic.clients.models import TEDS_DEATH, Episode
from clinic.core.errors import abort_problem
from clinic.core.signals import appointment_changed, episode_discharged
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.scheduling.conflicts import Slot, find_clashes, refuse_clashes, refusing_double_booking
from clinic.scheduling.models import (
    OPEN_ATTENDEE_STATUSES,
    OPEN_STATUSES,
    SEATED_ATTENDEE_STATUSES,
    Appointment,
    AppointmentAttendee,
    AppointmentStatus,
    AttendeeStatus,
)
from clinic.scheduling.operations import CHECK_IN_OPENS, check_client, require_kind_rights, seated, transition

S = AppointmentStatus


def _require_group(appointment: Appointment) -> None:
    if not appointment.is_group:
        abort_problem(409, "This is an individual appointment; it has no attendees.", problem="not-a-group")


def attendee_or_404(appointment: Appointment, client_id: int) -> AppointmentAttendee:
    attendee = next((a for a in appointment.attendees if a.client_id == client_id), None)
    if attendee is None:
        abort_problem(404, "This client is not registered for the session.")
    return attendee


def list_attendees(appointment: Appointment) -> list[AppointmentAttendee]:
    _require_group(appointment)
    audit("attendees.read", appointment)
    return sorted(appointment.attendees, key=lambda a: a.id)


def takes_attendees(appointment: Appointment) -> bool:
    """Whether clients may still join the session: it is still scheduled and not over."""
    return appointment.is_open and utcnow() < appointment.ends_at


def add_attendee(appointment: Appointment, client_id: int, *, actor: User) -> AppointmentAttendee:
    """Give a client a seat: 409 when the session is full, closed or the client is booked then."""
    require_kind_rights(actor, appointment.kind)
    _require_group(appointment)
    if not takes_attendees(appointment):
        abort_problem(409, "Clients join a session that is still scheduled and not over.", problem="not-open")
    check_client(client_id, appointment.site_id, "client_id")
    # Lock the session row so two registrations at once cannot both take the last seat.
    db.session.execute(select(Appointment.id).where(Appointment.id == appointment.id).with_for_update())
    attendee = next((a for a in appointment.attendees if a.client_id == client_id), None)
    if attendee is not None and attendee.status in SEATED_ATTENDEE_STATUSES:
        abort_problem(409, "The client is already registered for this session.", problem="already-registered")
    if len(seated(appointment)) >= (appointment.capacity or 0):
        abort_problem(409, f"The session is full ({appointment.capacity} seats).", problem="session-full")
    slot = Slot(appointment.starts_at, appointment.ends_at, appointment.clinician_id, (client_id,), appointment.id)
    clashes = [c for c in find_clashes([slot]) if c.party == "client"]
    if clashes:
        refuse_clashes(clashes, actor)
    with refusing_double_booking([slot], actor):
        if attendee is None:
            attendee = AppointmentAttendee(client_id=client_id, site_id=appointment.site_id)
            appointment.attendees.append(attendee)
        attendee.status = AttendeeStatus.REGISTERED
        attendee.cancelled_at = attendee.cancel_reason = attendee.confirmed_at = None
    appointment_changed.send([appointment])
    record("appointment.attendee.add", resource="appointment", resource_id=appointment.id, client_id=client_id)
    return attendee


def cancel_attendee(
    appointment: Appointment, client_id: int, *, by: str, reason: str | None, actor: User | None, via: str = "staff"
) -> AppointmentAttendee:
    if actor is not None:
        require_kind_rights(actor, appointment.kind)
    _require_group(appointment)
    attendee = attendee_or_404(appointment, client_id)
    if attendee.status not in OPEN_ATTENDEE_STATUSES:
        abort_problem(409, f"The attendee is already {attendee.status.value}.", problem="illegal-transition")
    if utcnow() >= appointment.ends_at:
        abort_problem(409, "The session is over; record attendance instead.", problem="illegal-transition")
    attendee.status = AttendeeStatus.CANCELLED_BY_CLIENT if by == "client" else AttendeeStatus.CANCELLED_BY_CLINIC
    attendee.cancelled_at = utcnow()
    attendee.cancel_reason = reason
    db.session.flush()
    appointment_changed.send([appointment])
    record(
        "appointment.attendee.cancel",
        resource="appointment",
        resource_id=appointment.id,
        client_id=client_id,
        details={"by": by, "via": via},
    )
    return attendee


def mark_attendance(
    appointment: Appointment, client_id: int, *, status: AttendeeStatus, actor: User
) -> AppointmentAttendee:
    """Record that a registered client came (attended) or did not (no_show), once the session began."""
    require_kind_rights(actor, appointment.kind)
    _require_group(appointment)
    attendee = attendee_or_404(appointment, client_id)
    if appointment.status not in (S.SCHEDULED, S.CONFIRMED, S.CHECKED_IN, S.COMPLETED):
        abort_problem(409, f"The session is {appointment.status.value}.", problem="illegal-transition")
    if utcnow() < appointment.starts_at - CHECK_IN_OPENS:
        abort_problem(409, "Attendance is recorded from an hour before the start.", problem="illegal-transition")
    if attendee.status not in (*OPEN_ATTENDEE_STATUSES, AttendeeStatus.ATTENDED, AttendeeStatus.NO_SHOW):
        abort_problem(409, f"The attendee is {attendee.status.value}.", problem="illegal-transition")
    attendee.status = status
    attendee.marked_at = utcnow()
    db.session.flush()
    appointment_changed.send([appointment])
    record(
        "appointment.attendee.attendance",
        resource="appointment",
        resource_id=appointment.id,
        client_id=client_id,
        details={"status": status.value},
    )
    return attendee


# --- after a death -------------------------------------------------------------------------------

#: What the appointments and seats cancelled after a client's death say (staff only see it).
DECEASED_REASON = "The client has died (discharged with TEDS reason 6)."


@episode_discharged.connect
def _cancel_ahead_after_death(episode: Episode, *, actor: User, reason_code: int, **_: Any) -> None:
    """A client who has died keeps no appointment or group seat ahead, so no reminder reaches their phone.

    Other discharges leave the appointments as they are: a completed treatment often keeps an
    aftercare visit, which the clinician cancels if it is not wanted.
    """
    if reason_code != TEDS_DEATH:
        return
    now = utcnow()
    ahead = db.session.scalars(
        select(Appointment)
        .where(
            Appointment.client_id == episode.client_id,
            Appointment.starts_at > now,
            Appointment.status.in_(OPEN_STATUSES),
        )
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    for appointment in ahead:
        transition(appointment, AppointmentStatus.CANCELLED_BY_CLINIC, actor=None, reason=DECEASED_REASON, via="death")
    seats = db.session.scalars(
        select(Appointment)
        .join(AppointmentAttendee, AppointmentAttendee.appointment_id == Appointment.id)
        .where(
            AppointmentAttendee.client_id == episode.client_id,
            AppointmentAttendee.status.in_(OPEN_ATTENDEE_STATUSES),
            Appointment.starts_at > now,
        )
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    for appointment in seats:
        cancel_attendee(appointment, episode.client_id, by="clinic", reason=DECEASED_REASON, actor=None, via="death")
