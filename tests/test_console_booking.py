"""The booking pages of the console: the availability finder, a clash named, series, group seats and
working hours, as an intake coordinator, a clinician and an administrator see them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.extensions import db
from tests.appointments_setup import ZONE, Practice, build_practice, register

NY = ZoneInfo(ZONE)


@pytest.fixture
def practice(client, make_site, make_user, bearer) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def monday_ahead(weeks: int = 1) -> date:
    today = datetime.now(NY).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 + 7 * weeks)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY)


def slot(clinician_id: int, starts: datetime) -> str:
    return f"{clinician_id}|{starts.astimezone(UTC).isoformat()}"


def finder_form(practice: Practice, day: date, **fields: Any) -> dict[str, Any]:
    """What the finder's booking form posts for Ada, an hour's assessment with the clinician."""
    return {
        "client_id": str(practice.ada["id"]),
        "site_id": str(practice.site.id),
        "kind": "intake_assessment",
        "clinician_id": str(practice.clinician.id),
        "date": day.isoformat(),
        "duration_minutes": "60",
        "repeat": "",
        "repeat_end": "count",
        "repeat_count": "",
        "repeat_until": "",
        "start_date": day.isoformat(),
        "start_time": "",
        **fields,
    }


def appointments(practice: Practice, **query: Any) -> list[dict[str, Any]]:
    response = practice.get("/appointments", **{"site_id": practice.site.id, "limit": 100, **query})
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def text_of(html: str) -> str:
    """The page's words, tags removed and white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- the finder ------------------------------------------------------------------------------------


def test_the_finder_shows_the_client_by_two_identifiers_and_the_free_times(practice, login, app):
    intake = login(practice.intake)
    monday = monday_ahead()
    response = intake.get(f"/appointments/new?client_id={practice.ada['id']}&kind=assessment&date={monday}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    words = text_of(html)
    assert "BROWN , Ada" in words or "BROWN, Ada" in words
    assert "Jan 1, 1980" in words and practice.ada["mrn"] in words
    assert re.search(r"<title>Book an appointment . clinic</title>", html)  # no client name in the title
    # Intake books assessments only: the one kind offered.
    assert re.findall(r'<option value="(\w+)"[^>]*>', html.split('id="kind"')[1].split("</select>")[0]) == [
        "intake_assessment"
    ]
    # The default week (Mon-Fri 09:00-17:00) of both clinicians, hour-long slots every half hour.
    assert f"Free times on {monday:%a}, {monday:%b} {monday.day}, {monday.year}" in words
    assert f'value="{slot(practice.clinician.id, local(monday, 9))}"' in html
    assert f'value="{slot(practice.clinician.id, local(monday, 16))}"' in html
    assert f'value="{slot(practice.clinician.id, local(monday, 16, 30))}"' not in html  # would end after 17:00
    assert "9:00 AM" in words and "4:00 PM" in words
    # The read of the client is audited as the API's is.
    with app.app_context():
        reads = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "client.read", AuditEvent.client_id == practice.ada["id"])).all()
    assert reads


def test_a_booked_time_is_not_offered_and_any_clinician_lists_each(practice, login):
    monday = monday_ahead()
    practice.booked_ok(client_id=practice.ben["id"], starts_at=local(monday, 10).isoformat())
    intake = login(practice.intake)
    html = intake.get(f"/appointments/new?client_id={practice.ada['id']}&kind=intake_assessment"
                      f"&date={monday}&clinician_id=").get_data(as_text=True)
    assert f'value="{slot(practice.clinician.id, local(monday, 10))}"' not in html
    assert f'value="{slot(practice.clinician.id, local(monday, 9, 30))}"' not in html  # would overlap it
    assert f'value="{slot(practice.clinician.id, local(monday, 11))}"' in html
    assert f'value="{slot(practice.colleague.id, local(monday, 10))}"' in html
    assert "Zelda Quartermaine" in html and "Colleague Clinician" in html


