"""The schedule in a real browser: a clinician's day and week, an appointment's status changes (one by
keyboard only), and a forgotten appointment documented late with its reason."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from clinic.auth.models import Site, User
from clinic.clients.operations import register_client
from clinic.core.time import to_local, utcnow
from clinic.core.unit_of_work import unit_of_work
from clinic.extensions import db
from clinic.notify.models import Reminder
from clinic.scheduling import operations as scheduling_ops
from clinic.scheduling.conflicts import Slot, find_clashes
from clinic.scheduling.models import Appointment, AppointmentKind, AppointmentStatus
from tests.browser.conftest import LiveServer

SITE = "Riverside Recovery Center"


@dataclass(frozen=True)
class Booked:
    clinician_email: str
    soon_id: int
    soon_date: date
    forgotten_id: int
    #: A demo appointment ahead, with its reminders (for the screenshot of a typical appointment).
    demo_id: int | None
    #: The site's busiest day around now in the demo data (for the screenshots).
    busy_date: date


def _free_start(clinician_id: int, client_id: int, candidates: list[datetime], minutes: int) -> datetime | None:
    for start in candidates:
        slot = Slot(start, start + timedelta(minutes=minutes), clinician_id, (client_id,))
        if not find_clashes([slot]):
            return start
    return None


def _book(live_server: LiveServer) -> Booked:
    """A client of a Riverside clinician with a visit starting within the hour and one that ended unrecorded.

    The first clinician's, unless the demo data fills that hour for them: then another clinician of the
    site, who signs in instead (every demo account has the same password).
    """
    with live_server.app.app_context(), unit_of_work():
        site = db.session.scalars(select(Site).where(Site.name == SITE)).one()
        clinicians = db.session.scalars(
            select(User).where(User.email.like("clinician%.riverside@demo.example.org")).order_by(User.email)
        ).all()
        assert clinicians, "the demo has no Riverside clinician"
        now = utcnow().replace(second=0, microsecond=0)
        soon_times = [now + timedelta(minutes=m) for m in range(10, 59)]
        client = register_client(actor=clinicians[0], site_id=site.id, first_name="Wren", last_name="Castellano",
                                 date_of_birth=date(1988, 7, 14), allow_duplicate=True)
        db.session.flush()
        chosen = [(c, _free_start(c.id, client.id, soon_times, 15)) for c in clinicians]
        clinician, soon_start = next(((c, start) for c, start in chosen if start is not None), (None, None))
        assert clinician is not None and soon_start is not None, "no Riverside clinician is free in the coming hour"
        soon = scheduling_ops.book(actor=clinician, site_id=site.id, kind=AppointmentKind.INDIVIDUAL_THERAPY,
                                   clinician_id=clinician.id, client_id=client.id, starts_at=soon_start,
                                   duration_minutes=15, location="Room 3")
        past = [now - timedelta(minutes=m) for m in range(120, 60 * 30, 15)]
        forgotten_start = _free_start(clinician.id, client.id, past, 30)
        assert forgotten_start is not None
        forgotten = scheduling_ops.book(actor=clinician, site_id=site.id, kind=AppointmentKind.MEDICATION_VISIT,
                                        clinician_id=clinician.id, client_id=client.id, starts_at=forgotten_start,
                                        duration_minutes=30, location="Room 1")
        email = clinician.email
        demo_id = db.session.scalar(
            select(Appointment.id)
            .join(Reminder, Reminder.appointment_id == Appointment.id)
            .where(Appointment.site_id == site.id, Appointment.starts_at > now + timedelta(days=2),
                   Appointment.status == AppointmentStatus.SCHEDULED)
            .order_by(Appointment.starts_at)
            .limit(1)
        )
        # The site's busiest day (of its busiest week) around now in the demo data, for the screenshots.
        around = db.session.scalars(
            select(Appointment.starts_at).where(Appointment.site_id == site.id,
                                                Appointment.starts_at > now - timedelta(days=70),
                                                Appointment.starts_at < now + timedelta(days=15))
        ).all()
        days = Counter(to_local(start, site.timezone).date() for start in around)
        weeks = Counter(day - timedelta(days=day.weekday()) for day in days.elements())
        monday = max(weeks, key=lambda week: (weeks[week], week))
        busy_date = max((day for day in days if 0 <= (day - monday).days < 7), key=lambda day: (days[day], day))
        booked = Booked(email, soon.id, to_local(soon_start, site.timezone).date(), forgotten.id, demo_id, busy_date)
    return booked


def _tab_to(page: Any, name: str, limit: int = 60) -> None:
    """Press Tab until the focused element is the button ``name`` (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => [document.activeElement.tagName, document.activeElement.textContent.trim()]")
        if focused == ["BUTTON", name]:
            return
    raise AssertionError(f"Tab never reached the {name!r} button")


def test_a_clinician_works_through_the_schedule(open_session: Any, live_server: LiveServer) -> None:
    booked = _book(live_server)
    session = open_session(booked.clinician_email)
    page = session.page

    # The schedule opens on today's day view of the clinician; the filters show the whole site on a busy day.
    session.go("/schedule")
    assert page.get_by_role("heading", level=1).inner_text() == "Schedule"
    page.get_by_label("Date").fill(booked.busy_date.isoformat())
    page.get_by_label("Clinician").select_option(label="All clinicians")
    page.get_by_role("button", name="Show schedule").click()
    page.wait_for_url(re.compile(r"date=" + booked.busy_date.isoformat()))
    assert page.get_by_role("table").get_by_role("row").count() > 1
    session.check_accessibility()
    session.screenshot("schedule-day")

    # That week, each appointment under its day.
    page.get_by_role("link", name="Week", exact=True).click()
    page.wait_for_url(re.compile(r"view=week"))
    day = page.locator(f'section[aria-labelledby="day-{booked.busy_date.isoformat()}"]')
    assert day.locator("a.slot").count() >= 1
    session.check_accessibility()
    session.screenshot("schedule-week")

    # A typical appointment ahead, with the reminders notify planned for it.
    if booked.demo_id is not None:
        session.go(f"/appointments/{booked.demo_id}")
        assert page.get_by_role("heading", name="Reminders").is_visible()
        session.check_accessibility()
        session.screenshot("schedule-appointment")

    # The coming visit: confirm, check in (keyboard only), complete; the status says so each time.
    session.go(f"/schedule?date={booked.soon_date.isoformat()}")
    visit = page.locator(f'a[href="/appointments/{booked.soon_id}"]')
    assert re.search("castellano, wren", visit.inner_text(), re.I)
    visit.click()
    page.wait_for_url(f"**/appointments/{booked.soon_id}")
    banner = page.get_by_role("region", name="Client")
    assert "Jul 14, 1988" in banner.inner_text()  # the second identifier, beside the name
    status = page.locator(".appointment-status")
    assert "Scheduled" in status.inner_text()
    session.check_accessibility()
    page.get_by_role("button", name="Record confirmation").click()
    page.get_by_role("status").filter(has_text="confirmation is recorded").wait_for()
    assert "Confirmed" in status.inner_text()

    _tab_to(page, "Check in")
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="checked in").wait_for()
    assert "Checked in" in status.inner_text()

    page.get_by_role("button", name="Complete", exact=True).click()
    page.get_by_role("status").filter(has_text="completed").wait_for()
    assert "Completed" in status.inner_text()
    assert page.get_by_role("button", name="Complete", exact=True).count() == 0
    session.check_accessibility()

    # The forgotten one: past, still scheduled; documented late with the reason.
    session.go(f"/appointments/{booked.forgotten_id}")
    assert page.get_by_role("heading", name="Record what happened").is_visible()
    page.get_by_role("button", name="Record as completed").click()
    page.get_by_role("alert").filter(has_text="say why").wait_for()  # no reason: the field says what is missing
    reason = page.get_by_label("Why is this recorded only now?")
    reason.fill("Check-in was forgotten at the front desk")
    session.check_accessibility()
    session.screenshot("schedule-late-entry")
    page.get_by_role("button", name="Record as completed").click()
    page.get_by_role("status").filter(has_text="completed").wait_for()
    assert "Completed" in status.inner_text()
    assert "Reason: Check-in was forgotten at the front desk" in page.locator(".notice").filter(
        has_text="Recorded late").inner_text()
    session.check_accessibility()
