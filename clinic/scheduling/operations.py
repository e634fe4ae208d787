"""Appointments: booking (single or a series), rescheduling, the status machine, group seats.

Every change is announced (``appointment_booked``, ``appointment_changed``,
``appointment_cancelled`` in :mod:`clinic.core.signals`); clinic.notify re-plans the reminders in
the same transaction: the reminder table is the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from clinic.audit.operations import audit
from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import read_scoped_page, scoped_select
from clinic.clients.models import Client
from clinic.clients.timeline import TimelineEntry
from clinic.core.errors import APIError, abort_problem, field_error
from clinic.core.pagination import Page
from clinic.core.signals import appointment_booked, appointment_cancelled, appointment_changed, timeline_entries
from clinic.core.time import shift_wall_clock, to_local, utcnow
from clinic.extensions import db
from clinic.scheduling.conflicts import (
    Slot,
    find_clashes,
    overlapping_within,
    refuse_clashes,
    refusing_double_booking,
)
from clinic.scheduling.models import (
    SEATED_ATTENDEE_STATUSES,
    Appointment,
    AppointmentAttendee,
    AppointmentKind,
    AppointmentSeries,
    AppointmentStatus,
    AttendeeStatus,
)
from clinic.scheduling.recurrence import RecurrenceError, occurrences

S = AppointmentStatus

#: The status machine (docs/scheduling.md). Anything else is a 409.
TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    S.SCHEDULED: frozenset(
        {S.CONFIRMED, S.CHECKED_IN, S.COMPLETED, S.CANCELLED_BY_CLIENT, S.CANCELLED_BY_CLINIC, S.NO_SHOW}
    ),
    S.CONFIRMED: frozenset({S.CHECKED_IN, S.COMPLETED, S.CANCELLED_BY_CLIENT, S.CANCELLED_BY_CLINIC, S.NO_SHOW}),
    S.CHECKED_IN: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED_BY_CLIENT: frozenset(),
    S.CANCELLED_BY_CLINIC: frozenset(),
    S.NO_SHOW: frozenset(),
}
#: Outcomes that may be recorded after the appointment has ended, with a reason (a late entry).
LATE_ENTRY_STATUSES = frozenset({S.COMPLETED, S.NO_SHOW, S.CANCELLED_BY_CLIENT, S.CANCELLED_BY_CLINIC})
#: A client may be checked in from this long before the start until the end.
CHECK_IN_OPENS = timedelta(hours=1)
EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
BOOKING_HORIZON = timedelta(days=3 * 366)


# --- checks ------------------------------------------------------------------------------


def require_kind_rights(user: User, kind: AppointmentKind) -> None:
    """Intake coordinators book (and change) intake assessments; clinicians every kind."""
    if user.role is Role.INTAKE and kind is not AppointmentKind.INTAKE_ASSESSMENT:
        abort_problem(403, "Intake coordinators book and change intake assessments only.")


def check_clinician(clinician_id: int, site_id: int) -> None:
    clinician = db.session.get(User, clinician_id)
    if (
        clinician is None
        or clinician.role is not Role.CLINICIAN
        or not clinician.is_active
        or site_id not in clinician.site_ids
    ):
        field_error("clinician_id", "Not an active clinician of this site.")


def check_client(client_id: int, site_id: int, field: str) -> Client:
    client = db.session.get(Client, client_id)
    if client is None or client.site_id != site_id:
        field_error(field, "Not a client of this site.")
    return client


def _check_start(starts_at: datetime, field: str = "starts_at") -> None:
    if starts_at < EARLIEST_START:
        field_error(field, "Must be in 2000 or later.")
    if starts_at > utcnow() + BOOKING_HORIZON:
        field_error(field, "Must be within three years from now.")


def _refuse_self_overlap(slots: Sequence[Slot], field: str) -> None:
    pair = overlapping_within(slots)
    if pair is not None:
        field_error(
            field,
            f"Occurrences overlap each other (one starts {pair[1].starts_at.isoformat()} "
            f"before the one from {pair[0].starts_at.isoformat()} ends).",
        )


def seated(appointment: Appointment) -> list[AppointmentAttendee]:
    return [a for a in appointment.attendees if a.status in SEATED_ATTENDEE_STATUSES]


def booked_clients(appointment: Appointment) -> tuple[int, ...]:
    return appointment.audit_client_ids()


# --- booking -----------------------------------------------------------------------------


def _party(
    kind: AppointmentKind, site_id: int, client_id: int | None, client_ids: list[int] | None, capacity: int | None
) -> tuple[bool, tuple[int, ...]]:
    """Whether it is a group session, and the clients it books (checked to be of the site)."""
    if kind is AppointmentKind.GROUP_THERAPY or client_ids is not None:
        if client_id is not None:
            field_error("client_id", "A group session lists its clients in client_ids.")
        if capacity is None:
            field_error("capacity", "A group session needs its number of seats.")
        unique = list(dict.fromkeys(client_ids or []))
        if len(unique) > capacity:
            field_error("client_ids", f"More clients than the {capacity} seats.")
        for index, cid in enumerate(unique):
            check_client(cid, site_id, f"client_ids.{index}")
        return True, tuple(unique)
    if client_id is None:
        field_error("client_id", "An individual appointment needs its client.")
    if capacity is not None:
        field_error("capacity", "Only group sessions have seats.")
    check_client(client_id, site_id, "client_id")
    return False, (client_id,)


def _series_starts(starts_at: datetime, recurrence: str | None, zone: str) -> list[datetime]:
    if recurrence is None:
        return [starts_at]
    try:
        starts = occurrences(starts_at, recurrence, zone)
    except RecurrenceError as exc:
        field_error("recurrence", str(exc))
    if starts[-1] > utcnow() + BOOKING_HORIZON:
        field_error("recurrence", "The series must end within three years from now.")
    return starts


def book(
    *,
    actor: User,
    site_id: int,
    kind: AppointmentKind,
    clinician_id: int,
    starts_at: datetime,
    duration_minutes: int,
    client_id: int | None = None,
    client_ids: list[int] | None = None,
    capacity: int | None = None,
    location: str | None = None,
    telehealth_url: str | None = None,
    recurrence: str | None = None,
    timezone: str | None = None,
) -> Appointment:
    """Book an appointment, or every occurrence of a series; returns the first."""
    require_kind_rights(actor, kind)
    is_group, party = _party(kind, site_id, client_id, client_ids, capacity)
    check_clinician(clinician_id, site_id)
    _check_start(starts_at)
    zone = timezone or db.session.get_one(Site, site_id).timezone
    starts = _series_starts(starts_at, recurrence, zone)
    length = timedelta(minutes=duration_minutes)
    slots = [Slot(start, start + length, clinician_id, party) for start in starts]
    _refuse_self_overlap(slots, "duration_minutes" if recurrence else "starts_at")
    clashes = find_clashes(slots)
    if clashes:
        refuse_clashes(clashes, actor, many=len(slots) > 1)

    series = None
    appointments = []
    with refusing_double_booking(slots, actor):
        if recurrence is not None:
            series = AppointmentSeries(
                site_id=site_id, recurrence=recurrence.strip(), timezone=zone, created_by_id=actor.id
            )
            db.session.add(series)
        for start in starts:
            appointment = Appointment(
                site_id=site_id,
                series=series,
                kind=kind,
                is_group=is_group,
                clinician_id=clinician_id,
                client_id=None if is_group else party[0],
                starts_at=start,
                ends_at=start + length,
                timezone=zone,
                capacity=capacity,
                location=location,
                telehealth_url=telehealth_url,
                status=AppointmentStatus.SCHEDULED,
                created_by_id=actor.id,
            )
            if is_group:
                appointment.attendees = [
                    AppointmentAttendee(client_id=cid, site_id=site_id, status=AttendeeStatus.REGISTERED)
                    for cid in party
                ]
            db.session.add(appointment)
            appointments.append(appointment)
    appointment_booked.send(appointments)
    for appointment in appointments:
        audit("create", appointment, details={"kind": kind.value, "series_id": appointment.series_id})
    return appointments[0]


# --- reading -----------------------------------------------------------------------------


def list_appointments(
    user: User,
    *,
    limit: int,
    cursor: str | None,
    from_: datetime | None = None,
    to: datetime | None = None,
    site_id: int | None = None,
    clinician_id: int | None = None,
    client_id: int | None = None,
    status: AppointmentStatus | None = None,
    kind: AppointmentKind | None = None,
    series_id: int | None = None,
) -> Page[Appointment]:
    """Appointments in the caller's sites in start order; ``from``/``to`` bound the start."""
    stmt = scoped_select(Appointment, user)
    if from_ is not None:
        stmt = stmt.where(Appointment.starts_at >= from_)
    if to is not None:
        stmt = stmt.where(Appointment.starts_at < to)
    if site_id is not None:
        stmt = stmt.where(Appointment.site_id == site_id)
    if clinician_id is not None:
        stmt = stmt.where(Appointment.clinician_id == clinician_id)
    if client_id is not None:
        seats = select(AppointmentAttendee.appointment_id).where(AppointmentAttendee.client_id == client_id)
        stmt = stmt.where(or_(Appointment.client_id == client_id, Appointment.id.in_(seats)))
    if status is not None:
        stmt = stmt.where(Appointment.status == status)
    if kind is not None:
        stmt = stmt.where(Appointment.kind == kind)
    if series_id is not None:
        stmt = stmt.where(Appointment.series_id == series_id)
    return read_scoped_page(stmt, keys=[Appointment.starts_at, Appointment.id], limit=limit, cursor=cursor, via="list")


