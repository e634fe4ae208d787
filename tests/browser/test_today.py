"""The clinician's home and alerts in a real browser: sign in to /today, check in and complete a visit with
one click each (and another with the keyboard only), then acknowledge a safety alert on /alerts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from clinic.auth.models import Site, User
from clinic.clients.operations import register_client
from clinic.core.time import to_local, utcnow
from clinic.core.unit_of_work import unit_of_work
from clinic.extensions import db
from clinic.intake.models import CallerRelation, CallOutcome, Direction
from clinic.intake.operations import log_call
from clinic.notify.models import StaffNotification, StaffNotificationKind
from clinic.notify.staff import notify_staff
from clinic.scheduling import operations as scheduling_ops
from clinic.scheduling.conflicts import Slot, find_clashes
from clinic.scheduling.models import Appointment, AppointmentKind, AppointmentStatus
from tests.browser.conftest import LiveServer

#: Lakeview's first clinician: the schedule's tests work at Riverside.
CLINICIAN = "clinician1.lakeview"
VISIT_MINUTES = 15


@dataclass(frozen=True)
class Prepared:
    email: str
    by_mouse: int
    by_keyboard: int
    #: An earlier visit of the day left without its outcome (None when the day has no room before now).
    forgotten: int | None
    safety_alert: int


def _free(clinician_id: int, client_id: int, zone: str, candidates: list[datetime], minutes: int) -> datetime | None:
    """The first candidate start on the site's today at which neither the clinician nor the client is booked."""
    today = to_local(utcnow(), zone).date()
    for start in candidates:
        slot = Slot(start, start + timedelta(minutes=minutes), clinician_id, (client_id,))
        if to_local(start, zone).date() == today and not find_clashes([slot]):
            return start
    return None


def _prepare(live_server: LiveServer) -> Prepared:
    """Visits of two new clients with the clinician within the hour (one earlier today unrecorded), and two alerts."""
    email = live_server.account(CLINICIAN)
    with live_server.app.app_context(), unit_of_work():
        clinician = db.session.scalars(select(User).where(User.email == email)).one()
        site = db.session.get_one(Site, min(clinician.site_ids))
        zone = site.timezone
        juniper, marcus = (
            register_client(actor=clinician, site_id=site.id, first_name=first, last_name=last, date_of_birth=born,
                            primary_clinician_id=clinician.id, allow_duplicate=True)
            for first, last, born in (("Juniper", "Alvarez", date(1990, 2, 11)), ("Marcus", "Bell", date(1979, 9, 23)))
        )
        db.session.flush()

        def book(client_id: int, start: datetime, kind: AppointmentKind, room: str) -> int:
            visit = scheduling_ops.book(actor=clinician, site_id=site.id, kind=kind, clinician_id=clinician.id,
                                        client_id=client_id, starts_at=start, duration_minutes=VISIT_MINUTES,
                                        location=room)
            db.session.flush()
            return visit.id

        now = utcnow().replace(second=0, microsecond=0)
        # Check-in is open from an hour before the start until the end: starts from now to 55 minutes ahead.
        soon = [now + timedelta(minutes=m) for m in range(0, 56, 5)]
        ids = []
        for client, kind in ((juniper, AppointmentKind.INDIVIDUAL_THERAPY), (marcus, AppointmentKind.MEDICATION_VISIT)):
            start = _free(clinician.id, client.id, zone, soon, VISIT_MINUTES)
            assert start is not None, "the demo clinician has no free time within the hour"
            ids.append(book(client.id, start, kind, "Room 2"))
        earlier = [now - timedelta(minutes=m) for m in range(120, 60 * 12, 15)]
        forgotten_start = _free(clinician.id, juniper.id, zone, earlier, VISIT_MINUTES)
        forgotten = book(juniper.id, forgotten_start, AppointmentKind.DRUG_SCREEN, "Lab") if forgotten_start else None

        # A caller at risk whose follow-up time has passed: the intake queue's, shown on today too.
        log_call(actor=clinician, site_id=site.id, direction=Direction.INBOUND, occurred_at=now - timedelta(hours=3),
                 caller_name="Rosa Delgado", caller_relation=CallerRelation.SELF, callback_phone="+13125550187",
                 referral_source="emergency department", reason="Overdosed last week; wants to start treatment",
                 substances=["fentanyl"], risk_flags=["recent_overdose"], outcome=CallOutcome.CALLBACK_REQUESTED,
                 follow_up_at=now - timedelta(hours=1))
        due_on = to_local(now, zone).date() - timedelta(days=3)
        notify_staff(clinician.id, kind=StaffNotificationKind.REVIEW_OVERDUE, title="A treatment plan review is overdue",
                     body=f"The plan of client MRN {marcus.mrn} was due for review on {due_on.isoformat()}.",
                     client_id=marcus.id, resource="client", resource_id=marcus.id)
        safety = notify_staff(
            clinician.id, kind=StaffNotificationKind.SAFETY_FLAG,
            title="Safety flag on a PHQ-9: item 9 (thoughts of death or self-harm) answered above 0",
            body=f"Safety flag on a PHQ-9: item 9 answered above 0. Client MRN {juniper.mrn}. "
                 "Review the client's safety today.",
            client_id=juniper.id, resource="client", resource_id=juniper.id,
        )
        assert safety is not None
        prepared = Prepared(email=email, by_mouse=ids[0], by_keyboard=ids[1], forgotten=forgotten,
                            safety_alert=safety.id)
    return prepared


def _status(live_server: LiveServer, appointment_id: int) -> AppointmentStatus:
    with live_server.app.app_context():
        status = db.session.get_one(Appointment, appointment_id).status
        db.session.remove()
    return status