def test_a_day_without_free_time_points_to_the_next_one(practice, login):
    saturday = monday_ahead() + timedelta(days=5)
    intake = login(practice.intake)
    words = text_of(intake.get(f"/appointments/new?client_id={practice.ada['id']}&kind=assessment"
                               f"&date={saturday}").get_data(as_text=True))
    assert "No free 60-minute time" in words
    following_monday = saturday + timedelta(days=2)
    assert f"The next free time is on {following_monday:%a}, {following_monday:%b} {following_monday.day}" in words


def test_without_a_client_the_finder_searches_by_post_and_links_by_id(practice, login):
    intake = login(practice.intake)
    page = intake.get("/appointments/new?kind=assessment")
    assert page.status_code == 200
    assert 'action="/appointments/new/client-search"' in page.get_data(as_text=True)
    found = intake.post("/appointments/new/client-search", data={"q": "Brown", "kind": "intake_assessment"})
    assert found.status_code == 200
    html = found.get_data(as_text=True)
    assert "BROWN" in html and practice.ada["mrn"] in html
    assert f"/appointments/new?client_id={practice.ada['id']}" in html.replace("&amp;", "&")
    assert "Brown" not in re.sub(r"client_id=\d+", "", html.split("Clients found")[1].split("href=")[1][:120])
    empty = intake.post("/appointments/new/client-search", data={"q": ""})
    assert empty.status_code == 422
    assert "Enter a name, MRN or phone number." in empty.get_data(as_text=True)


# --- booking -----------------------------------------------------------------------------------------


def test_intake_books_a_slot_and_goes_to_the_appointment(practice, login):
    monday = monday_ahead()
    intake = login(practice.intake)
    response = intake.post("/appointments/new", data=finder_form(
        practice, monday, slot=slot(practice.clinician.id, local(monday, 11))))
    assert response.status_code == 303
    appointment_id = int(re.fullmatch(r"/appointments/(\d+)", response.headers["Location"]).group(1))
    booked = practice.get(f"/appointments/{appointment_id}").get_json()
    assert booked["kind"] == "intake_assessment"
    assert booked["client_id"] == practice.ada["id"]
    assert booked["clinician_id"] == practice.clinician.id
    assert datetime.fromisoformat(booked["starts_at"]) == local(monday, 11)
    assert booked["duration_minutes"] == 60
    assert booked["series_id"] is None


def test_a_clash_is_named_as_the_api_names_it_with_the_values_kept(practice, login):
    monday = monday_ahead()
    taken = practice.booked_ok(client_id=practice.ben["id"], starts_at=local(monday, 10).isoformat())
    clinician = login(practice.clinician)
    form = finder_form(practice, monday, kind="individual_therapy", duration_minutes="45",
                       slot=slot(practice.clinician.id, local(monday, 10, 15)))
    response = clinician.post("/appointments/new", data=form)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    words = text_of(html)
    assert "This time is taken" in words
    assert (f"Double booking: the clinician, Zelda Quartermaine, already has appointment {taken['id']} on "
            f"{monday:%b} {monday.day}, {monday.year} from 10:00 AM to 11:00 AM E") in words
    assert f"You chose {monday:%b} {monday.day}, {monday.year}, 10:15 AM E" in words
    assert f'href="/appointments/{taken["id"]}"' in html
    # What was chosen is kept: the kind, the length, the client, the clinician.
    assert '<option value="individual_therapy" selected>' in html
    assert 'name="duration_minutes" type="number" value="45"' in html
    assert f'name="client_id" value="{practice.ada["id"]}"' in html
    assert f'<option value="{practice.clinician.id}" selected>' in html
    # Nothing was booked for Ada.
    assert appointments(practice, client_id=practice.ada["id"]) == []