def series_members(appointment: Appointment, scope: str, *, now: datetime) -> list[Appointment]:
    """The appointments a series-scoped change applies to; the given one always first.

    ``this``: only it. ``following``: it and the later occurrences still open. ``all``: every
    occurrence still open that has not begun (begun ones are history).
    """
    if scope == "this" or appointment.series_id is None:
        return [appointment]
    stmt = select(Appointment).where(
        Appointment.series_id == appointment.series_id,
        Appointment.id != appointment.id,
        Appointment.status.in_([S.SCHEDULED, S.CONFIRMED]),
    )
    if scope == "following":
        stmt = stmt.where(Appointment.starts_at > appointment.starts_at)
    else:
        stmt = stmt.where(Appointment.starts_at > now)
    return [appointment, *db.session.scalars(stmt.order_by(Appointment.starts_at))]


# --- rescheduling ------------------------------------------------------------------------


def _check_changes(appointment: Appointment, changes: dict[str, Any], targets: Sequence[Appointment]) -> None:
    if "starts_at" in changes:
        _check_start(changes["starts_at"])
    if "clinician_id" in changes:
        check_clinician(changes["clinician_id"], appointment.site_id)
    if "capacity" not in changes:
        return
    if not appointment.is_group:
        field_error("capacity", "Only group sessions have seats.")
    for target in targets:
        if len(seated(target)) > changes["capacity"]:
            abort_problem(
                409,
                f"Appointment {target.id} has {len(seated(target))} clients registered; "
                "cancel some before reducing the seats.",
                problem="capacity",
            )


