"""Booking in a real browser: the availability finder (with the mouse and with the keyboard alone), a
double booking named beside the form, a weekly series, a group session's seats and working hours."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from clinic.auth.models import Role, Site, User
from clinic.clients.models import Client
from clinic.clients.operations import register_client
from clinic.core.time import to_local, utcnow
from clinic.core.unit_of_work import unit_of_work
from clinic.extensions import db
from clinic.scheduling.models import Appointment, AppointmentKind
from tests.browser.conftest import ADMIN, LiveServer

APPOINTMENT_URL = re.compile(r".*/appointments/(\d+)$")


def _weekday_ahead(weeks: int, weekday: int, zone: str) -> date:
    """A weekday some weeks after the demo's bookings end (28 days ahead), in the site's calendar."""
    today = to_local(utcnow(), zone).date()
    start = today + timedelta(weeks=weeks)
    return start + timedelta(days=(weekday - start.weekday()) % 7)


def _person(live_server: LiveServer, email: str) -> dict[str, Any]:
    """The demo account's id, first site and that site's zone, and a few of the site's demo clients."""
    with live_server.app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        site = db.session.get_one(Site, min(user.site_ids))
        clients = db.session.scalars(select(Client).where(Client.site_id == site.id).order_by(Client.id)).all()
        found = {
            "user_id": user.id, "site_id": site.id, "zone": site.timezone, "site_name": site.name,
            "clients": [(c.id, c.last_name.upper(), c.first_name, c.mrn) for c in clients],
        }
        db.session.remove()
    return found


def _new_client(live_server: LiveServer, email: str) -> int:
    """A client of the account's site with a unique name, for a test that must not meet another's bookings."""
    with live_server.app.app_context():
        with unit_of_work():
            user = db.session.scalars(select(User).where(User.email == email)).one()
            client = register_client(actor=user, site_id=min(user.site_ids), first_name="Rowan",
                                     last_name=f"Tester-{uuid.uuid4().hex[:6]}", date_of_birth=date(1988, 5, 17),
                                     allow_duplicate=True)
            client_id = client.id
        db.session.remove()
    return client_id


def _appointment(live_server: LiveServer, appointment_id: int) -> dict[str, Any]:
    with live_server.app.app_context():
        appointment = db.session.get_one(Appointment, appointment_id)
        series = []
        if appointment.series_id is not None:
            series = list(db.session.scalars(select(Appointment.starts_at).where(
                Appointment.series_id == appointment.series_id).order_by(Appointment.starts_at)))
        found = {"kind": appointment.kind, "client_id": appointment.client_id, "starts_at": appointment.starts_at,
                 "clinician_id": appointment.clinician_id, "series": series, "is_group": appointment.is_group}
        db.session.remove()
    return found


def _finder(client_id: int, kind: str, day: date, **more: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"client_id": client_id, "kind": kind, "date": day, **more}.items())
    return f"/appointments/new?{query}"


# --- intake -----------------------------------------------------------------------------------------


def test_an_intake_coordinator_books_an_assessment_from_the_availability_finder(
    open_session: Any, live_server: LiveServer
) -> None:
    email = live_server.account("intake1.")
    me = _person(live_server, email)
    client_id, family, given, mrn = me["clients"][0]
    day = _weekday_ahead(6, 1, me["zone"])
    session = open_session(email)
    page = session.page
    session.go(f"/appointments/new?client_id={client_id}&kind=assessment")
    assert page.get_by_role("heading", level=1).inner_text() == "Book an appointment"
    assert page.title().startswith("Book an appointment ")  # no client in the title
    who = page.locator(".booking-client").inner_text()
    assert f"{family}, {given}" in who and mrn in who and "Born" in who
    assert page.get_by_label("Kind").input_value() == "intake_assessment"

    # Another day, through the form: the free times of every clinician of the site.
    page.get_by_label("Date", exact=True).fill(day.isoformat())
    page.get_by_role("button", name="Find free times").click()
    page.wait_for_url(re.compile(rf".*date={day.isoformat()}.*"))
    heading = page.get_by_role("heading", name=re.compile("^Free times on"))
    assert f"{day:%b} {day.day}, {day.year}" in heading.inner_text()
    slots = page.locator("button[name=slot]")
    assert slots.count() > 4
    session.check_accessibility()
    session.screenshot("booking-finder")

    first = page.locator(".slot-list").first.get_by_role("button").first
    label = first.inner_text().split("\n")[0]
    first.click()
    page.wait_for_url(APPOINTMENT_URL)
    booked = _appointment(live_server, int(APPOINTMENT_URL.match(page.url).group(1)))
    assert booked["kind"] is AppointmentKind.INTAKE_ASSESSMENT
    assert booked["client_id"] == client_id
    local = to_local(booked["starts_at"], me["zone"])
    assert local.date() == day
    assert label.startswith(f"{local:%-I:%M %p}")


