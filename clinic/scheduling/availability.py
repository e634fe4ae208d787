"""Clinicians' working hours, and the free slots in them that intake books appointments into.

A slot is free when it lies inside the clinician's working hours at the site and is clear of
every booking the clinician has (at any site): the same double-booking check that booking runs
(:func:`clinic.scheduling.conflicts.find_clashes`), so what is offered can be booked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select

from clinic.audit.operations import audit
from clinic.auth.models import Role, Site, User
from clinic.core.errors import abort_problem, field_error
from clinic.core.time import from_local, to_local, utcnow
from clinic.extensions import db
from clinic.scheduling.conflicts import Slot, find_clashes
from clinic.scheduling.models import DEFAULT_WORKING_WEEK, AppointmentKind, WorkingHours
from clinic.scheduling.operations import check_clinician, require_kind_rights


@dataclass(frozen=True)
class Stretch:
    """One weekly stretch of working time: ``weekday`` 0 (Monday) .. 6, wall-clock ``start``..``end``."""

    weekday: int
    start: time
    end: time
    site_id: int


@dataclass(frozen=True)
class WorkingWeek:
    user_id: int
    #: The zone every stretch is in; None: each stretch is in its site's zone.
    timezone: str | None
    weekly: list[Stretch]
    #: No hours were set: the default week (Monday to Friday, 09:00-17:00) at each of the clinician's sites.
    is_default: bool


def _default_week(clinician: User) -> list[Stretch]:
    return [
        Stretch(weekday, start, end, site_id)
        for site_id in clinician.site_ids
        for weekday, start, end in DEFAULT_WORKING_WEEK
    ]


def _require_clinician(user: User) -> None:
    if user.role is not Role.CLINICIAN:
        abort_problem(422, "Only clinicians have working hours.", errors={"user_id": ["Not a clinician."]})


def working_week(clinician: User) -> WorkingWeek:
    """The clinician's working hours as set, or the default week."""
    _require_clinician(clinician)
    rows = db.session.scalars(
        select(WorkingHours)
        .where(WorkingHours.user_id == clinician.id)
        .order_by(WorkingHours.weekday, WorkingHours.start_time, WorkingHours.site_id)
    ).all()
    if not rows:
        return WorkingWeek(clinician.id, None, _default_week(clinician), is_default=True)
    weekly = [Stretch(r.weekday, r.start_time, r.end_time, r.site_id) for r in rows]
    return WorkingWeek(clinician.id, rows[0].timezone, weekly, is_default=False)


def require_working_hours_rights(actor: User, user_id: int) -> None:
    """Administrators set anyone's working hours; a clinician only their own."""
    if actor.role is Role.ADMIN:
        return
    if actor.role is Role.CLINICIAN and actor.id == user_id:
        return
    abort_problem(403, "Only an administrator, or the clinician themself, may see and set working hours.")


def _refuse_overlaps(weekly: Sequence[Stretch], zones: dict[int, str]) -> None:
    """Two stretches of one weekday (in one zone) that overlap: a clinician is in one place at a time."""
    for index, stretch in enumerate(weekly):
        for other in weekly[:index]:
            if (
                other.weekday == stretch.weekday
                and zones[other.site_id] == zones[stretch.site_id]
                and other.start < stretch.end
                and stretch.start < other.end
            ):
                field_error(f"weekly.{index}.start", "Overlaps another stretch of the same day.")


def set_working_hours(
    clinician: User, *, actor: User, weekly: Sequence[dict[str, Any]], timezone: str | None = None
) -> WorkingWeek:
    """Replace the clinician's weekly working hours (each stretch at one of their sites)."""
    require_working_hours_rights(actor, clinician.id)
    _require_clinician(clinician)
    stretches = [Stretch(e["weekday"], e["start"], e["end"], e["site_id"]) for e in weekly]
    for index, stretch in enumerate(stretches):
        if stretch.site_id not in clinician.site_ids:
            field_error(f"weekly.{index}.site_id", "Not one of the clinician's sites.")
    site_zones = db.session.execute(select(Site.id, Site.timezone).where(Site.id.in_(clinician.site_ids)))
    zones = {site_id: timezone or zone for site_id, zone in site_zones}
    _refuse_overlaps(stretches, zones)
    db.session.execute(delete(WorkingHours).where(WorkingHours.user_id == clinician.id))
    db.session.add_all(
        WorkingHours(
            user_id=clinician.id,
            site_id=s.site_id,
            weekday=s.weekday,
            start_time=s.start,
            end_time=s.end,
            timezone=timezone,
        )
        for s in stretches
    )
    db.session.flush()
    audit("update", clinician, details={"fields": ["working_hours"], "stretches": len(stretches)})
    return working_week(clinician)