def _new_times(
    appointment: Appointment, changes: dict[str, Any], targets: Sequence[Appointment]
) -> tuple[timedelta, list[tuple[Appointment, datetime, datetime]]]:
    """Each target's new start and end, and the wall-clock change of the start.

    A new start moves every target by the same wall-clock change, so a weekly 09:00 that
    becomes 10:00 stays 10:00 local on both sides of a daylight-saving change.
    """
    zone = appointment.timezone
    wall_delta = timedelta(0)
    if "starts_at" in changes:
        wall_delta = to_local(changes["starts_at"], zone) - to_local(appointment.starts_at, zone)
    planned = []
    for target in targets:
        if target is appointment:
            start = changes.get("starts_at", target.starts_at)
        else:
            start = shift_wall_clock(target.starts_at, wall_delta, target.timezone) if wall_delta else target.starts_at
        minutes = changes.get("duration_minutes", target.duration_minutes)
        planned.append((target, start, start + timedelta(minutes=minutes)))
    return wall_delta, planned


def update(appointment: Appointment, changes: dict[str, Any], *, scope: str, actor: User) -> Appointment:
    """Change time, length, clinician, place or seats of one occurrence, the following, or all."""
    require_kind_rights(actor, appointment.kind)
    if not appointment.is_open:
        abort_problem(409, f"A {appointment.status.value} appointment cannot be changed.", problem="not-open")
    targets = series_members(appointment, scope, now=utcnow())
    _check_changes(appointment, changes, targets)
    wall_delta, planned = _new_times(appointment, changes, targets)
    clinician_id = changes.get("clinician_id")
    slots = [
        Slot(start, end, clinician_id or target.clinician_id, booked_clients(target), target.id)
        for target, start, end in planned
    ]
    _refuse_self_overlap(slots, "duration_minutes")
    target_ids = [t.id for t in targets]
    clashes = find_clashes(slots, exclude_ids=target_ids)
    if clashes:
        refuse_clashes(clashes, actor, many=len(slots) > 1)

    if scope == "following" and appointment.series_id is not None:
        _split_series(appointment, targets, actor)
    # Apply in the direction of the move, each flushed, so that rows of the same series never
    # overlap one another on the way (the PostgreSQL exclusion constraints check every row).
    planned.sort(key=lambda item: item[0].starts_at, reverse=wall_delta > timedelta(0))
    for target, start, end in planned:
        with refusing_double_booking(slots, actor, exclude_ids=target_ids):
            moved = start != target.starts_at
            target.starts_at, target.ends_at = start, end
            for name in ("clinician_id", "location", "telehealth_url", "capacity"):
                if name in changes:
                    setattr(target, name, changes[name])
            if moved:
                _reopen_confirmation(target)
    appointment_changed.send([target for target, _start, _end in planned])
    for target, _start, _end in planned:
        audit("update", target, details={"fields": sorted(changes), "scope": scope})
    return appointment


