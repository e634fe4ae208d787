"""The clinician's day, gathered from the domains that own it.

Each part is read through the operation the API's view of the same data calls, so each read is
audited as that API read is: today's appointments as ``GET /appointments`` (``appointment.read``
per row, via list), the newest alert as ``GET /staff-notifications`` (``staff_notification.read``
per client), plan reviews as ``GET /plan-reviews/due`` (``plan.read`` per plan, via due) and
follow-ups as ``GET /intake-calls?follow_up_due=true`` (``intake_call.read`` per row, via list).
The names and dates of birth shown beside them are those rows' own clients, already named in
those events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from clinic.auth.models import Site, User
from clinic.clients.loaders import clients_by_id
from clinic.clients.models import Client
from clinic.core.time import start_of_day, to_local, utcnow
from clinic.intake import operations as intake_ops
from clinic.intake.models import IntakeCall
from clinic.notify import staff
from clinic.notify.models import StaffNotification
from clinic.plans import operations as plans_ops
from clinic.plans.models import Plan
from clinic.scheduling import operations as scheduling_ops
from clinic.scheduling.models import Appointment

#: A day's appointments of one clinician fit one page; more than this sends the reader to the schedule.
APPOINTMENTS_SHOWN = 100
#: The first follow-ups of the intake queue (risk first); the rest are on /intake.
FOLLOW_UPS_SHOWN = 8


@dataclass
class Day:
    """What a clinician's home shows, at one of their sites, on that site's calendar date."""

    site: Site
    on: date
    now: datetime
    appointments: Sequence[Appointment]
    more_appointments: bool
    unread: int
    unacknowledged: int
    newest_alert: StaffNotification | None
    reviews: Sequence[Plan]
    follow_ups: Sequence[IntakeCall]
    more_follow_ups: bool
    clients: dict[int, Client] = field(default_factory=dict)


def local_date(site: Site, instant: datetime | None = None) -> date:
    """The calendar date at the site (its time zone) at ``instant`` (now)."""
    return to_local(instant or utcnow(), site.timezone).date()


def clinician_day(user: User, site: Site) -> Day:
    """Today at ``site`` for ``user``: their appointments, alerts, plan reviews due and intake follow-ups."""
    now = utcnow()
    on = local_date(site, now)
    appointments = scheduling_ops.list_appointments(
        user,
        limit=APPOINTMENTS_SHOWN,
        cursor=None,
        from_=start_of_day(on, site.timezone),
        to=start_of_day(on + timedelta(days=1), site.timezone),
        site_id=site.id,
        clinician_id=user.id,
    )
    unread, unacknowledged = staff.count_open(user)
    newest = staff.list_own(user, limit=1, cursor=None, acknowledged=False).items if unacknowledged else []
    reviews = plans_ops.due_reviews(user, before=on, site_id=site.id, clinician_id=user.id)
    follow_ups = intake_ops.search_calls(user, limit=FOLLOW_UPS_SHOWN, cursor=None, site_id=site.id, follow_up_due=True)
    client_ids = [a.client_id for a in appointments.items if a.client_id is not None]
    client_ids += [plan.client_id for plan in reviews]
    return Day(
        site=site,
        on=on,
        now=now,
        appointments=appointments.items,
        more_appointments=appointments.next_cursor is not None,
        unread=unread,
        unacknowledged=unacknowledged,
        newest_alert=newest[0] if newest else None,
        reviews=reviews,
        follow_ups=follow_ups.items,
        more_follow_ups=follow_ups.next_cursor is not None,
        clients=clients_by_id(user, client_ids),
    )
