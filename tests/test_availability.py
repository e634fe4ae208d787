"""Booking without knowing ids: the directory, clinicians' working hours, free slots, and times
written as a site's local wall-clock time (daylight-saving gaps and repeats included)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site
from clinic.extensions import db
from tests.appointments_setup import ZONE, Practice, at, build_practice, register

NY = ZoneInfo(ZONE)
# New York's clocks go forward at 02:00 on 2027-03-14 (02:00-02:59 does not exist) and back at
# 02:00 on 2027-11-07 (01:00-01:59 happens twice).
SPRING_FORWARD = date(2027, 3, 14)
FALL_BACK = date(2027, 11, 7)


@pytest.fixture
def practice(client, make_site, make_user, bearer) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def monday_ahead(weeks: int = 1) -> date:
    """A Monday at least a few days from now."""
    today = datetime.now(NY).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 + 7 * weeks)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY)


def slots(practice: Practice, headers: dict[str, str] | None = None, **query: object) -> list[tuple[int, datetime]]:
    response = practice.get("/availability", headers=headers, **{"site_id": practice.site.id, **query})
    assert response.status_code == 200, response.get_json()
    return [(s["clinician_id"], datetime.fromisoformat(s["starts_at"])) for s in response.get_json()["slots"]]


def audit_actions(app, **where: object) -> list[tuple[str, str, int | None]]:
    with app.app_context():
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        for column, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, column) == value)
        return [(e.action, e.outcome.value, e.client_id) for e in db.session.scalars(stmt)]


# --- the directory -------------------------------------------------------------------------------


def test_the_directory_lists_the_callers_sites_and_their_clinicians_without_emails(practice, make_site, make_user,
                                                                                   bearer):
    elsewhere = make_site(name="Uptown Clinic")
    both = make_user("clinician", sites=[practice.site, elsewhere], name="Ana Both", is_supervisor=True)
    make_user("clinician", sites=[elsewhere], name="Only Uptown")
    gone = make_user("clinician", sites=[practice.site], name="Gone Away")
    disabled = practice.http.patch(f"/api/v1/users/{gone.id}", headers=bearer(make_user("admin")),
                                   json={"is_active": False})
    assert disabled.status_code == 200, disabled.get_json()

    response = practice.get("/directory", headers=practice.intake_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["sites"] == [{"id": practice.site.id, "name": practice.site.name, "display_name": "Riverside Health",
                              "timezone": ZONE, "is_otp": False}]
    # Active clinicians of the caller's sites, by name; only the caller's sites are named.
    assert body["clinicians"] == [
        {"id": both.id, "name": "Ana Both", "site_ids": [practice.site.id], "is_supervisor": True},
        {"id": practice.colleague.id, "name": "Colleague Clinician", "site_ids": [practice.site.id],
         "is_supervisor": False},
        {"id": practice.clinician.id, "name": "Zelda Quartermaine", "site_ids": [practice.site.id],
         "is_supervisor": False},
    ]
    assert "@" not in response.get_data(as_text=True)
    # Every signed-in role may read it; each sees their own sites only.
    assert practice.get("/directory").get_json() == body
    outsider = practice.get("/directory", headers=practice.outsider_headers).get_json()
    assert [s["id"] for s in outsider["sites"]] == [practice.outsider.site_ids[0]]
    assert practice.clinician.id not in [c["id"] for c in outsider["clinicians"]]
    assert practice.get("/directory", headers=practice.admin_headers).get_json() == {"sites": [], "clinicians": []}
    assert practice.http.get("/api/v1/directory").status_code == 401


# --- working hours -------------------------------------------------------------------------------


def test_working_hours_default_to_weekdays_nine_to_five_and_are_set_by_the_clinician_or_an_admin(app, practice):
    url = f"/users/{practice.clinician.id}/working-hours"
    default = practice.get(url).get_json()
    assert default["is_default"] is True and default["timezone"] is None
    assert [(s["weekday"], s["start"], s["end"], s["site_id"]) for s in default["weekly"]] == [
        (day, "09:00", "17:00", practice.site.id) for day in range(5)
    ]
    week = {"weekly": [{"weekday": 1, "start": "12:00", "end": "20:00", "site_id": practice.site.id},
                       {"weekday": 3, "start": "08:30", "end": "12:00", "site_id": practice.site.id},
                       {"weekday": 3, "start": "13:00", "end": "16:00", "site_id": practice.site.id}]}
    saved = practice.http.put(f"/api/v1{url}", headers=practice.headers, json=week)
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json() == {"user_id": practice.clinician.id, "timezone": None, "is_default": False,
                                "weekly": week["weekly"]}
    assert practice.get(url).get_json() == saved.get_json()
    # An administrator may set them too (in another zone); nobody else may read or set them.
    in_chicago = {"timezone": "America/Chicago", "weekly": week["weekly"][:1]}
    assert practice.http.put(f"/api/v1{url}", headers=practice.admin_headers, json=in_chicago).status_code == 200
    assert practice.get(url).get_json()["timezone"] == "America/Chicago"
    for headers in (practice.colleague_headers, practice.intake_headers):
        assert practice.http.put(f"/api/v1{url}", headers=headers, json=week).status_code == 403
        assert practice.get(url, headers=headers).status_code == 403
    assert practice.get(f"/users/{practice.intake.id}/working-hours", headers=practice.admin_headers).status_code == 422
    assert practice.get("/users/999999/working-hours", headers=practice.admin_headers).status_code == 404
    actions = audit_actions(app, resource="user", resource_id=str(practice.clinician.id))
    assert actions == [("user.update", "success", None), ("user.update", "success", None)]


@pytest.mark.parametrize(
    ("stretch", "field"),
    [
        ({"weekday": 7}, "weekly.0.weekday"),
        ({"start": "9:00"}, "weekly.0.start"),
        ({"end": "24:00"}, "weekly.0.end"),
        ({"start": "17:00", "end": "09:00"}, "weekly.0.end"),
        ({"site_id": "other"}, "weekly.0.site_id"),
        ({"surprise": 1}, "weekly.0.surprise"),
    ],
)
def test_bad_working_hours_are_422_naming_the_field(practice, make_site, stretch, field):
    other = make_site()
    values = {"weekday": 0, "start": "09:00", "end": "17:00", "site_id": practice.site.id, **stretch}
    if values["site_id"] == "other":
        values["site_id"] = other.id
    response = practice.http.put(f"/api/v1/users/{practice.clinician.id}/working-hours", headers=practice.headers,
                                 json={"weekly": [values]})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"], response.get_json()


def test_overlapping_stretches_of_one_day_are_refused(practice):
    weekly = [{"weekday": 2, "start": "09:00", "end": "13:00", "site_id": practice.site.id},
              {"weekday": 2, "start": "12:00", "end": "15:00", "site_id": practice.site.id}]
    response = practice.http.put(f"/api/v1/users/{practice.clinician.id}/working-hours", headers=practice.headers,
                                 json={"weekly": weekly})
    assert response.status_code == 422
    assert "weekly.1.start" in response.get_json()["errors"]
    assert practice.http.put(f"/api/v1/users/{practice.clinician.id}/working-hours", headers=practice.headers,
                             json={"weekly": []}).status_code == 422


# --- free slots ------------------------------------------------------------------------------------


def test_free_slots_lie_inside_working_hours_and_clear_of_every_booking(practice):
    monday = monday_ahead()
    day = {"from": local(monday, 0).isoformat(), "to": local(monday, 23).isoformat(), "duration_minutes": 60}
    offered = slots(practice, clinician_id=practice.clinician.id, step_minutes=60, **day)
    # The default day: 09:00 to 17:00 local, hourly.
    assert offered == [(practice.clinician.id, local(monday, hour)) for hour in range(9, 17)]

    # A booking (of any client) takes its time away; back-to-back slots stay.
    practice.booked_ok(starts_at=local(monday, 10, 30), duration_minutes=60)
    offered = slots(practice, clinician_id=practice.clinician.id, step_minutes=30, **day)
    starts = [start.astimezone(NY).strftime("%H:%M") for _, start in offered]
    assert starts == ["09:00", "09:30", "11:30", "12:00", "12:30", "13:00", "13:30", "14:00", "14:30", "15:00",
                      "15:30", "16:00"]

    # Every clinician of the site when none is named, in start order.
    both = slots(practice, step_minutes=240, **day)
    clinician, colleague = practice.clinician.id, practice.colleague.id
    assert both == [(clinician, local(monday, 9)), (colleague, local(monday, 9)), (clinician, local(monday, 13)),
                    (colleague, local(monday, 13))]

    # A slot on offer can be booked, and is then no longer offered; a weekend has none.
    practice.booked_ok(clinician_id=colleague, client_id=practice.ben["id"], starts_at=local(monday, 9),
                       duration_minutes=60, headers=practice.intake_headers, kind="intake_assessment")
    assert slots(practice, step_minutes=240, **day) == [
        (clinician, local(monday, 9)), (clinician, local(monday, 13)), (colleague, local(monday, 13))
    ]
    saturday = monday - timedelta(days=2)
    weekend = {"from": local(saturday, 0).isoformat(), "to": local(saturday + timedelta(days=1), 23).isoformat()}
    assert slots(practice, duration_minutes=30, **weekend) == []


def test_free_slots_follow_the_working_hours_set(practice):
    monday = monday_ahead()
    weekly = [{"weekday": 1, "start": "18:00", "end": "20:00", "site_id": practice.site.id}]
    practice.http.put(f"/api/v1/users/{practice.clinician.id}/working-hours", headers=practice.headers,
                      json={"weekly": weekly})
    week = {"from": local(monday, 0).isoformat(), "to": local(monday + timedelta(days=6), 23).isoformat()}
    offered = slots(practice, clinician_id=practice.clinician.id, duration_minutes=45, **week)
    tuesday = monday + timedelta(days=1)
    assert offered == [(practice.clinician.id, local(tuesday, 18, m)) for m in (0, 15, 30, 45)] + [
        (practice.clinician.id, local(tuesday, 19, 0)), (practice.clinician.id, local(tuesday, 19, 15))
    ]
    # In another zone: 18:00 in Chicago is 19:00 in New York.
    practice.http.put(f"/api/v1/users/{practice.clinician.id}/working-hours", headers=practice.headers,
                      json={"timezone": "America/Chicago", "weekly": weekly})
    offered = slots(practice, clinician_id=practice.clinician.id, duration_minutes=120, **week)
    assert offered == [(practice.clinician.id, local(tuesday, 19))]


def test_free_slots_keep_the_wall_clock_across_a_daylight_saving_change(practice):
    before, after = SPRING_FORWARD - timedelta(days=6), SPRING_FORWARD + timedelta(days=1)  # two Mondays
    query = {"from": "2027-03-08T00:00", "to": "2027-03-15T23:00", "duration_minutes": 480,
             "clinician_id": practice.clinician.id}  # local times: the site's zone
    offered = [start for _, start in slots(practice, **query)]
    mondays = [s for s in offered if s.astimezone(NY).date() in (before, after)]
    assert [s.astimezone(NY).hour for s in mondays] == [9, 9]
    assert [s.astimezone(UTC).hour for s in mondays] == [14, 13]  # EST, then EDT
    assert len(offered) == 6  # Monday to Friday of the first week, and the second Monday


def test_availability_is_checked_like_a_booking(practice, make_user, make_site, bearer):
    monday = monday_ahead()
    day = {"from": local(monday, 0).isoformat(), "to": local(monday, 23).isoformat(), "duration_minutes": 60}
    # Intake coordinators book intake assessments only.
    assert practice.get("/availability", headers=practice.intake_headers, site_id=practice.site.id,
                        kind="individual_therapy", **day).status_code == 403
    assert practice.get("/availability", headers=practice.intake_headers, site_id=practice.site.id,
                        kind="intake_assessment", **day).status_code == 200
    # Every signed-in role may ask about their own sites (slots name no client); others are a 422.
    admin = bearer(make_user("admin", sites=[practice.site]))
    assert practice.get("/availability", headers=admin, site_id=practice.site.id, **day).status_code == 200
    refused = practice.get("/availability", headers=practice.admin_headers, site_id=practice.site.id, **day)
    assert refused.status_code == 422 and "site_id" in refused.get_json()["errors"]
    stranger = make_user("clinician", sites=[make_site()])
    for query, field in [
        ({"site_id": practice.outsider.site_ids[0]}, "site_id"),
        ({"clinician_id": stranger.id}, "clinician_id"),
        ({"to": local(monday + timedelta(days=15), 0).isoformat()}, "to"),
        ({"to": local(monday - timedelta(days=1), 0).isoformat()}, "to"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"step_minutes": 1}, "step_minutes"),
        ({"from": "2027-03-14T02:30:00"}, "from"),
    ]:
        response = practice.get("/availability", **{"site_id": practice.site.id, **day, **query})
        assert response.status_code == 422, (query, response.get_json())
        assert field in response.get_json()["errors"], (query, response.get_json())


# --- local wall-clock times ---------------------------------------------------------------------------


def test_a_time_without_offset_is_the_sites_local_time(practice):
    monday = monday_ahead()
    body = practice.booked_ok(starts_at=f"{monday.isoformat()}T09:30:00")
    assert datetime.fromisoformat(body["starts_at"]) == local(monday, 9, 30)
    assert datetime.fromisoformat(body["local_starts_at"]).strftime("%H:%M") == "09:30"
    # A PATCH reads it in the zone of the appointment's site.
    moved = practice.patch(f"/appointments/{body['id']}", {"starts_at": f"{monday.isoformat()}T11:00"})
    assert moved.status_code == 200, moved.get_json()
    assert datetime.fromisoformat(moved.get_json()["starts_at"]) == local(monday, 11)
    # Queries that name the site too; an offset still means what it says.
    found = practice.get("/appointments", site_id=practice.site.id, **{"from": f"{monday.isoformat()}T10:59",
                                                                          "to": f"{monday.isoformat()}T11:01"})
    assert [a["id"] for a in found.get_json()["items"]] == [body["id"]]
    offset = practice.patch(f"/appointments/{body['id']}", {"starts_at": f"{monday.isoformat()}T11:00:00Z"})
    assert datetime.fromisoformat(offset.get_json()["starts_at"]) == datetime.combine(monday, time(11), tzinfo=UTC)


def test_a_local_time_the_clocks_skip_is_422_naming_the_field(app, practice):
    response = practice.book(starts_at="2027-03-14T02:30:00")
    assert response.status_code == 422
    assert "2027-03-14 02:30 does not exist in America/New_York" in response.get_json()["errors"]["starts_at"][0]
    booked = practice.booked_ok(starts_at="2027-03-14T03:30:00")  # the first minute after the gap exists
    assert datetime.fromisoformat(booked["starts_at"]) == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    patched = practice.patch(f"/appointments/{booked['id']}", {"starts_at": "2027-03-14T02:00"})
    assert patched.status_code == 422 and "starts_at" in patched.get_json()["errors"]


def test_a_local_time_that_happens_twice_is_the_first_and_an_offset_picks_the_second(practice):
    first = practice.booked_ok(starts_at="2027-11-07T01:30:00")
    assert datetime.fromisoformat(first["starts_at"]) == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)  # EDT, -04:00
    assert first["local_starts_at"] == "2027-11-07T01:30:00-04:00"
    second = practice.booked_ok(starts_at="2027-11-07T01:30:00-05:00", client_id=practice.ben["id"])
    assert second["local_starts_at"] == "2027-11-07T01:30:00-05:00"
    assert datetime.fromisoformat(second["starts_at"]) - datetime.fromisoformat(first["starts_at"]) == timedelta(
        hours=1)


def test_without_a_site_of_the_callers_a_time_needs_its_offset(practice):
    # No site named (the list without site_id), or another site: 422 naming the field.
    refused = practice.get("/appointments", **{"from": "2027-01-04T09:00"})
    assert refused.status_code == 422 and "offset" in refused.get_json()["errors"]["from"][0]
    other_site = practice.outsider.site_ids[0]
    response = practice.book(site_id=other_site, starts_at="2027-01-04T09:00")
    assert response.status_code == 422 and "starts_at" in response.get_json()["errors"]
    # Another site's appointment answers exactly as one that does not exist.
    theirs = register(practice.http, practice.outsider_headers, Site(id=other_site), first_name="Oz",
                      last_name="Other", date_of_birth="1970-01-01")
    booked = practice.booked_ok(headers=practice.outsider_headers, site_id=other_site, client_id=theirs["id"],
                                clinician_id=practice.outsider.id, starts_at=at(days=2))
    answers = [practice.patch(f"/appointments/{appointment_id}", {"starts_at": "2027-01-04T09:00"})
               for appointment_id in (booked["id"], 999999)]
    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].get_json() == answers[1].get_json()
    assert "starts_at" in answers[0].get_json()["errors"]


def test_intake_calls_take_local_times_too(practice):
    yesterday = (datetime.now(NY) - timedelta(days=1)).date()
    body = {"site_id": practice.site.id, "direction": "inbound", "occurred_at": f"{yesterday.isoformat()}T16:45",
            "caller_name": "Sam Ortiz", "caller_relation": "self", "callback_phone": "(212) 555-0134",
            "referral_source": "friend", "reason": "wants help", "outcome": "callback_requested",
            "follow_up_at": f"{yesterday.isoformat()}T18:00:00"}
    created = practice.post("/intake-calls", body, headers=practice.intake_headers)
    assert created.status_code == 201, created.get_json()
    call = created.get_json()
    assert datetime.fromisoformat(call["occurred_at"]) == local(yesterday, 16, 45)
    assert datetime.fromisoformat(call["follow_up_at"]) == local(yesterday, 18)
    patched = practice.patch(f"/intake-calls/{call['id']}", {"follow_up_at": f"{yesterday.isoformat()}T19:15"},
                             headers=practice.intake_headers)
    assert datetime.fromisoformat(patched.get_json()["follow_up_at"]) == local(yesterday, 19, 15)
    gap = practice.patch(f"/intake-calls/{call['id']}", {"follow_up_at": "2027-03-14T02:15"},
                         headers=practice.intake_headers)
    assert gap.status_code == 422 and "follow_up_at" in gap.get_json()["errors"]
    listed = practice.get("/intake-calls", headers=practice.intake_headers, site_id=practice.site.id,
                          **{"from": f"{yesterday.isoformat()}T16:00", "to": f"{yesterday.isoformat()}T17:00"})
    assert [c["id"] for c in listed.get_json()["items"]] == [call["id"]]