# --- free slots ------------------------------------------------------------------------------------


def _clinicians(site_id: int, clinician_id: int | None) -> list[User]:
    if clinician_id is not None:
        check_clinician(clinician_id, site_id)
        return [db.session.get_one(User, clinician_id)]
    return list(
        db.session.scalars(
            select(User)
            .where(User.role == Role.CLINICIAN, User.is_active.is_(True), User.sites.any(Site.id == site_id))
            .order_by(User.id)
        )
    )


def _hours_at_site(clinicians: Sequence[User], site: Site) -> dict[int, list[tuple[Stretch, str]]]:
    """Each clinician's stretches at ``site``, with the zone each is in (the default week for those who set none)."""
    rows = db.session.scalars(
        select(WorkingHours).where(WorkingHours.user_id.in_([c.id for c in clinicians]))
    ).all()
    by_user: dict[int, list[WorkingHours]] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    hours: dict[int, list[tuple[Stretch, str]]] = {}
    for clinician in clinicians:
        own = by_user.get(clinician.id)
        if own is None:
            hours[clinician.id] = [
                (Stretch(day, start, end, site.id), site.timezone) for day, start, end in DEFAULT_WORKING_WEEK
            ]
        else:
            hours[clinician.id] = [
                (Stretch(r.weekday, r.start_time, r.end_time, r.site_id), r.timezone or site.timezone)
                for r in own
                if r.site_id == site.id
            ]
    return hours


def _days(from_: datetime, to: datetime, zone: str) -> list[date]:
    first, last = to_local(from_, zone).date(), to_local(to, zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _candidates(
    clinician_id: int,
    stretches: Sequence[tuple[Stretch, str]],
    *,
    from_: datetime,
    to: datetime,
    length: timedelta,
    step: timedelta,
) -> list[Slot]:
    """Every start, ``step`` apart from the start of each working stretch, whose slot fits in it and in the range."""
    slots = []
    for stretch, zone in stretches:
        for day in _days(from_, to, zone):
            if day.weekday() != stretch.weekday:
                continue
            opens = from_local(datetime.combine(day, stretch.start), zone)
            closes = from_local(datetime.combine(day, stretch.end), zone)
            start = opens
            while start + length <= closes:
                if start >= from_ and start + length <= to:
                    slots.append(Slot(start, start + length, clinician_id, ()))
                start += step
    return slots


def free_slots(
    *,
    actor: User,
    site_id: int,
    from_: datetime,
    to: datetime,
    duration_minutes: int,
    clinician_id: int | None = None,
    kind: AppointmentKind | None = None,
    step_minutes: int = 15,
) -> list[Slot]:
    """Slots of ``duration_minutes`` inside working hours at the site, clear of every booking, not yet begun.

    Any signed-in user may ask about their own sites: slots name clinicians and times, no client.
    """
    if site_id not in actor.site_ids:
        field_error("site_id", "Not one of your sites.")
    if kind is not None:
        require_kind_rights(actor, kind)
    site = db.session.get_one(Site, site_id)
    clinicians = _clinicians(site_id, clinician_id)
    hours = _hours_at_site(clinicians, site)
    lower = max(from_, utcnow())
    length, step = timedelta(minutes=duration_minutes), timedelta(minutes=step_minutes)
    free: set[Slot] = set()
    for clinician in clinicians:
        candidates = set(_candidates(clinician.id, hours[clinician.id], from_=lower, to=to, length=length, step=step))
        # One clinician at a time: the clash query then reads only that clinician's bookings.
        taken = {clash.slot for clash in find_clashes(sorted(candidates, key=lambda s: s.starts_at))}
        free |= candidates - taken
    return sorted(free, key=lambda s: (s.starts_at, s.clinician_id))