def test_the_client_double_booked_is_named_too(practice, login):
    monday = monday_ahead()
    practice.booked_ok(client_id=practice.ada["id"], clinician_id=practice.colleague.id,
                       starts_at=local(monday, 14).isoformat())
    intake = login(practice.intake)
    response = intake.post("/appointments/new", data=finder_form(
        practice, monday, slot=slot(practice.clinician.id, local(monday, 14))))
    assert response.status_code == 409
    assert "the client, BROWN, Ada, already has appointment" in text_of(response.get_data(as_text=True))


def test_a_time_entered_by_hand_is_booked_in_the_sites_zone(practice, login):
    monday = monday_ahead()
    clinician = login(practice.clinician)
    response = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="individual_therapy", action="book", start_time="18:30", duration_minutes="50"))
    assert response.status_code == 303, text_of(response.get_data(as_text=True))[:2000]
    booked = practice.get(response.headers["Location"]).get_json()
    assert datetime.fromisoformat(booked["starts_at"]) == local(monday, 18, 30)  # outside working hours: allowed


def test_a_time_entered_by_hand_that_clashes_or_is_missing_keeps_what_was_typed(practice, login):
    monday = monday_ahead()
    taken = practice.booked_ok(client_id=practice.ben["id"], starts_at=local(monday, 15).isoformat())
    clinician = login(practice.clinician)
    clash = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="individual_therapy", action="book", start_time="15:30"))
    assert clash.status_code == 409
    html = clash.get_data(as_text=True)
    assert f"appointment {taken['id']}" in text_of(html)
    assert 'name="start_time" type="time" value="15:30"' in html
    missing = clinician.post("/appointments/new", data=finder_form(practice, monday, action="book"))
    assert missing.status_code == 422
    html = missing.get_data(as_text=True)
    assert '<a href="#start_time">Time: Missing data for required field.</a>' in html
    assert 'id="start_time-error"' in html
    any_clinician = clinician.post("/appointments/new", data=finder_form(
        practice, monday, action="book", clinician_id="", start_time="10:00"))
    assert any_clinician.status_code == 422
    assert '<a href="#clinician_id">Clinician: Missing data for required field.</a>' in any_clinician.get_data(
        as_text=True)


def test_finding_free_times_again_keeps_the_choices_in_the_address_by_id(practice, login):
    monday = monday_ahead()
    intake = login(practice.intake)
    response = intake.post("/appointments/new", data=finder_form(practice, monday, action="find",
                                                                 repeat="weekly", repeat_count="6"))
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/appointments/new?")
    assert f"client_id={practice.ada['id']}" in location and "repeat=weekly" in location
    assert "csrf" not in location and "Brown" not in location
    assert "start_date" not in location  # no time was typed: the day chosen stands for it


# --- series ------------------------------------------------------------------------------------------


def test_a_clinician_books_a_weekly_series(practice, login):
    monday = monday_ahead()
    clinician = login(practice.clinician)
    response = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="individual_therapy", duration_minutes="50", repeat="weekly", repeat_count="4",
        slot=slot(practice.clinician.id, local(monday, 9))))
    assert response.status_code == 303
    first = practice.get(response.headers["Location"]).get_json()
    assert first["recurrence"] == "FREQ=WEEKLY;COUNT=4"
    series = appointments(practice, series_id=first["series_id"])
    assert [datetime.fromisoformat(a["starts_at"]) for a in series] == [
        local(monday + timedelta(weeks=n), 9) for n in range(4)
    ]


def test_a_series_until_a_date_and_a_series_without_an_end(practice, login):
    monday = monday_ahead()
    clinician = login(practice.clinician)
    until = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="individual_therapy", repeat="fortnightly", repeat_end="until",
        repeat_until=(monday + timedelta(weeks=4)).isoformat(), slot=slot(practice.clinician.id, local(monday, 13))))
    assert until.status_code == 303
    first = practice.get(until.headers["Location"]).get_json()
    assert len(appointments(practice, series_id=first["series_id"])) == 3
    endless = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="individual_therapy", repeat="weekly", slot=slot(practice.clinician.id,
                                                                                  local(monday, 15))))
    assert endless.status_code == 422
    html = endless.get_data(as_text=True)
    assert "Give exactly one of COUNT and UNTIL: a series must end." in html
    assert '<a href="#repeat">' in html
    assert 'value="weekly" checked' in html