def _focused(page: Any) -> tuple[str, str]:
    return tuple(page.evaluate("() => [document.activeElement.id, document.activeElement.textContent.trim()]"))


def _wait_for_focus(page: Any, element_id: str) -> None:
    """Until the element ``element_id`` has the keyboard focus (htmx gives it once the row is swapped in)."""
    page.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg=element_id)


def test_a_clinician_works_through_the_day_and_acknowledges_an_alert(open_session: Any, live_server: LiveServer) -> None:
    prepared = _prepare(live_server)
    session = open_session(prepared.email)
    page = session.page

    # Signing in lands on the clinician's home.
    assert page.url.endswith("/today")
    assert page.get_by_role("heading", level=1).inner_text() == "Today"
    session.check_accessibility()

    # On the front desk's tablet and at 200% zoom each row's action is on screen, not scrolled off to
    # the right: the rows of a work queue stack, each cell under its column's name.
    for width in (768, 640):
        narrow = open_session(prepared.email, viewport=(width, 1024))
        for path, action in ((f"/today#appointment-{prepared.by_mouse}", f"#appointment-{prepared.by_mouse} button"),
                             ("/alerts", f"#alert-{prepared.safety_alert} button >> text=Acknowledge")):
            narrow.go(path)
            box = narrow.page.locator(action).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, f"{path} at {width}px: {box}"
        if width == 768:
            narrow.go("/today")
            narrow.screenshot("today-tablet", full_page=False)

    # One click: Check in; the row (and only the row) is replaced and says what happened.
    pages_loaded = sum(1 for url in session.requests if url.endswith("/today"))
    row = page.locator(f"#appointment-{prepared.by_mouse}")
    assert re.search(r"alvarez, juniper", row.inner_text(), re.I)
    follow_ups = page.get_by_role("region", name=re.compile("^Follow-ups due"))
    assert "Recent overdose" in follow_ups.get_by_role("row").filter(has_text="Rosa Delgado").inner_text()
    if prepared.forgotten is not None:  # an ended visit asks why its outcome comes late
        assert "Why it is recorded only now" in page.locator(f"#appointment-{prepared.forgotten}").inner_text()
    row.get_by_role("button", name=re.compile(r"^Check in")).click()
    expect(row).to_contain_text(re.compile(r"Checked in \d"))
    assert re.search(r"Checked in \d{1,2}:\d\d [AP]M C[SD]T", row.inner_text())
    assert _status(live_server, prepared.by_mouse) is AppointmentStatus.CHECKED_IN
    session.check_accessibility()
    page.mouse.move(0, 0)  # no button shown hovered in the screenshot
    session.screenshot("today-home")

    # One click: Complete.
    row.get_by_role("button", name=re.compile(r"^Complete")).click()
    expect(row).to_contain_text(re.compile(r"Completed \d"))
    assert row.get_by_role("button").count() == 0
    assert _status(live_server, prepared.by_mouse) is AppointmentStatus.COMPLETED
    assert sum(1 for url in session.requests if url.endswith("/today")) == pages_loaded  # no page was reloaded

    # The keyboard alone: Tab to the other visit's Check in, Enter; the focus stays on the row's next action.
    keyboard_row = page.locator(f"#appointment-{prepared.by_keyboard}")
    target = f"appointment-{prepared.by_keyboard}-next"
    for _ in range(80):
        page.keyboard.press("Tab")
        if _focused(page)[0] == target:
            break
    else:
        raise AssertionError("Tab never reached the visit's Check in")
    assert _focused(page)[1].startswith("Check in")
    page.keyboard.press("Enter")
    expect(keyboard_row).to_contain_text(re.compile(r"Checked in \d"))
    _wait_for_focus(page, target)  # the row's next action: Complete
    assert _focused(page)[1].startswith("Complete")
    page.keyboard.press("Enter")
    expect(keyboard_row).to_contain_text(re.compile(r"Completed \d"))
    _wait_for_focus(page, target)  # the row's status now holds the focus
    assert _status(live_server, prepared.by_keyboard) is AppointmentStatus.COMPLETED

    # The alerts: the safety alert with its next steps, acknowledged with a note.
    alerts = page.get_by_role("region", name=re.compile("^Alerts"))
    assert "2 to acknowledge" in alerts.inner_text()
    alerts.get_by_role("link", name=re.compile("^Open your alerts")).click()
    page.wait_for_url("**/alerts")
    assert page.get_by_role("heading", level=1).inner_text() == "Alerts"
    alert = page.locator(f"#alert-{prepared.safety_alert}")
    assert "Next steps" in alert.inner_text() and "988" in alert.inner_text()
    session.check_accessibility()
    session.screenshot("alerts-list")

    alert.get_by_label("Note").fill("Called her: safe at home, safety plan reviewed")
    alert.get_by_role("button", name="Acknowledge").click()
    expect(alert).to_contain_text("Acknowledged ")
    assert "Called her: safe at home" in alert.inner_text()
    assert "Next steps" not in alert.inner_text()
    expect(page.locator("#alert-counts")).to_have_text("1 to acknowledge · 1 unread")
    session.check_accessibility()
    session.screenshot("alerts-acknowledged")
    with live_server.app.app_context():
        acknowledged = db.session.get_one(StaffNotification, prepared.safety_alert)
        assert acknowledged.acknowledged_at is not None and acknowledged.read_at is not None
        db.session.remove()

    # Back on today, one alert is left to acknowledge.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Today").click()
    page.wait_for_url("**/today")
    assert "1 to acknowledge" in page.get_by_role("region", name=re.compile("^Alerts")).inner_text()
