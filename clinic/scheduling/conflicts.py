"""Double booking: a clinician, or a client, in two appointments at once.

Checked here, in code, on every database before a write; on PostgreSQL two exclusion
constraints refuse the same thing again (a booking made at the same moment by another request),
and :func:`refusing_double_booking` turns their error into the same 409.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import select, union
from sqlalchemy.exc import IntegrityError

from clinic.auth.models import User
from clinic.auth.permissions import site_scope
from clinic.core.errors import abort_problem
from clinic.core.time import to_local
from clinic.extensions import db
from clinic.scheduling.models import (
    MAX_APPOINTMENT_LENGTH,
    RELEASED_STATUSES,
    SEATED_ATTENDEE_STATUSES,
    Appointment,
    AppointmentAttendee,
)

#: The PostgreSQL exclusion constraints of migration 0005, and whom each protects.
EXCLUSION_CONSTRAINTS = {
    "ex_appointments_clinician_overlap": "clinician",
    "ex_appointments_client_overlap": "client",
}


@dataclass(frozen=True)
class Slot:
    """A time some people would be booked for; ``appointment_id`` when it is an existing row."""

    starts_at: datetime
    ends_at: datetime
    clinician_id: int
    client_ids: tuple[int, ...]
    appointment_id: int | None = None

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        # Half-open intervals, like tstzrange's default '[)': back-to-back bookings do not clash.
        return self.starts_at < ends_at and starts_at < self.ends_at


@dataclass(frozen=True)
class Clash:
    slot: Slot
    party: str
    party_id: int
    appointment: Appointment


def _booked_clients(appointments: Sequence[Appointment]) -> dict[int, set[int]]:
    """Clients each appointment holds: its client, or the seated attendees of a group session."""
    booked: dict[int, set[int]] = defaultdict(set)
    group_ids = [a.id for a in appointments if a.is_group]
    if group_ids:
        rows = db.session.execute(
            select(AppointmentAttendee.appointment_id, AppointmentAttendee.client_id).where(
                AppointmentAttendee.appointment_id.in_(group_ids),
                AppointmentAttendee.status.in_(SEATED_ATTENDEE_STATUSES),
            )
        )
        for appointment_id, client_id in rows:
            booked[appointment_id].add(client_id)
    for appointment in appointments:
        if appointment.client_id is not None:
            booked[appointment.id].add(appointment.client_id)
    return booked


def find_clashes(slots: Sequence[Slot], *, exclude_ids: Iterable[int] = ()) -> list[Clash]:
    """Existing appointments that would double-book a clinician or client of ``slots``.

    One indexed query per way of being booked (as clinician, as the client, in a group seat),
    each bounded on ``starts_at`` from both sides: an appointment lasts at most
    MAX_APPOINTMENT_LENGTH, so one that overlaps the window starts less than that before it.
    """
    if not slots:
        return []
    excluded = set(exclude_ids) | {s.appointment_id for s in slots if s.appointment_id is not None}
    clinicians = {s.clinician_id for s in slots}
    clients = {c for s in slots for c in s.client_ids}
    low, high = min(s.starts_at for s in slots), max(s.ends_at for s in slots)
    window = (
        Appointment.starts_at < high,
        Appointment.starts_at > low - MAX_APPOINTMENT_LENGTH,
        Appointment.ends_at > low,
        Appointment.status.not_in(RELEASED_STATUSES),
    )
    ways = [select(Appointment.id).where(Appointment.clinician_id.in_(clinicians), *window)]
    if clients:
        ways.append(select(Appointment.id).where(Appointment.client_id.in_(clients), *window))
        ways.append(
            select(Appointment.id)
            .join(AppointmentAttendee, AppointmentAttendee.appointment_id == Appointment.id)
            .where(
                AppointmentAttendee.client_id.in_(clients),
                AppointmentAttendee.status.in_(SEATED_ATTENDEE_STATUSES),
                *window,
            )
        )
    stmt = select(Appointment).where(Appointment.id.in_(union(*ways))).order_by(Appointment.starts_at, Appointment.id)
    if excluded:
        stmt = stmt.where(Appointment.id.not_in(excluded))
    existing = db.session.scalars(stmt).all()
    booked = _booked_clients(existing)
    starts = [other.starts_at for other in existing]
    clashes: list[Clash] = []
    for slot in slots:
        first = bisect_right(starts, slot.starts_at - MAX_APPOINTMENT_LENGTH)
        last = bisect_left(starts, slot.ends_at)
        for other in existing[first:last]:
            if not slot.overlaps(other.starts_at, other.ends_at):
                continue
            if other.clinician_id == slot.clinician_id:
                clashes.append(Clash(slot, "clinician", slot.clinician_id, other))
                continue
            shared = sorted(set(slot.client_ids) & booked[other.id])
            if shared:
                clashes.append(Clash(slot, "client", shared[0], other))
    return clashes


def overlapping_within(slots: Sequence[Slot]) -> tuple[Slot, Slot] | None:
    """Two of ``slots`` (one request's own bookings) that overlap and share someone, if any."""
    ordered = sorted(slots, key=lambda s: s.starts_at)
    for index, slot in enumerate(ordered):
        for later in ordered[index + 1 :]:
            if later.starts_at >= slot.ends_at:
                break
            if later.clinician_id == slot.clinician_id or set(later.client_ids) & set(slot.client_ids):
                return slot, later
    return None


def _describe(clash: Clash, user: User, *, many: bool) -> dict[str, Any]:
    other = clash.appointment
    visible = other.site_id in site_scope(user)
    return {
        "party": clash.party,
        "party_id": clash.party_id,
        #: Only an appointment of the caller's own sites is named; others are "another site".
        "appointment_id": other.id if visible else None,
        "starts_at": other.starts_at.isoformat(),
        "ends_at": other.ends_at.isoformat(),
        "requested_starts_at": clash.slot.starts_at.isoformat() if many else None,
    }


def refuse_clashes(clashes: Sequence[Clash], user: User, *, many: bool = False) -> NoReturn:
    """409 naming the first clash (who, with which appointment, when) and listing up to ten."""
    first = clashes[0]
    other = first.appointment
    local = to_local(other.starts_at, other.timezone)
    end = to_local(other.ends_at, other.timezone)
    which = f"appointment {other.id}" if other.site_id in site_scope(user) else "an appointment at another site"
    who = "clinician" if first.party == "clinician" else f"client {first.party_id}"
    detail = (
        f"Double booking: the {who} already has {which} on {local:%Y-%m-%d} "
        f"from {local:%H:%M} to {end:%H:%M} ({other.timezone})."
    )
    if many:
        detail += f" It clashes with the occurrence starting {first.slot.starts_at.isoformat()}."
    abort_problem(
        409,
        detail,
        problem="double-booking",
        extra={"clashes": [_describe(clash, user, many=many) for clash in clashes[:10]]},
    )


@contextmanager
def refusing_double_booking(
    slots: Sequence[Slot], user: User, *, exclude_ids: Iterable[int] = ()
) -> Iterator[None]:
    """Make the writes of the block in a savepoint, flushed at its end; a double booking the
    database refused there (PostgreSQL) becomes the same 409 as the check in code.

    The writes must happen inside the block: the savepoint begins by flushing what was pending
    before it, and only what is flushed inside it can be rolled back alone.
    """
    try:
        with db.session.begin_nested():
            yield
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint not in EXCLUSION_CONSTRAINTS:
            abort_problem(409, "The change conflicts with existing data; reload and try again.")
        # Another request booked the same time and committed first: now it is visible, name it.
        clashes = find_clashes(slots, exclude_ids=exclude_ids)
        if clashes:
            refuse_clashes(clashes, user, many=len(slots) > 1)
        party = EXCLUSION_CONSTRAINTS[constraint]
        abort_problem(
            409,
            f"Double booking: the {party} is already booked at that time.",
            problem="double-booking",
            extra={"clashes": [{"party": party}]},
        )