def test_a_series_that_clashes_later_names_the_occurrence(practice, login):
    monday = monday_ahead()
    later = monday + timedelta(weeks=2)
    taken = practice.booked_ok(client_id=practice.ben["id"], starts_at=local(later, 9).isoformat())
    clinician = login(practice.clinician)
    response = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="individual_therapy", repeat="weekly", repeat_count="4",
        slot=slot(practice.clinician.id, local(monday, 9))))
    assert response.status_code == 409
    words = text_of(response.get_data(as_text=True))
    assert f"appointment {taken['id']}" in words
    assert f"It clashes with the occurrence on {later:%b} {later.day}, {later.year}, 9:00 AM E" in words
    assert appointments(practice, client_id=practice.ada["id"]) == []


# --- group sessions ------------------------------------------------------------------------------------


def test_a_group_session_with_seats_and_attendees(practice, login, make_site, bearer):
    monday = monday_ahead()
    clinician = login(practice.clinician)
    form = finder_form(practice, monday, kind="group_therapy", capacity="2", duration_minutes="90",
                       slot=slot(practice.clinician.id, local(monday, 13)))
    form.pop("client_id")
    created = clinician.post("/appointments/new", data=form)
    assert created.status_code == 303
    seats_url = created.headers["Location"]
    group_id = int(re.fullmatch(r"/appointments/(\d+)/attendees/new\?created=1", seats_url).group(1))
    page = clinician.get(seats_url)
    assert page.status_code == 200
    words = text_of(page.get_data(as_text=True))
    assert "The group session is booked" in words and "Seats left 2" in words
    assert f'href="/appointments/{group_id}"' in page.get_data(as_text=True)

    found = clinician.post(f"/appointments/{group_id}/attendees/new", data={"q": "Brown"})
    assert found.status_code == 200 and "Give a seat" in found.get_data(as_text=True)
    added = clinician.post(f"/appointments/{group_id}/attendees/new", data={"client_id": str(practice.ada["id"])})
    assert added.status_code == 303
    assert added.headers["Location"] == f"/appointments/{group_id}/attendees/new?added=1"
    words = text_of(clinician.get(added.headers["Location"]).get_data(as_text=True))
    assert "BROWN , Ada" in words and "Seats left 1" in words and "(1 of 2)" in words
    again = clinician.post(f"/appointments/{group_id}/attendees/new", data={"client_id": str(practice.ada["id"])})
    assert again.status_code == 409
    assert "The client is already registered for this session." in again.get_data(as_text=True)
    assert clinician.post(f"/appointments/{group_id}/attendees/new",
                          data={"client_id": str(practice.ben["id"])}).status_code == 303
    full = clinician.get(f"/appointments/{group_id}/attendees/new")
    assert "The session is full" in full.get_data(as_text=True)
    carol = register(practice.http, practice.headers, practice.site, first_name="Carol", last_name="Diaz",
                     date_of_birth="1990-02-03")
    refused = clinician.post(f"/appointments/{group_id}/attendees/new", data={"client_id": str(carol["id"])})
    assert refused.status_code == 409
    assert "The session is full (2 seats)." in refused.get_data(as_text=True)
    assert practice.get(f"/appointments/{group_id}").get_json()["client_ids"] == [practice.ada["id"],
                                                                                   practice.ben["id"]]


def test_a_group_session_needs_its_seats(practice, login):
    monday = monday_ahead()
    clinician = login(practice.clinician)
    response = clinician.post("/appointments/new", data=finder_form(
        practice, monday, kind="group_therapy", slot=slot(practice.clinician.id, local(monday, 13))))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<a href="#capacity">Seats: A group session needs its number of seats.</a>' in html
    assert 'id="capacity"' in html