def _reopen_confirmation(appointment: Appointment) -> None:
    """A new time needs a new confirmation; calendars see a new SEQUENCE."""
    appointment.sequence += 1
    if appointment.status is S.CONFIRMED:
        appointment.status = S.SCHEDULED
        appointment.confirmed_at = None
    for attendee in appointment.attendees:
        if attendee.status is AttendeeStatus.CONFIRMED:
            attendee.status = AttendeeStatus.REGISTERED
            attendee.confirmed_at = None


def _split_series(appointment: Appointment, targets: Sequence[Appointment], actor: User) -> None:
    """"This and following" starts a new series, so a later "all" edit keeps the two apart."""
    old = db.session.get_one(AppointmentSeries, appointment.series_id)
    earlier = db.session.scalars(
        select(Appointment.id).where(
            Appointment.series_id == old.id, Appointment.starts_at < appointment.starts_at
        )
    ).first()
    if earlier is None:
        return  # the first occurrence: the whole series is edited
    new = AppointmentSeries(
        site_id=old.site_id,
        recurrence=old.recurrence,
        timezone=old.timezone,
        split_from_id=old.id,
        created_by_id=actor.id,
    )
    db.session.add(new)
    db.session.flush()
    for target in targets:
        target.series_id = new.id


# --- the status machine ------------------------------------------------------------------


def _refuse_transition(appointment: Appointment, target: AppointmentStatus, why: str | None = None) -> None:
    allowed = sorted(s.value for s in TRANSITIONS[appointment.status])
    abort_problem(
        409,
        why or f"A {appointment.status.value} appointment cannot become {target.value}.",
        problem="illegal-transition",
        extra={"appointment_status": appointment.status.value, "allowed": allowed},
    )


def _check_timing(appointment: Appointment, target: AppointmentStatus, now: datetime) -> None:
    ended = now >= appointment.ends_at
    if target is S.CHECKED_IN and not (appointment.starts_at - CHECK_IN_OPENS <= now < appointment.ends_at):
        _refuse_transition(appointment, target, "Check-in opens an hour before the start and closes at the end.")
    if target is S.NO_SHOW and now < appointment.starts_at:
        _refuse_transition(appointment, target, "A client is a no-show only once the appointment has begun.")
    if target is S.COMPLETED and appointment.status is not S.CHECKED_IN and not ended:
        _refuse_transition(
            appointment,
            target,
            "Check the client in first; an appointment that has ended can be completed late, with the reason it is "
            "recorded only now (late_entry_reason).",
        )
    if target is S.CONFIRMED and now >= appointment.starts_at:
        _refuse_transition(appointment, target, "An appointment that has begun cannot be confirmed.")


def _late_entry(
    appointment: Appointment, target: AppointmentStatus, now: datetime, reason: str | None, actor: User | None
) -> bool:
    """Record why an ended appointment's outcome comes late (422 without a reason); False when it is not late."""
    if target not in LATE_ENTRY_STATUSES or now < appointment.ends_at:
        return False
    if not reason or not reason.strip():
        field_error(
            "late_entry_reason",
            "The appointment has ended: say why its outcome is recorded only now (e.g. the check-in was forgotten).",
        )
    appointment.late_entry_reason = reason.strip()
    appointment.late_entry_by_id = actor.id if actor is not None else None
    appointment.late_entry_at = now
    return True