def test_a_time_booked_meanwhile_is_named_beside_the_form_with_the_choices_kept(
    open_session: Any, live_server: LiveServer
) -> None:
    email = live_server.account("intake1.")
    me = _person(live_server, email)
    client_id = _new_client(live_server, email)
    other_client = _new_client(live_server, email)
    day = _weekday_ahead(6, 3, me["zone"])
    with live_server.app.app_context():
        clinician = db.session.scalars(select(User).where(
            User.role == Role.CLINICIAN, User.sites.any(Site.id == me["site_id"])).order_by(User.id)).first()
        assert clinician is not None
        clinician_id, clinician_name = clinician.id, clinician.name
        db.session.remove()
    finder = _finder(client_id, "assessment", day, clinician_id=clinician_id, duration_minutes=45)

    session = open_session(email)
    page = session.page
    session.go(finder)
    slot = page.locator("button[name=slot]").nth(2)
    slot_value = slot.get_attribute("value")

    # A colleague books that time for someone else while the page is open.
    colleague = open_session(email)
    colleague.go(_finder(other_client, "assessment", day, clinician_id=clinician_id, duration_minutes=45))
    colleague.page.locator(f"button[name=slot][value='{slot_value}']").click()
    colleague.page.wait_for_url(APPOINTMENT_URL)
    taken = int(APPOINTMENT_URL.match(colleague.page.url).group(1))

    slot.click()
    page.wait_for_load_state()
    clash = page.get_by_role("alert")
    text = clash.inner_text()
    assert "This time is taken" in text
    assert f"Double booking: the clinician, {clinician_name}, already has appointment {taken}" in text
    assert clash.get_by_role("link", name=f"appointment {taken}").get_attribute("href") == f"/appointments/{taken}"
    assert page.evaluate("document.activeElement.id") == "" and page.evaluate(
        "document.activeElement.classList.contains('booking__aside')")
    # Everything chosen is kept; the time taken is no longer offered.
    assert page.get_by_label("Length in minutes").input_value() == "45"
    assert page.locator("#clinician_id").input_value() == str(clinician_id)
    assert page.locator(f"button[name=slot][value='{slot_value}']").count() == 0
    session.check_accessibility()
    session.screenshot("booking-clash")


def test_booking_with_the_keyboard_alone(open_session: Any, live_server: LiveServer) -> None:
    email = live_server.account("intake1.")
    me = _person(live_server, email)
    client_id = _new_client(live_server, email)
    day = _weekday_ahead(7, 0, me["zone"])
    session = open_session(email)
    page = session.page
    session.go(_finder(client_id, "assessment", day))
    # Booking is part of the schedule: the navigation says where the user is.
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedule").get_attribute("aria-current") == "page"
    keyboard = page.keyboard

    def tab_to(condition: str, limit: int = 80) -> None:
        for _ in range(limit):
            keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const el = document.activeElement; return {condition}; }})()"):
                return
        raise AssertionError(f"Tab never reached {condition}")

    # The next day, by its link, with Enter.
    tab_to("el.tagName === 'A' && el.textContent.trim() === 'Next day'")
    keyboard.press("Enter")
    following = day + timedelta(days=1)
    page.wait_for_url(re.compile(rf".*date={following.isoformat()}.*"))
    # The first free time, with Space: booked, and the appointment's page.
    tab_to("el.name === 'slot'")
    chosen = page.evaluate("document.activeElement.value")
    keyboard.press("Space")
    page.wait_for_url(APPOINTMENT_URL)
    booked = _appointment(live_server, int(APPOINTMENT_URL.match(page.url).group(1)))
    clinician, starts = chosen.split("|")
    assert booked["clinician_id"] == int(clinician)
    assert booked["starts_at"] == datetime.fromisoformat(starts)
    assert to_local(booked["starts_at"], me["zone"]).date() == following


# --- clinicians -----------------------------------------------------------------------------------------


def test_a_clinician_books_a_weekly_series(open_session: Any, live_server: LiveServer) -> None:
    email = live_server.account("clinician1.")
    me = _person(live_server, email)
    client_id = _new_client(live_server, email)
    day = _weekday_ahead(8, 2, me["zone"])
    session = open_session(email)
    page = session.page
    session.go(_finder(client_id, "individual_therapy", day))
    # A clinician's finder starts with their own free times.
    assert page.locator("#clinician_id").input_value() == str(me["user_id"])
    page.get_by_label("Every week").check()
    page.get_by_label("Appointments in the series").fill("6")
    session.check_accessibility()
    session.screenshot("booking-series")
    first = page.locator("button[name=slot]").first
    first.click()
    page.wait_for_url(APPOINTMENT_URL)
    booked = _appointment(live_server, int(APPOINTMENT_URL.match(page.url).group(1)))
    assert booked["kind"] is AppointmentKind.INDIVIDUAL_THERAPY
    assert booked["clinician_id"] == me["user_id"]
    assert len(booked["series"]) == 6
    local = [to_local(start, me["zone"]) for start in booked["series"]]
    assert [start.date() for start in local] == [day + timedelta(weeks=n) for n in range(6)]
    assert len({start.time() for start in local}) == 1  # the same local time every week