def test_the_seats_page_of_an_individual_appointment_says_it_has_none(practice, login):
    booked = practice.booked_ok()
    clinician = login(practice.clinician)
    response = clinician.get(f"/appointments/{booked['id']}/attendees/new")
    assert response.status_code == 200
    assert "it has no seats" in response.get_data(as_text=True)


# --- working hours ----------------------------------------------------------------------------------------


def hours_field(practice: Practice, weekday: int, n: int, part: str) -> str:
    return f"h-{practice.site.id}-{weekday}-{n}-{part}"


def test_an_administrator_sets_a_clinicians_working_hours(practice, login, make_user):
    admin = login(make_user("admin"))
    url = f"/admin/users/{practice.clinician.id}/working-hours"
    page = admin.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "No hours have been set" in html
    assert f'id="{hours_field(practice, 0, 0, "start")}" name="{hours_field(practice, 0, 0, "start")}" value="09:00"' \
        in html
    form = {
        hours_field(practice, 0, 0, "start"): "08:00", hours_field(practice, 0, 0, "end"): "12:00",
        hours_field(practice, 0, 1, "start"): "13:00", hours_field(practice, 0, 1, "end"): "17:30",
        hours_field(practice, 2, 0, "start"): "10:00", hours_field(practice, 2, 0, "end"): "14:00",
        hours_field(practice, 3, 0, "start"): "", hours_field(practice, 3, 0, "end"): "",
        "timezone": "",
    }
    saved = admin.post(url, data=form)
    assert saved.status_code == 303 and saved.headers["Location"] == f"{url}?saved=1"
    week = practice.get(f"/users/{practice.clinician.id}/working-hours", headers=practice.admin_headers).get_json()
    assert week["is_default"] is False
    assert [(s["weekday"], s["start"], s["end"]) for s in week["weekly"]] == [
        (0, "08:00", "12:00"), (0, "13:00", "17:30"), (2, "10:00", "14:00")
    ]
    words = text_of(admin.get(f"{url}?saved=1").get_data(as_text=True))
    assert "Working hours saved" in words
    # The finder now offers those hours only.
    intake_html = login(practice.intake).get(
        f"/appointments/new?client_id={practice.ada['id']}&kind=assessment&date={monday_ahead()}"
        f"&clinician_id={practice.clinician.id}").get_data(as_text=True)
    assert f'value="{slot(practice.clinician.id, local(monday_ahead(), 8))}"' in intake_html
    assert f'value="{slot(practice.clinician.id, local(monday_ahead(), 11, 30))}"' not in intake_html
    assert f'value="{slot(practice.clinician.id, local(monday_ahead(), 16, 30))}"' in intake_html