def transition(
    appointment: Appointment,
    target: AppointmentStatus,
    *,
    actor: User | None,
    reason: str | None = None,
    late_entry_reason: str | None = None,
    via: str = "staff",
) -> Appointment:
    """Move the appointment through the status machine (409 otherwise) and re-plan reminders.

    An outcome recorded after the appointment has ended is a late entry: it needs
    ``late_entry_reason`` (422 without), which the appointment and its audit event keep.
    """
    if actor is not None:
        require_kind_rights(actor, appointment.kind)
    now = utcnow()
    if target not in TRANSITIONS[appointment.status]:
        _refuse_transition(appointment, target)
    _check_timing(appointment, target, now)
    late = _late_entry(appointment, target, now, late_entry_reason, actor)
    appointment.status = target
    if target is S.CONFIRMED:
        appointment.confirmed_at = now
    elif target is S.CHECKED_IN:
        appointment.checked_in_at = now
    elif target is S.COMPLETED:
        appointment.completed_at = now
    elif target is S.NO_SHOW:
        appointment.no_show_at = now
    else:
        appointment.cancelled_at = now
        appointment.cancel_reason = reason
    db.session.flush()
    cancelled = target in (S.CANCELLED_BY_CLIENT, S.CANCELLED_BY_CLINIC)
    (appointment_cancelled if cancelled else appointment_changed).send([appointment])
    details: dict[str, Any] = {"via": via}
    if late:
        details["late_entry"] = True
    audit(target.value, appointment, details=details)
    return appointment


def confirm(appointment: Appointment, *, actor: User) -> Appointment:
    """Staff record the client's confirmation (phone, desk); confirming again changes nothing."""
    if appointment.status is S.CONFIRMED:
        require_kind_rights(actor, appointment.kind)
        audit("read", appointment)  # already confirmed: nothing changes, the client's record was read
        return appointment
    return transition(appointment, S.CONFIRMED, actor=actor)


def cancel(
    appointment: Appointment,
    *,
    by: str,
    reason: str | None,
    scope: str,
    actor: User,
    late_entry_reason: str | None = None,
) -> Appointment:
    """Cancel one occurrence, the following ones, or all that are still open and ahead."""
    if by == "client" and appointment.is_group:
        field_error("by", "A group session is cancelled by the clinic; a client gives up their seat as an attendee.")
    target = S.CANCELLED_BY_CLIENT if by == "client" else S.CANCELLED_BY_CLINIC
    others = series_members(appointment, scope, now=utcnow())[1:]
    transition(appointment, target, actor=actor, reason=reason, late_entry_reason=late_entry_reason)
    for other in others:
        if utcnow() < other.ends_at:
            transition(other, target, actor=actor, reason=reason, via=f"series:{scope}")
    return appointment


@dataclass(frozen=True)
class TransitionOption:
    """A status change the machine allows from an appointment's status, as a screen offers it."""

    target: AppointmentStatus
    #: Why its timing refuses it now (what :func:`transition` would answer); None when it can be made now.
    refused: str | None
    #: It can be made only with a ``late_entry_reason``: the appointment has ended.
    late_entry: bool


def transition_options(appointment: Appointment, *, now: datetime | None = None) -> list[TransitionOption]:
    """Each change the status machine allows from the appointment's status, checked against its timing now.

    The checks of :func:`transition`, made without changing anything, so a screen offers only
    what would be accepted (and says why the rest is not possible yet).
    """
    now = now or utcnow()
    options = []
    for target in AppointmentStatus:
        if target not in TRANSITIONS[appointment.status]:
            continue
        try:
            _check_timing(appointment, target, now)
        except APIError as refusal:
            options.append(TransitionOption(target, refusal.detail or "Not possible now.", late_entry=False))
            continue
        late = target in LATE_ENTRY_STATUSES and now >= appointment.ends_at
        options.append(TransitionOption(target, None, late_entry=late))
    return options


# --- timeline ----------------------------------------------------------------------------


@timeline_entries.connect
def _appointment_entries(client_id: int) -> Iterable[TimelineEntry]:
    # The client's own appointments and the group sessions they hold a seat in: a union of two index
    # lookups (an OR of the two conditions cannot use either index and reads every appointment).
    own = select(Appointment.id).where(Appointment.client_id == client_id)
    seats = select(AppointmentAttendee.appointment_id).where(AppointmentAttendee.client_id == client_id)
    appointments = db.session.scalars(select(Appointment).where(Appointment.id.in_(own.union(seats)))).all()
    for appointment in appointments:
        label = appointment.kind.value.replace("_", " ").capitalize()
        status = appointment.status.value.replace("_", " ")
        if appointment.is_group:
            seat = next((a for a in appointment.attendees if a.client_id == client_id), None)
            if seat is not None:
                status = f"{status}; attendee {seat.status.value.replace('_', ' ')}"
        yield TimelineEntry(appointment.starts_at, "appointment", appointment.id, f"{label}: {status}", clinical=False)