def test_a_clinician_creates_a_group_session_and_gives_seats(open_session: Any, live_server: LiveServer) -> None:
    email = live_server.account("clinician1.")
    me = _person(live_server, email)
    first_client = _new_client(live_server, email)
    day = _weekday_ahead(9, 3, me["zone"])
    session = open_session(email)
    page = session.page
    session.go(f"/appointments/new?kind=group&date={day.isoformat()}&duration_minutes=90")
    page.get_by_label("Seats").fill("8")
    page.locator("button[name=slot]").first.click()
    page.wait_for_url(re.compile(r".*/appointments/\d+/attendees/new\?created=1$"))
    assert "The group session is booked" in page.get_by_role("status").inner_text()
    assert page.locator("#seats-left").inner_text() == "8"
    page.get_by_label("Client to add").fill("Tester-")
    page.get_by_role("button", name="Find client").click()
    page.get_by_role("button", name=re.compile("^Give a seat")).first.wait_for()
    page.locator(f"form:has(input[name=client_id][value='{first_client}']) button").click()
    page.wait_for_url(re.compile(r".*\?added=1$"))
    assert page.locator("#seats-left").inner_text() == "7"
    assert "(1 of 8)" in page.get_by_role("heading", name=re.compile("^Attendees")).inner_text()
    session.check_accessibility()
    session.screenshot("booking-group-seats")
    appointment_id = int(re.search(r"/appointments/(\d+)/", page.url).group(1))
    assert _appointment(live_server, appointment_id)["is_group"]
    assert page.get_by_role("link", name="Open the appointment").get_attribute("href") == \
        f"/appointments/{appointment_id}"


# --- administrators -------------------------------------------------------------------------------------


def test_an_administrator_sets_a_clinicians_working_hours(open_session: Any, live_server: LiveServer) -> None:
    with live_server.app.app_context():
        clinician = db.session.scalars(select(User).where(User.role == Role.CLINICIAN).order_by(User.id.desc())).first()
        assert clinician is not None
        clinician_id, site = clinician.id, sorted(clinician.sites, key=lambda s: (s.name, s.id))[0]
        site_id, site_name = site.id, site.name
        db.session.remove()
    session = open_session(ADMIN)
    page = session.page
    session.go(f"/admin/users/{clinician_id}/working-hours")
    assert page.get_by_role("heading", level=1).inner_text() == "Working hours"
    session.check_accessibility()

    def field(day: str, n: int, part: str) -> Any:
        return page.get_by_label(re.compile(rf"^{day} at {re.escape(site_name)}, hours {n} {part}"))

    field("Monday", 1, "start").fill("08:00")
    field("Monday", 1, "end").fill("12:00")
    field("Monday", 2, "start").fill("13:00")
    field("Monday", 2, "end").fill("16:30")
    field("Tuesday", 1, "start").fill("14:00")
    field("Tuesday", 1, "end").fill("10:00")
    page.get_by_role("button", name="Save working hours").click()
    page.wait_for_load_state()
    summary = page.get_by_role("alert")
    assert "There is a problem" in summary.inner_text()
    assert "Tuesday at" in summary.inner_text() and "Must be after start" in summary.inner_text()
    assert field("Tuesday", 1, "end").get_attribute("aria-invalid") == "true"
    assert field("Monday", 2, "end").input_value() == "16:30"
    session.check_accessibility()

    field("Tuesday", 1, "end").fill("18:00")
    field("Friday", 1, "start").fill("")
    field("Friday", 1, "end").fill("")
    page.get_by_role("button", name="Save working hours").click()
    page.wait_for_url(re.compile(r".*\?saved=1$"))
    assert "Working hours saved" in page.get_by_role("status").inner_text()
    assert field("Monday", 2, "start").input_value() == "13:00"
    assert field("Friday", 1, "start").input_value() == ""
    session.check_accessibility()
    session.screenshot("booking-working-hours")
    with live_server.app.app_context():
        from clinic.scheduling.models import WorkingHours

        rows = db.session.scalars(select(WorkingHours).where(WorkingHours.user_id == clinician_id,
                                                             WorkingHours.site_id == site_id)).all()
        week = sorted((r.weekday, f"{r.start_time:%H:%M}", f"{r.end_time:%H:%M}") for r in rows)
        db.session.remove()
    assert (0, "08:00", "12:00") in week and (0, "13:00", "16:30") in week and (1, "14:00", "18:00") in week
    assert not any(day == 4 for day, _s, _e in week)