def test_working_hours_errors_are_shown_beside_their_fields_with_the_values_kept(practice, login, make_user):
    admin = login(make_user("admin"))
    url = f"/admin/users/{practice.clinician.id}/working-hours"
    backwards = admin.post(url, data={
        hours_field(practice, 1, 0, "start"): "17:00", hours_field(practice, 1, 0, "end"): "09:00",
        hours_field(practice, 2, 0, "start"): "09:00", hours_field(practice, 2, 0, "end"): "13:00",
        hours_field(practice, 2, 1, "start"): "12:00", hours_field(practice, 2, 1, "end"): "15:00",
        hours_field(practice, 4, 0, "start"): "09:00",
    })
    assert backwards.status_code == 422
    html = backwards.get_data(as_text=True)
    end = hours_field(practice, 1, 0, "end")
    assert f'<a href="#{end}">Tuesday at {practice.site.name}, hours 1 ends: Must be after start' in html
    assert f'id="{end}-error"' in html and f'name="{end}" value="09:00" aria-invalid="true"' in html
    missing = hours_field(practice, 4, 0, "end")
    assert f'id="{missing}-error"' in html and "Missing data for required field." in html
    assert f'name="{hours_field(practice, 2, 1, "start")}" value="12:00"' in html
    # The overlap is the operation's own refusal, shown once the form is otherwise valid.
    overlap = admin.post(url, data={
        hours_field(practice, 2, 0, "start"): "09:00", hours_field(practice, 2, 0, "end"): "13:00",
        hours_field(practice, 2, 1, "start"): "12:00", hours_field(practice, 2, 1, "end"): "15:00",
    })
    assert overlap.status_code == 422
    assert f'id="{hours_field(practice, 2, 1, "start")}-error"' in overlap.get_data(as_text=True)
    assert "Overlaps another stretch of the same day." in overlap.get_data(as_text=True)
    empty = admin.post(url, data={"timezone": ""})
    assert empty.status_code == 422
    assert "Give at least one day&#39;s hours." in empty.get_data(as_text=True)
    week = practice.get(f"/users/{practice.clinician.id}/working-hours", headers=practice.admin_headers).get_json()
    assert week["is_default"] is True


def test_only_clinicians_have_working_hours(practice, login, make_user):
    admin = login(make_user("admin"))
    response = admin.get(f"/admin/users/{practice.intake.id}/working-hours")
    assert response.status_code == 200
    assert "Only clinicians have working hours." in response.get_data(as_text=True)
    assert admin.get("/admin/users/999999/working-hours").status_code == 404


# --- who may do what ----------------------------------------------------------------------------------


def test_permissions(practice, login, make_user):
    url = f"/admin/users/{practice.clinician.id}/working-hours"
    intake = login(practice.intake)
    assert intake.get(url).status_code == 403
    assert intake.post(url, data={}).status_code == 403
    assert login(practice.colleague).get(url).status_code == 403
    # As over the API: the clinician may see and set their own hours.
    assert login(practice.clinician).get(url).status_code == 200
    admin = login(make_user("admin"))
    assert admin.get(url).status_code == 200
    # Administrators do not book appointments (nor see clients).
    assert admin.get("/appointments/new").status_code == 403
    # Intake may not book other kinds: the finder offers assessments only.
    html = intake.get(f"/appointments/new?client_id={practice.ada['id']}&kind=individual_therapy").get_data(
        as_text=True)
    assert '<option value="intake_assessment" selected>' in html and "individual_therapy" not in html
    # A client of another site is the 404 page.
    outsider = login(practice.outsider)
    response = outsider.get(f"/appointments/new?client_id={practice.ada['id']}")
    assert response.status_code == 404 and "text/html" in response.content_type
    # Signed out: the sign-in page.
    signed_out = practice.http.application.test_client().get("/appointments/new")
    assert signed_out.status_code == 303 and "/login?next=" in signed_out.headers["Location"]


# --- ids out of scope or not numbers, junk, CSRF --------------------------------------------------


def test_another_sites_client_site_or_clinician_in_the_finder_is_the_not_found_page(practice, login):
    clinician = login(practice.clinician)
    theirs = practice.outsider.sites[0]
    stranger = register(practice.http, practice.outsider_headers, theirs, first_name="Fay", last_name="Faraway",
                        date_of_birth="1990-02-02")
    for query in (f"client_id={stranger['id']}", f"site_id={theirs.id}", f"clinician_id={practice.outsider.id}",
                  "client_id=\u00b2", "site_id=\u00b2", "clinician_id=\u00b2", f"client_id={'9' * 5000}"):
        response = clinician.get(f"/appointments/new?{query}")
        assert response.status_code == 404, query
        assert "Faraway" not in response.get_data(as_text=True)


