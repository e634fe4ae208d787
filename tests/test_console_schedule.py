"""The schedule and an appointment's page in the console: day and week views, filters, each status
change through its form, refusals shown on the page, scope and the audit trail, as the API does them."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.core.time import from_local
from clinic.extensions import db
from clinic.scheduling.models import Appointment, AppointmentAttendee, AppointmentStatus
from clinic.scheduling.pages import describe_rule
from tests.appointments_setup import ZONE, Practice, at, build_practice

NY = ZoneInfo(ZONE)
DASH = "\u2013"  # the en dash between two times
HTMX = {"HX-Request": "true"}


@pytest.fixture
def practice(client: Any, make_site: Any, make_user: Any, bearer: Any) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


@pytest.fixture
def console(login: Any, practice: Practice) -> Any:
    """The practice's clinician, signed in to the console (a cookie session)."""
    return login(practice.clinician)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in New York (the practice's site), as a UTC instant."""
    return from_local(datetime.combine(day, time(hour, minute)), ZONE)


def ny_today() -> date:
    return datetime.now(NY).date()


def a_future_monday() -> date:
    day = ny_today() + timedelta(days=14)
    return day - timedelta(days=day.weekday())


def status_of(app: Any, appointment_id: int) -> Appointment:
    with app.app_context():
        row = db.session.get(Appointment, appointment_id)
        assert row is not None
        db.session.expunge(row)
        return row


def events(app: Any, action: str, resource_id: int | None = None) -> list[AuditEvent]:
    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        if resource_id is not None:
            stmt = stmt.where(AuditEvent.resource_id == str(resource_id))
        rows = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return rows


def field_error(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"><span class="visually-hidden">Error:</span> ([^<]*)</p>', html)
    assert found, f"no error beside {field}"
    return found.group(1).strip()


def text_of(html: str) -> str:
    """The page's words, tags dropped and spaces squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- the schedule ---------------------------------------------------------------------------------


def test_the_day_view_shows_the_signed_in_clinicians_appointments_of_the_day(practice: Practice, console: Any) -> None:
    day = a_future_monday() + timedelta(days=2)
    mine = practice.booked_ok(starts_at=local(day, 10), duration_minutes=50, location="Room 4")
    theirs = practice.booked_ok(starts_at=local(day, 11), client_id=practice.ben["id"],
                                clinician_id=practice.colleague.id, kind="intake_assessment")
    practice.booked_ok(starts_at=local(day + timedelta(days=1), 10))  # another day

    response = console.get(f"/schedule?date={day.isoformat()}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    words = text_of(html)
    assert "<h1>Schedule</h1>" in html
    assert day.strftime("%a, %b %-d, %Y") in words
    assert f'href="/appointments/{mine["id"]}"' in html
    assert '<span class="family">Brown</span>, Ada' in html  # FAMILY (capitals by the stylesheet), Given
    assert f"10:00 AM{DASH}10:50 AM E" in words and "Individual therapy" in words and "Room 4" in words
    assert '<span class="tag tag--grey">Scheduled</span>' in html
    # Only the signed-in clinician's by default; the other clinician's and the other day's are not shown.
    assert f'href="/appointments/{theirs["id"]}"' not in html
    assert len(re.findall(r'href="/appointments/\d+"', html)) == 1
    assert '<option value="' + str(practice.clinician.id) + '" selected>' in html

    everyone = console.get(f"/schedule?date={day.isoformat()}&clinician_id=all").get_data(as_text=True)
    assert f'href="/appointments/{theirs["id"]}"' in everyone
    assert "Colleague Clinician" in everyone and "Intake assessment" in everyone
    assert '<th scope="col">Clinician</th>' in everyone
    colleague = console.get(f"/schedule?date={day.isoformat()}&clinician_id={practice.colleague.id}")
    assert f'href="/appointments/{mine["id"]}"' not in colleague.get_data(as_text=True)


def test_the_schedule_opens_on_today_at_the_users_site_and_says_when_it_is_empty(
    practice: Practice, console: Any
) -> None:
    html = console.get("/schedule").get_data(as_text=True)
    words = text_of(html)
    assert ny_today().strftime("%a, %b %-d, %Y") in words and "(today)" in words
    assert practice.site.name in words and ZONE in words
    assert "No appointments on this day for this clinician." in words
    assert 'href="/appointments/new"' in html
    # Previous and next day, and today.
    yesterday = (ny_today() - timedelta(days=1)).isoformat()
    tomorrow = (ny_today() + timedelta(days=1)).isoformat()
    assert f"date={yesterday}" in html and f"date={tomorrow}" in html
    assert "Previous day" in words and "Next day" in words


def test_the_week_view_puts_each_appointment_under_its_day(practice: Practice, console: Any) -> None:
    monday = a_future_monday()
    first = practice.booked_ok(starts_at=local(monday, 9, 30))
    later = practice.booked_ok(starts_at=local(monday + timedelta(days=3), 14), client_id=practice.ben["id"],
                               kind="medication_visit", duration_minutes=20)
    next_week = practice.booked_ok(starts_at=local(monday + timedelta(days=7), 9))

    response = console.get(f"/schedule?date={(monday + timedelta(days=2)).isoformat()}&view=week")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    days = re.findall(r'<section class="week__day[^"]*" aria-labelledby="day-([\d-]+)">(.*?)</section>', html, re.S)
    assert [d for d, _ in days] == [(monday + timedelta(days=n)).isoformat() for n in range(7)]
    content = dict(days)
    assert f'/appointments/{first["id"]}"' in content[monday.isoformat()]
    assert "9:30 AM" in content[monday.isoformat()]
    thursday = content[(monday + timedelta(days=3)).isoformat()]
    assert f'/appointments/{later["id"]}"' in thursday and "Medication visit" in thursday
    assert "Okafor" in thursday
    assert f'/appointments/{next_week["id"]}"' not in html
    assert "No appointments" in content[(monday + timedelta(days=1)).isoformat()]
    words = text_of(html)
    assert "Previous week" in words and "Next week" in words
    assert f"date={(monday + timedelta(days=9)).isoformat()}" in html  # a week on from the date shown
    assert 'aria-current="page">Week</a>' in html


def test_filters_that_cannot_be_read_are_named_beside_their_field(practice: Practice, console: Any) -> None:
    response = console.get("/schedule?date=2026-02-30&view=month")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert field_error(html, "date") == "Enter a real date, for example 2026-03-04."
    assert "There is a problem" in html
    far = console.get("/schedule?date=9999-12-31&view=week")
    assert far.status_code == 422
    assert field_error(far.get_data(as_text=True), "date") == "Enter a date from 2000 to 2999."


def test_an_intake_coordinator_sees_the_whole_site_and_no_actions_on_therapy(
    practice: Practice, login: Any
) -> None:
    booked = practice.booked_ok(starts_at=at(days=2))
    intake = login(practice.intake)
    day = datetime.fromisoformat(booked["starts_at"]).astimezone(NY).date()
    html = intake.get(f"/schedule?date={day.isoformat()}").get_data(as_text=True)
    assert f'href="/appointments/{booked["id"]}"' in html  # all clinicians: intake is no clinician
    page = intake.get(f"/appointments/{booked['id']}").get_data(as_text=True)
    assert "Brown" in page and "Cancel appointment" not in page and "Record confirmation" not in page


def test_the_schedule_reads_appointments_as_the_api_lists_them(app: Any, practice: Practice, console: Any) -> None:
    day = a_future_monday()
    booked = practice.booked_ok(starts_at=local(day, 10))
    before = len(events(app, "appointment.read", booked["id"]))
    console.get(f"/schedule?date={day.isoformat()}")
    console_reads = events(app, "appointment.read", booked["id"])[before:]
    practice.get("/appointments", **{"from": local(day, 0).isoformat(), "to": local(day, 23).isoformat()})
    api_reads = events(app, "appointment.read", booked["id"])[before + len(console_reads):]
    shape = [(e.client_id, e.details, e.user_id) for e in console_reads]
    assert shape == [(practice.ada["id"], {"via": "list"}, practice.clinician.id)]
    assert shape == [(e.client_id, e.details, e.user_id) for e in api_reads]


# --- one appointment -----------------------------------------------------------------------------


def test_the_appointment_page_shows_two_identifiers_the_time_and_its_reminders(
    app: Any, practice: Practice, console: Any
) -> None:
    day = a_future_monday()
    booked = practice.booked_ok(starts_at=local(day, 15, 30), duration_minutes=45, location="Room 2")
    response = console.get(f"/appointments/{booked['id']}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    words = text_of(html)
    assert f"<title>Appointment {DASH} clinic</title>" in html  # no client name in the title
    assert '<span class="family">Brown</span>, Ada' in html
    assert "Jan 1, 1980" in words and "MRN" in words
    # The client banner every client page has: its site and episode too, and the client's pages.
    assert 'class="banner"' in html and "Site" in words and "Episode" in words
    assert f'href="/clients/{practice.ada["id"]}"' in html
    assert f"{day.strftime('%a, %b %-d, %Y')}, 3:30 PM {DASH} 4:15 PM E" in words
    assert "Zelda Quartermaine" in words and "Room 2" in words and "45 minutes" in words
    assert "Record confirmation" in words and "Cancel this appointment" in words
    assert "Check in: Check-in opens an hour before the start" in words  # why not yet, in the operation's words
    # The reminders notify planned (SMS and email, two days and two hours before), as the API lists them.
    section = html[html.index('id="reminders-title"'):]
    assert section.count("<tr>") == 1 + 4
    assert "SMS" in section and "Email" in section and "Pending" in section
    api = practice.reminders(booked["id"])
    assert len(api) == 4
    # Read as the API reads it: the appointment, then its reminders.
    assert [e.client_id for e in events(app, "appointment.read", booked["id"])][-1] == practice.ada["id"]
    assert len(events(app, "reminder.read", booked["id"])) == 2  # the page's and the API's


def test_confirm_check_in_and_complete_through_their_forms(app: Any, practice: Practice, console: Any) -> None:
    soon = practice.booked_ok(starts_at=at(minutes=30), duration_minutes=30)
    url = f"/appointments/{soon['id']}"
    confirmed = console.post(f"{url}/confirm", data={"csrf_token": console.csrf_token})
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == f"{url}?done=confirmed"
    assert status_of(app, soon["id"]).status is AppointmentStatus.CONFIRMED
    page = console.get(confirmed.headers["Location"]).get_data(as_text=True)
    assert "The client&#39;s confirmation is recorded." in page and "tag--blue\">Confirmed" in page
    assert "Record confirmation" not in page and ">Check in</button>" in page

    checked = console.post(f"{url}/check-in", data={"csrf_token": console.csrf_token})
    assert checked.status_code == 303
    assert status_of(app, soon["id"]).status is AppointmentStatus.CHECKED_IN
    page = console.get(f"{url}?done=checked_in").get_data(as_text=True)
    assert ">Complete</button>" in page and ">Check in</button>" not in page

    completed = console.post(f"{url}/complete", data={"csrf_token": console.csrf_token}, headers=HTMX)
    assert completed.status_code == 303  # htmx follows it and swaps the page's main part
    row = status_of(app, soon["id"])
    assert row.status is AppointmentStatus.COMPLETED and row.late_entry_at is None
    assert [e.action for e in events(app, "appointment.completed", soon["id"])] == ["appointment.completed"]


def test_a_no_show_once_the_appointment_has_begun(app: Any, practice: Practice, console: Any) -> None:
    begun = practice.booked_ok(starts_at=at(minutes=-10), duration_minutes=60)
    page = console.get(f"/appointments/{begun['id']}").get_data(as_text=True)
    assert "Record no-show" in page and 'hx-confirm="Record that the client did not come?' in page
    response = console.post(f"/appointments/{begun['id']}/no-show", data={"csrf_token": console.csrf_token})
    assert response.status_code == 303
    assert status_of(app, begun["id"]).status is AppointmentStatus.NO_SHOW


def test_cancel_by_the_client_with_a_reason(app: Any, practice: Practice, console: Any) -> None:
    booked = practice.booked_ok(starts_at=at(days=4))
    response = console.post(f"/appointments/{booked['id']}/cancel", data={
        "csrf_token": console.csrf_token, "_form": "cancel", "by": "client", "reason": "moving house",
    })
    assert response.status_code == 303
    row = status_of(app, booked["id"])
    assert (row.status, row.cancel_reason) == (AppointmentStatus.CANCELLED_BY_CLIENT, "moving house")
    assert all(r["status"] == "cancelled" for r in practice.reminders(booked["id"]))
    page = console.get(f"/appointments/{booked['id']}?done=cancelled").get_data(as_text=True)
    assert "The appointment is cancelled." in page and "Cancelled by client" in page
    assert "moving house" in page and "Cancel this appointment" not in page


def test_a_cancellation_without_who_cancelled_keeps_what_was_typed(practice: Practice, console: Any) -> None:
    booked = practice.booked_ok(starts_at=at(days=4))
    response = console.post(f"/appointments/{booked['id']}/cancel", data={
        "csrf_token": console.csrf_token, "_form": "cancel", "reason": "called to say so",
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert field_error(html, "by") == "Missing data for required field."
    assert "called to say so</textarea>" in html
    assert '<details class="disclosure" open>' in html


def test_a_forgotten_appointment_is_documented_late_with_its_reason(
    app: Any, practice: Practice, console: Any
) -> None:
    ended = practice.booked_ok(starts_at=at(hours=-3))
    url = f"/appointments/{ended['id']}"
    page = console.get(url).get_data(as_text=True)
    assert "Record what happened" in page and "Why is this recorded only now?" in page
    assert "Record as completed" in page and "Record as no-show" in page
    assert "Record confirmation" not in page

    refused = console.post(f"{url}/complete", data={"csrf_token": console.csrf_token, "_form": "late"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert field_error(html, "late_entry_reason").startswith("The appointment has ended: say why")
    assert status_of(app, ended["id"]).status is AppointmentStatus.SCHEDULED

    done = console.post(f"{url}/complete", data={
        "csrf_token": console.csrf_token, "_form": "late", "late_entry_reason": "check-in was forgotten",
    })
    assert done.status_code == 303
    row = status_of(app, ended["id"])
    assert (row.status, row.late_entry_reason, row.late_entry_by_id) == (
        AppointmentStatus.COMPLETED, "check-in was forgotten", practice.clinician.id)
    shown = text_of(console.get(f"{url}?done=completed").get_data(as_text=True))
    assert "Recorded late" in shown and "Reason: check-in was forgotten" in shown
    assert (events(app, "appointment.completed", ended["id"])[-1].details or {}).get("late_entry") is True


def test_a_late_cancellation_by_the_clinic_from_the_late_form(app: Any, practice: Practice, console: Any) -> None:
    ended = practice.booked_ok(starts_at=at(hours=-5))
    response = console.post(f"/appointments/{ended['id']}/cancel", data={
        "csrf_token": console.csrf_token, "_form": "late", "by": "clinic", "late_entry_reason": "room flooded",
    })
    assert response.status_code == 303
    row = status_of(app, ended["id"])
    assert (row.status, row.late_entry_reason) == (AppointmentStatus.CANCELLED_BY_CLINIC, "room flooded")


def test_a_refused_status_change_is_a_message_on_the_page_not_an_error_page(
    app: Any, practice: Practice, console: Any
) -> None:
    ahead = practice.booked_ok(starts_at=at(days=3))
    response = console.post(f"/appointments/{ahead['id']}/check-in", data={"csrf_token": console.csrf_token})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Check-in opens an hour before the start and closes at the end." in html
    assert "<h1>Individual therapy" in html and "There is a problem" in html
    assert status_of(app, ahead["id"]).status is AppointmentStatus.SCHEDULED
    # The page shown with the refusal is a read of the appointment, kept through the rollback.
    assert events(app, "appointment.read", ahead["id"])[-1].client_id == practice.ada["id"]

    # A stale page: the appointment was completed elsewhere; htmx gets the page to swap (200).
    done = practice.booked_ok(starts_at=at(minutes=-5), duration_minutes=30)
    assert practice.post(f"/appointments/{done['id']}/check-in").status_code == 200
    assert practice.post(f"/appointments/{done['id']}/complete").status_code == 200
    stale = console.post(f"/appointments/{done['id']}/check-in", data={"csrf_token": console.csrf_token},
                         headers=HTMX)
    assert stale.status_code == 200
    assert "A completed appointment cannot become checked_in." in stale.get_data(as_text=True)


def test_change_the_time_of_this_and_the_following_occurrences_of_a_series(
    app: Any, practice: Practice, console: Any
) -> None:
    monday = a_future_monday()
    first = practice.booked_ok(starts_at=local(monday, 9), recurrence="FREQ=WEEKLY;COUNT=4")
    with app.app_context():
        series = db.session.scalars(
            select(Appointment).where(Appointment.series_id == first["series_id"]).order_by(Appointment.starts_at)
        ).all()
        ids = [a.id for a in series]
    page = console.get(f"/appointments/{ids[1]}").get_data(as_text=True)
    assert "Weekly, 4 times" in page
    assert page.count('name="scope"') == 6  # cancel and change: this, following, all
    response = console.post(f"/appointments/{ids[1]}/change", data={
        "csrf_token": console.csrf_token, "_form": "change", "starts_date": (monday + timedelta(days=7)).isoformat(),
        "starts_time": "10:30", "duration_minutes": "60", "clinician_id": str(practice.clinician.id),
        "location": "", "scope": "following",
    })
    assert response.status_code == 303, response.get_data(as_text=True)
    starts = [to_ny(status_of(app, i).starts_at) for i in ids]
    assert [s.strftime("%H:%M") for s in starts] == ["09:00", "10:30", "10:30", "10:30"]


def to_ny(value: datetime) -> datetime:
    return value.astimezone(NY)


def test_a_change_with_nothing_changed_or_a_clash_is_said_on_the_page(practice: Practice, console: Any) -> None:
    day = a_future_monday()
    booked = practice.booked_ok(starts_at=local(day, 9))
    practice.booked_ok(starts_at=local(day, 11), client_id=practice.ben["id"])
    base = {"csrf_token": console.csrf_token, "_form": "change", "starts_date": day.isoformat(),
            "starts_time": "09:00", "duration_minutes": "60", "clinician_id": str(practice.clinician.id),
            "location": ""}
    same = console.post(f"/appointments/{booked['id']}/change", data=base)
    assert same.status_code == 409 and "Nothing was changed" in same.get_data(as_text=True)
    clash = console.post(f"/appointments/{booked['id']}/change", data={**base, "starts_time": "11:15"})
    assert clash.status_code == 409
    html = clash.get_data(as_text=True)
    assert 'value="11:15"' in html  # what was typed is kept
    assert '<details class="disclosure" open>' in html
    bad = console.post(f"/appointments/{booked['id']}/change", data={**base, "duration_minutes": "2"})
    assert bad.status_code == 422
    assert field_error(bad.get_data(as_text=True), "duration_minutes").startswith("Must be greater than or equal to 5")


def test_cancel_all_of_a_series(app: Any, practice: Practice, console: Any) -> None:
    monday = a_future_monday()
    first = practice.booked_ok(starts_at=local(monday, 9), recurrence="FREQ=WEEKLY;COUNT=3")
    response = console.post(f"/appointments/{first['id']}/cancel", data={
        "csrf_token": console.csrf_token, "_form": "cancel", "by": "clinic", "scope": "all",
    })
    assert response.status_code == 303
    with app.app_context():
        statuses = db.session.scalars(select(Appointment.status).where(Appointment.series_id == first["series_id"]))
        assert set(statuses) == {AppointmentStatus.CANCELLED_BY_CLINIC}


def test_group_attendance_per_attendee(app: Any, practice: Practice, console: Any) -> None:
    group = practice.booked_ok(kind="group_therapy", client_id=None, capacity=6, starts_at=at(minutes=-20),
                               client_ids=[practice.ada["id"], practice.ben["id"]])
    page = console.get(f"/appointments/{group['id']}").get_data(as_text=True)
    words = text_of(page)
    assert "<h1>Group therapy</h1>" in page and "2 of 6 taken" in words
    assert "Brown" in page and "Okafor" in page and "Jun 30, 1975" in words
    assert 'aria-label="Ben Okafor did not come"' in page
    assert len(events(app, "appointment.attendees.read", group["id"])) == 2  # one per seated client, as the API
    response = console.post(f"/appointments/{group['id']}/attendees/{practice.ben['id']}/attendance",
                            data={"csrf_token": console.csrf_token, "status": "no_show"})
    assert response.status_code == 303
    with app.app_context():
        seats = {a.client_id: a.status.value for a in db.session.scalars(
            select(AppointmentAttendee).where(AppointmentAttendee.appointment_id == group["id"]))}
    assert seats == {practice.ada["id"]: "registered", practice.ben["id"]: "no_show"}


def test_an_appointment_of_another_site_is_not_found(practice: Practice, login: Any) -> None:
    booked = practice.booked_ok(starts_at=at(days=2))
    outsider = login(practice.outsider)
    response = outsider.get(f"/appointments/{booked['id']}")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
    assert "Brown" not in response.get_data(as_text=True)
    posted = outsider.post(f"/appointments/{booked['id']}/confirm", data={"csrf_token": outsider.csrf_token})
    assert posted.status_code == 404
    listed = outsider.get(f"/schedule?date={datetime.fromisoformat(booked['starts_at']).date()}&clinician_id=all")
    assert f"/appointments/{booked['id']}" not in listed.get_data(as_text=True)


def test_signed_out_the_schedule_asks_to_sign_in(client: Any) -> None:
    response = client.get("/schedule?date=2026-03-04")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(("rule", "words"), [
    ("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=8", "Weekly on Monday and Wednesday, 8 times"),
    ("FREQ=WEEKLY;INTERVAL=2;UNTIL=20260630", "Every 2 weeks, until Jun 30, 2026"),
    ("FREQ=DAILY;COUNT=5", "Daily, 5 times"),
    ("FREQ=YEARLY;COUNT=2", "FREQ=YEARLY;COUNT=2"),
])
def test_a_series_rule_is_said_in_words(rule: str, words: str) -> None:
    assert describe_rule(rule) == words


# --- ids out of scope or not numbers, CSRF, and the names a page shows -------------------------


def test_another_sites_schedule_or_clinician_is_the_not_found_page(
    practice: Practice, console: Any, make_site: Any, make_user: Any, login: Any
) -> None:
    day = a_future_monday()
    booked = practice.booked_ok(starts_at=local(day, 10))
    theirs = practice.outsider.sites[0]
    for query in (f"site_id={theirs.id}", f"clinician_id={practice.outsider.id}", "site_id=\u00b2",
                  "clinician_id=\u00b2", f"site_id={'9' * 5000}", "clinician_id=-1"):
        response = console.get(f"/schedule?date={day.isoformat()}&{query}")
        assert response.status_code == 404, query
        assert "Page not found" in response.get_data(as_text=True)
    # A colleague of another of the user's own sites (the site was just changed): the whole site.
    second = make_site(timezone=ZONE)
    elsewhere = make_user("clinician", sites=[second], name="Second Site Clinician")
    both = login(make_user("clinician", sites=[practice.site, second]))
    changed = both.get(f"/schedule?date={day.isoformat()}&site_id={practice.site.id}&clinician_id={elsewhere.id}")
    assert changed.status_code == 200
    assert f'href="/appointments/{booked["id"]}"' in changed.get_data(as_text=True)


def test_moving_an_appointment_to_another_sites_clinician_is_the_not_found_page(
    app: Any, practice: Practice, console: Any
) -> None:
    day = a_future_monday()
    booked = practice.booked_ok(starts_at=local(day, 9))
    base = {"csrf_token": console.csrf_token, "_form": "change", "starts_date": day.isoformat(),
            "starts_time": "09:00", "duration_minutes": "60", "clinician_id": str(practice.clinician.id),
            "location": ""}
    for clinician in (str(practice.outsider.id), "\u00b2", "9" * 5000):
        moved = console.post(f"/appointments/{booked['id']}/change", data={**base, "clinician_id": clinician})
        assert moved.status_code == 404
    assert status_of(app, booked["id"]).clinician_id == practice.clinician.id
    for length in ("\u00b2", "9" * 5000, "sixty"):
        typed = console.post(f"/appointments/{booked['id']}/change", data={**base, "duration_minutes": length})
        assert typed.status_code == 422, length
        assert field_error(typed.get_data(as_text=True), "duration_minutes")
    assert status_of(app, booked["id"]).duration_minutes == 60


def test_an_appointment_form_without_the_csrf_token_is_refused_and_changes_nothing(
    app: Any, practice: Practice, console: Any
) -> None:
    booked = practice.booked_ok(starts_at=at(days=2))
    response = console.client.post(f"/appointments/{booked['id']}/cancel", data={"_form": "cancel", "by": "client"})
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert status_of(app, booked["id"]).status is AppointmentStatus.SCHEDULED


def test_a_seat_given_up_is_still_named_and_that_read_is_audited(app: Any, practice: Practice, console: Any) -> None:
    group = practice.booked_ok(kind="group_therapy", client_id=None, capacity=6, starts_at=at(days=2),
                               client_ids=[practice.ada["id"], practice.ben["id"]])
    left = practice.post(f"/appointments/{group['id']}/attendees/{practice.ben['id']}/cancel", {"by": "client"})
    assert left.status_code == 200, left.get_json()
    page = console.get(f"/appointments/{group['id']}").get_data(as_text=True)
    assert "Okafor" in page
    with app.app_context():
        reads = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "client.read", AuditEvent.client_id == practice.ben["id"])).all()
        assert [event.details for event in reads] == [{"via": "attendees"}]