def test_booking_with_another_sites_clinician_or_client_is_the_not_found_page_and_books_nothing(practice, login, app):
    clinician = login(practice.clinician)
    monday = monday_ahead()
    stranger = register(practice.http, practice.outsider_headers, practice.outsider.sites[0], first_name="Fay",
                        last_name="Faraway", date_of_birth="1990-02-02")
    posts = [
        finder_form(practice, monday, slot=slot(practice.outsider.id, local(monday, 10))),
        finder_form(practice, monday, slot=slot(practice.clinician.id, local(monday, 10)), client_id=str(stranger["id"])),
        finder_form(practice, monday, action="book", start_time="10:00", site_id=str(practice.outsider.sites[0].id),
                    client_id=""),
        finder_form(practice, monday, slot=f"\u00b2|{local(monday, 10).isoformat()}"),
    ]
    for form in posts:
        response = clinician.post("/appointments/new", data=form)
        assert response.status_code == 404
        assert "Page not found" in response.get_data(as_text=True)
    assert appointments(practice) == []
    with app.app_context():
        denied = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "access.denied", AuditEvent.client_id == stranger["id"])).all()
        assert denied  # the attempt on the other site's client is in the audit trail


def test_a_seat_for_another_sites_client_is_the_not_found_page(practice, login, app):
    group = practice.booked_ok(kind="group_therapy", client_id=None, client_ids=[practice.ada["id"]], capacity=4,
                               starts_at=local(monday_ahead(), 13))
    stranger = register(practice.http, practice.outsider_headers, practice.outsider.sites[0], first_name="Fay",
                        last_name="Faraway", date_of_birth="1990-02-02")
    clinician = login(practice.clinician)
    for client_id in (str(stranger["id"]), "\u00b2", "9" * 5000, "abc"):
        response = clinician.post(f"/appointments/{group['id']}/attendees/new", data={"client_id": client_id})
        assert response.status_code == 404, client_id
        assert "Faraway" not in response.get_data(as_text=True)
    assert practice.get(f"/appointments/{group['id']}").get_json()["client_ids"] == [practice.ada["id"]]


@pytest.mark.parametrize("junk", ["\u00b2", "9" * 5000, "-5", "sixty", "x" * 100_000],
                         ids=["superscript", "huge", "negative", "text", "long"])
def test_a_length_that_is_not_a_number_is_said_beside_the_field(practice, login, junk):
    clinician = login(practice.clinician)
    monday = monday_ahead()
    shown = clinician.get("/appointments/new", query_string={
        "client_id": practice.ada["id"], "date": monday.isoformat(), "duration_minutes": junk})
    assert shown.status_code == 422
    assert 'id="duration_minutes-error"' in shown.get_data(as_text=True)
    booked = clinician.post("/appointments/new", data=finder_form(
        practice, monday, duration_minutes=junk, slot=slot(practice.clinician.id, local(monday, 10))))
    assert booked.status_code == 422
    assert 'id="duration_minutes-error"' in booked.get_data(as_text=True)
    assert appointments(practice) == []


def test_a_time_zone_that_is_no_zone_is_said_beside_the_field(practice, login, make_user):
    admin = login(make_user("admin"))
    url = f"/admin/users/{practice.clinician.id}/working-hours"
    for zone in ("Mars/Olympus", "9" * 5000, "../../etc/passwd"):
        response = admin.post(url, data={"timezone": zone, hours_field(practice, 0, 0, "start"): "09:00",
                                         hours_field(practice, 0, 0, "end"): "17:00"})
        assert response.status_code == 422, zone[:20]
        assert 'id="timezone-error"' in response.get_data(as_text=True)


def test_a_booking_without_the_csrf_token_is_refused_and_books_nothing(practice, login):
    clinician = login(practice.clinician)
    monday = monday_ahead()
    response = clinician.client.post("/appointments/new", data=finder_form(
        practice, monday, slot=slot(practice.clinician.id, local(monday, 10))))
    assert response.status_code == 403 and "text/html" in response.content_type
    assert appointments(practice) == []
