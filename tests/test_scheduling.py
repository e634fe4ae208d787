"""Appointments as their users meet them: booking, double booking, series across daylight-saving
changes, editing this/following/all, the status machine, group sessions, scope and audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.core.time import from_local
from clinic.extensions import db
from clinic.scheduling.models import Appointment, AppointmentStatus
from clinic.scheduling.recurrence import RecurrenceError, normalise_rule, occurrences
from tests.appointments_setup import ZONE, Practice, at, build_practice

NY = ZoneInfo(ZONE)


@pytest.fixture
def practice(client, make_site, make_user, bearer) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def next_offset_change(after: datetime) -> datetime:
    """The first local midnight (in New York) after which the UTC offset differs."""
    day = after.astimezone(NY).replace(hour=12, minute=0, second=0, microsecond=0)
    offset = day.utcoffset()
    for _ in range(400):
        day += timedelta(days=1)
        if day.replace(tzinfo=None).replace(tzinfo=NY).utcoffset() != offset:
            return day.replace(hour=0, tzinfo=None).replace(tzinfo=NY)
    raise AssertionError("no daylight-saving change within 400 days")


def local_nine(day: datetime) -> datetime:
    return day.replace(hour=9, minute=0, second=0, microsecond=0, tzinfo=None).replace(tzinfo=NY)


# --- booking -----------------------------------------------------------------------------------


def test_booking_keeps_the_site_zone_and_audits_the_write(app, practice):
    start = at(days=2)
    body = practice.booked_ok(starts_at=start, duration_minutes=45, location="Room 2")
    assert body["status"] == "scheduled"
    assert body["timezone"] == ZONE
    assert datetime.fromisoformat(body["starts_at"]) == start
    assert datetime.fromisoformat(body["ends_at"]) == start + timedelta(minutes=45)
    assert body["duration_minutes"] == 45
    local = datetime.fromisoformat(body["local_starts_at"])
    assert local == start and local.utcoffset() == start.astimezone(NY).utcoffset()
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource == "appointment", AuditEvent.resource_id == str(body["id"]))
        ).all()
    assert [(e.action, e.client_id) for e in events] == [("appointment.create", practice.ada["id"])]


def test_double_booking_the_clinician_is_409_naming_the_clash(practice):
    first = practice.booked_ok(starts_at=at(days=2), duration_minutes=60)
    response = practice.book(client_id=practice.ben["id"], starts_at=at(days=2, minutes=30))
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["type"].endswith("/double-booking")
    assert "clinician" in problem["detail"] and f"appointment {first['id']}" in problem["detail"]
    assert problem["clashes"][0] == {
        "party": "clinician",
        "party_id": practice.clinician.id,
        "appointment_id": first["id"],
        "starts_at": first["starts_at"],
        "ends_at": first["ends_at"],
        "requested_starts_at": None,
    }
    # Back to back is not a clash (the ranges are half-open).
    practice.booked_ok(client_id=practice.ben["id"], starts_at=at(days=2, minutes=60))


def test_double_booking_the_client_is_409_whoever_the_clinician(practice):
    practice.booked_ok(starts_at=at(days=2))
    response = practice.book(clinician_id=practice.colleague.id, starts_at=at(days=2, minutes=15))
    assert response.status_code == 409
    clash = response.get_json()["clashes"][0]
    assert (clash["party"], clash["party_id"]) == ("client", practice.ada["id"])
    assert f"client {practice.ada['id']}" in response.get_json()["detail"]


def test_a_cancelled_or_missed_appointment_frees_its_time(practice):
    first = practice.booked_ok(starts_at=at(days=2))
    assert practice.post(f"/appointments/{first['id']}/cancel", {"by": "client"}).status_code == 200
    practice.booked_ok(starts_at=at(days=2))
    past = practice.booked_ok(starts_at=at(hours=-3))
    late = {"late_entry_reason": "recorded the next morning"}
    assert practice.post(f"/appointments/{past['id']}/no-show", late).status_code == 200
    practice.booked_ok(starts_at=at(hours=-3), client_id=practice.ben["id"])


def test_the_database_itself_refuses_double_booking_on_postgresql(practice, backend, monkeypatch):
    if backend != "postgresql":
        pytest.skip("the exclusion constraints exist on PostgreSQL only; SQLite relies on the check in code")
    first = practice.booked_ok(starts_at=at(days=2))
    # Without the check in code (as when two requests book at the same instant) the database refuses.
    monkeypatch.setattr("clinic.scheduling.operations.find_clashes", lambda *args, **kwargs: [])
    response = practice.book(client_id=practice.ben["id"], starts_at=at(days=2, minutes=10))
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["clashes"][0]["appointment_id"] == first["id"]
    response = practice.book(clinician_id=practice.colleague.id, starts_at=at(days=2, minutes=10))
    assert response.status_code == 409
    assert response.get_json()["clashes"][0]["party"] == "client"
    assert practice.get("/appointments", client_id=practice.ada["id"]).get_json()["items"] == [
        practice.get(f"/appointments/{first['id']}").get_json()
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": "60"}, "duration_minutes"),
        ({"starts_at": "2027-03-14T02:30:00"}, "starts_at"),  # local time the clocks skip in New York
        ({"starts_at": "9999-12-31T23:00:00+00:00"}, "starts_at"),
        ({"starts_at": "1999-12-31T23:00:00+00:00"}, "starts_at"),
        ({"kind": "massage"}, "kind"),
        ({"client_ids": [1], "client_id": 1}, "client_ids"),
        ({"client_id": None}, "client_id"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"telehealth_url": "http://insecure.example.org/room"}, "telehealth_url"),
        ({"surprise": True}, "surprise"),
        ({"capacity": 5}, "capacity"),
    ],
)
def test_bad_bookings_are_422_naming_the_field(practice, fields, field):
    response = practice.book(**fields)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_clinician_and_client_must_belong_to_the_site(practice, make_user, make_site):
    stranger = make_user("clinician", sites=[make_site()])
    response = practice.book(clinician_id=stranger.id)
    assert response.status_code == 422
    assert "clinician_id" in response.get_json()["errors"]
    response = practice.book(clinician_id=practice.intake.id)
    assert "clinician_id" in response.get_json()["errors"]
    response = practice.book(client_id=2**31 - 1)
    assert response.status_code == 422
    assert "client_id" in response.get_json()["errors"]


def test_roles_and_sites(practice):
    own = practice.booked_ok()
    # Intake coordinators book intake assessments, not therapy.
    assert practice.book(headers=practice.intake_headers, starts_at=at(days=5)).status_code == 403
    intake_booked = practice.book(headers=practice.intake_headers, kind="intake_assessment", starts_at=at(days=5))
    assert intake_booked.status_code == 201
    assert practice.get(f"/appointments/{own['id']}", headers=practice.intake_headers).status_code == 200
    assert practice.post(f"/appointments/{own['id']}/cancel", {"by": "clinic"},
                         headers=practice.intake_headers).status_code == 403
    # Administrators see no client appointments; another site's staff do not know they exist.
    assert practice.get(f"/appointments/{own['id']}", headers=practice.admin_headers).status_code == 403
    assert practice.book(headers=practice.admin_headers).status_code == 403
    assert practice.get(f"/appointments/{own['id']}", headers=practice.outsider_headers).status_code == 404
    assert practice.get("/appointments", headers=practice.outsider_headers).get_json()["items"] == []
    assert practice.book(headers=practice.outsider_headers).status_code == 422


def test_list_filters_by_time_client_and_status(practice):
    early = practice.booked_ok(starts_at=at(days=1))
    late = practice.booked_ok(starts_at=at(days=4))
    bens = practice.booked_ok(starts_at=at(days=6), client_id=practice.ben["id"])
    ids = lambda response: [item["id"] for item in response.get_json()["items"]]  # noqa: E731
    assert ids(practice.get("/appointments")) == [early["id"], late["id"], bens["id"]]
    assert ids(practice.get("/appointments", client_id=practice.ada["id"])) == [early["id"], late["id"]]
    assert ids(practice.get("/appointments", **{"from": at(days=2).isoformat(), "to": at(days=5).isoformat()})) == [
        late["id"]
    ]
    practice.post(f"/appointments/{late['id']}/cancel", {"by": "clinic"})
    assert ids(practice.get("/appointments", status="cancelled_by_clinic")) == [late["id"]]
    page = practice.get("/appointments", limit=2).get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = practice.get("/appointments", limit=2, cursor=page["next_cursor"]).get_json()
    assert [i["id"] for i in rest["items"]] == [bens["id"]]
    bad = practice.get("/appointments", **{"from": at(days=5).isoformat(), "to": at(days=1).isoformat()})
    assert bad.status_code == 422 and "to" in bad.get_json()["errors"]


def test_appointments_are_on_the_client_timeline(practice):
    booked = practice.booked_ok(kind="medication_visit")
    entries = practice.get(f"/clients/{practice.ada['id']}/timeline", headers=practice.intake_headers).get_json()
    ours = [e for e in entries["items"] if e["kind"] == "appointment"]
    assert [(e["resource_id"], e["summary"]) for e in ours] == [(booked["id"], "Medication visit: scheduled")]


# --- series ------------------------------------------------------------------------------------


def test_a_weekly_series_keeps_its_wall_clock_time_across_a_daylight_saving_change(practice):
    change = next_offset_change(datetime.now(UTC))
    first = local_nine(change - timedelta(days=14))
    body = practice.booked_ok(starts_at=first, recurrence="RRULE:FREQ=WEEKLY;COUNT=4", client_id=practice.ben["id"])
    assert body["recurrence"] == "RRULE:FREQ=WEEKLY;COUNT=4"
    series = practice.get("/appointments", series_id=body["series_id"]).get_json()["items"]
    assert len(series) == 4
    locals_ = [datetime.fromisoformat(a["local_starts_at"]) for a in series]
    assert [(t.hour, t.minute) for t in locals_] == [(9, 0)] * 4
    assert [t.date() for t in locals_] == [(first + timedelta(weeks=n)).date() for n in range(4)]
    offsets = [t.utcoffset() for t in locals_]
    assert offsets[0] == offsets[1] != offsets[2] == offsets[3]  # the UTC time moved, the local one did not
    utc_hours = {datetime.fromisoformat(a["starts_at"]).hour for a in series}
    assert len(utc_hours) == 2


def test_rules_are_checked(practice):
    for rule, message in [
        ("FREQ=WEEKLY", "COUNT"),
        ("FREQ=HOURLY;COUNT=3", "FREQ"),
        ("FREQ=WEEKLY;COUNT=3;BYHOUR=9", "BYHOUR"),
        ("FREQ=DAILY;COUNT=401", "COUNT"),
        ("FREQ=WEEKLY;BYDAY=XX;COUNT=2", "RRULE"),
        ("nonsense", "NAME=VALUE"),
        ("FREQ=DAILY;UNTIL=2090-01-01", "UNTIL"),
        ("FREQ=MONTHLY;COUNT=30", "two years"),
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31;BYDAY=XX;COUNT=3", "RRULE"),
    ]:
        response = practice.book(starts_at=at(days=1), recurrence=rule)
        assert response.status_code == 422, (rule, response.get_json())
        assert message in " ".join(response.get_json()["errors"]["recurrence"]), (rule, response.get_json())
    overlapping = practice.book(starts_at=at(days=1), duration_minutes=720, recurrence="FREQ=DAILY;COUNT=3",
                                **{"kind": "individual_therapy"})
    assert overlapping.status_code == 201  # 12 hours a day do not overlap the next day's
    assert practice.book(client_id=practice.ben["id"], starts_at=at(days=10), duration_minutes=720,
                         recurrence="FREQ=DAILY;INTERVAL=1;COUNT=2;BYDAY=MO,TU,WE,TH,FR,SA,SU").status_code == 201


def test_a_series_that_clashes_names_the_occurrence(practice):
    start = at(days=1)
    blocker = practice.booked_ok(starts_at=start + timedelta(weeks=2), client_id=practice.ben["id"])
    response = practice.book(starts_at=start, recurrence="FREQ=WEEKLY;COUNT=4")
    assert response.status_code == 409
    clash = response.get_json()["clashes"][0]
    assert clash["appointment_id"] == blocker["id"]
    assert datetime.fromisoformat(clash["requested_starts_at"]) == start + timedelta(weeks=2)
    assert practice.get("/appointments", client_id=practice.ada["id"]).get_json()["items"] == []


def test_edit_this_following_and_all_occurrences(practice):
    change = next_offset_change(datetime.now(UTC))
    first = local_nine(change - timedelta(days=21))
    booked = practice.booked_ok(starts_at=first, recurrence="FREQ=WEEKLY;COUNT=6")
    series = practice.get("/appointments", series_id=booked["series_id"]).get_json()["items"]

    # This: only the second occurrence gets longer.
    edited = practice.patch(f"/appointments/{series[1]['id']}", {"duration_minutes": 90})
    assert edited.status_code == 200 and edited.get_json()["duration_minutes"] == 90
    assert [a["duration_minutes"] for a in practice.get("/appointments", series_id=booked["series_id"]).get_json()[
        "items"]] == [60, 90, 60, 60, 60, 60]

    # Following: from the third on, 10:00 local instead of 09:00 — on both sides of the change.
    third_new = datetime.fromisoformat(series[2]["local_starts_at"]) + timedelta(hours=1)
    moved = practice.patch(f"/appointments/{series[2]['id']}", {"starts_at": third_new.isoformat()}, scope="following")
    assert moved.status_code == 200, moved.get_json()
    new_series = moved.get_json()["series_id"]
    assert new_series != booked["series_id"]
    kept = practice.get("/appointments", series_id=booked["series_id"]).get_json()["items"]
    split = practice.get("/appointments", series_id=new_series).get_json()["items"]
    assert [datetime.fromisoformat(a["local_starts_at"]).hour for a in kept] == [9, 9]
    assert [datetime.fromisoformat(a["local_starts_at"]).hour for a in split] == [10, 10, 10, 10]
    assert len({datetime.fromisoformat(a["local_starts_at"]).utcoffset() for a in split}) == 2

    # All (of the split-off series): every open one moves to another clinician.
    response = practice.patch(f"/appointments/{split[0]['id']}", {"clinician_id": practice.colleague.id}, scope="all")
    assert response.status_code == 200, response.get_json()
    after = practice.get("/appointments", series_id=new_series).get_json()["items"]
    assert {a["clinician_id"] for a in after} == {practice.colleague.id}
    assert {a["clinician_id"] for a in practice.get("/appointments", series_id=booked["series_id"]).get_json()[
        "items"]} == {practice.clinician.id}


def test_moving_a_whole_daily_series_by_a_day_is_not_a_clash_with_itself(practice):
    booked = practice.booked_ok(starts_at=at(days=2), recurrence="FREQ=DAILY;COUNT=5")
    first = at(days=3)  # one instant: at() read twice could fall on either side of a second
    moved = practice.patch(f"/appointments/{booked['id']}", {"starts_at": first.isoformat()}, scope="all")
    assert moved.status_code == 200, moved.get_json()
    starts = [a["starts_at"] for a in practice.get("/appointments", series_id=booked["series_id"]).get_json()["items"]]
    assert [datetime.fromisoformat(s) for s in starts] == [first + timedelta(days=n) for n in range(5)]


def test_cancelling_following_occurrences(practice):
    booked = practice.booked_ok(starts_at=at(days=1), recurrence="FREQ=WEEKLY;COUNT=4")
    series = practice.get("/appointments", series_id=booked["series_id"]).get_json()["items"]
    response = practice.http.post(f"/api/v1/appointments/{series[1]['id']}/cancel?scope=following",
                                  headers=practice.headers, json={"by": "clinic", "reason": "clinician leaves"})
    assert response.status_code == 200
    statuses = [a["status"] for a in practice.get("/appointments", series_id=booked["series_id"]).get_json()["items"]]
    assert statuses == ["scheduled", "cancelled_by_clinic", "cancelled_by_clinic", "cancelled_by_clinic"]


def test_rescheduling_asks_for_a_new_confirmation_and_clashes_are_409(practice):
    booked = practice.booked_ok(starts_at=at(days=2))
    other = practice.booked_ok(starts_at=at(days=3), client_id=practice.ben["id"])
    assert practice.post(f"/appointments/{booked['id']}/confirm").get_json()["status"] == "confirmed"
    assert practice.post(f"/appointments/{booked['id']}/confirm").status_code == 200  # again: no change
    clash = practice.patch(f"/appointments/{booked['id']}", {"starts_at": other["starts_at"]})
    assert clash.status_code == 409 and clash.get_json()["clashes"][0]["appointment_id"] == other["id"]
    moved = practice.patch(f"/appointments/{booked['id']}", {"starts_at": at(days=4).isoformat()}).get_json()
    assert (moved["status"], moved["confirmed_at"]) == ("scheduled", None)
    practice.post(f"/appointments/{booked['id']}/cancel", {"by": "client"})
    assert practice.patch(f"/appointments/{booked['id']}", {"duration_minutes": 30}).status_code == 409


# --- the status machine ------------------------------------------------------------------------


def test_a_kept_appointment(practice):
    soon = practice.booked_ok(starts_at=at(minutes=30))
    assert practice.post(f"/appointments/{soon['id']}/complete").status_code == 409  # not checked in
    checked = practice.post(f"/appointments/{soon['id']}/check-in")
    assert checked.status_code == 200 and checked.get_json()["checked_in_at"]
    done = practice.post(f"/appointments/{soon['id']}/complete").get_json()
    assert (done["status"], bool(done["completed_at"])) == ("completed", True)
    for action, body in [("cancel", {"by": "clinic"}), ("no-show", {}), ("check-in", {}), ("confirm", {})]:
        response = practice.post(f"/appointments/{soon['id']}/{action}", body)
        assert response.status_code == 409, action
        problem = response.get_json()
        assert (problem["status"], problem["appointment_status"], problem["allowed"]) == (409, "completed", []), action


def test_timing_rules(practice):
    later = practice.booked_ok(starts_at=at(hours=3))
    refused = practice.post(f"/appointments/{later['id']}/check-in")
    assert refused.status_code == 409 and "hour before" in refused.get_json()["detail"]
    assert practice.post(f"/appointments/{later['id']}/no-show").status_code == 409
    past = practice.booked_ok(starts_at=at(hours=-5), client_id=practice.ben["id"])
    # Ended: a cancellation or no-show is a late entry, refused without its reason.
    for action, body in [("cancel", {"by": "client"}), ("no-show", {})]:
        refused = practice.post(f"/appointments/{past['id']}/{action}", body)
        assert refused.status_code == 422 and "late_entry_reason" in refused.get_json()["errors"], action
    assert practice.get(f"/appointments/{past['id']}").get_json()["status"] == "scheduled"
    assert practice.post(f"/appointments/{past['id']}/confirm").status_code == 409
    missed = practice.post(f"/appointments/{past['id']}/no-show", {"late_entry_reason": "forgot"}).get_json()
    assert (missed["status"], bool(missed["no_show_at"])) == ("no_show", True)
    assert practice.post(f"/appointments/{past['id']}/check-in").status_code == 409


def test_cancellation_records_who_and_why(practice):
    booked = practice.booked_ok()
    body = practice.post(f"/appointments/{booked['id']}/cancel", {"by": "client", "reason": "no ride"}).get_json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled_by_client", "no ride")
    bad = practice.post(f"/appointments/{booked['id']}/cancel", {"by": "weather"})
    assert bad.status_code == 422 and "by" in bad.get_json()["errors"]


# --- late documentation ------------------------------------------------------------------------------


def late_entry_events(app, appointment_id: int) -> list[tuple[str, object]]:
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.resource == "appointment", AuditEvent.resource_id == str(appointment_id))
            .order_by(AuditEvent.id)
        ).all()
    return [(e.action, (e.details or {}).get("late_entry")) for e in events]


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_forgotten_check_in_is_completed_late_with_a_reason(app, practice, confirmed):
    ended = practice.booked_ok(starts_at=at(hours=-2))
    if confirmed:  # confirmed by phone the day before (the API confirms only before the start)
        with app.app_context():
            db.session.get(Appointment, ended["id"]).status = AppointmentStatus.CONFIRMED
            db.session.commit()
    refused = practice.post(f"/appointments/{ended['id']}/complete")
    assert refused.status_code == 422
    assert list(refused.get_json()["errors"]) == ["late_entry_reason"]
    # Without a body at all, the same.
    no_body = practice.http.post(f"/api/v1/appointments/{ended['id']}/complete", headers=practice.headers)
    assert no_body.status_code == 422 and "late_entry_reason" in no_body.get_json()["errors"]
    blank = practice.post(f"/appointments/{ended['id']}/complete", {"late_entry_reason": "   "})
    assert blank.status_code == 422 and "late_entry_reason" in blank.get_json()["errors"]

    done = practice.post(f"/appointments/{ended['id']}/complete", {"late_entry_reason": "check-in was forgotten"})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["status"] == "completed" and body["completed_at"]
    assert body["late_entry"]["reason"] == "check-in was forgotten"
    assert body["late_entry"]["by_user_id"] == practice.clinician.id
    assert datetime.fromisoformat(body["late_entry"]["at"]) >= datetime.fromisoformat(body["ends_at"])
    assert practice.get(f"/appointments/{ended['id']}").get_json()["late_entry"] == body["late_entry"]
    assert late_entry_events(app, ended["id"])[-2] == ("appointment.completed", True)


def test_a_checked_in_appointment_completed_after_its_end_is_a_late_entry(app, practice, monkeypatch):
    now = practice.booked_ok(starts_at=at(minutes=-10), duration_minutes=30)
    assert practice.post(f"/appointments/{now['id']}/check-in").status_code == 200
    later = datetime.fromisoformat(now["ends_at"]) + timedelta(hours=3)
    monkeypatch.setattr("clinic.scheduling.operations.utcnow", lambda: later)
    refused = practice.post(f"/appointments/{now['id']}/complete")
    assert refused.status_code == 422 and "late_entry_reason" in refused.get_json()["errors"]
    done = practice.post(f"/appointments/{now['id']}/complete", {"late_entry_reason": "documented after clinic"})
    assert done.get_json()["late_entry"] == {"reason": "documented after clinic", "by_user_id": practice.clinician.id,
                                             "at": later.isoformat()}


def test_an_ended_appointment_is_cancelled_or_missed_late_only_with_a_reason(app, practice):
    past = practice.booked_ok(starts_at=at(hours=-4))
    missed = practice.booked_ok(starts_at=at(hours=-4), client_id=practice.ben["id"],
                                clinician_id=practice.colleague.id, kind="intake_assessment")
    cancelled = practice.post(f"/appointments/{past['id']}/cancel",
                              {"by": "client", "reason": "called in sick", "late_entry_reason": "message seen late"})
    assert cancelled.status_code == 200
    assert (cancelled.get_json()["status"], cancelled.get_json()["cancel_reason"]) == ("cancelled_by_client",
                                                                                        "called in sick")
    assert cancelled.get_json()["late_entry"]["reason"] == "message seen late"
    # Intake coordinators document their intake assessments late the same way.
    refused = practice.post(f"/appointments/{missed['id']}/no-show", headers=practice.intake_headers)
    assert refused.status_code == 422 and "late_entry_reason" in refused.get_json()["errors"]
    marked = practice.post(f"/appointments/{missed['id']}/no-show", {"late_entry_reason": "desk closed early"},
                           headers=practice.intake_headers)
    assert marked.status_code == 200
    assert marked.get_json()["late_entry"]["by_user_id"] == practice.intake.id
    assert late_entry_events(app, past["id"])[-1] == ("appointment.cancelled_by_client", True)
    assert late_entry_events(app, missed["id"])[-1] == ("appointment.no_show", True)


def test_outcomes_recorded_in_time_are_not_late_entries_and_check_in_keeps_its_window(app, practice):
    running = practice.booked_ok(starts_at=at(minutes=-20))
    # Begun, not ended: a no-show needs no reason, and a reason given does not make it late.
    marked = practice.post(f"/appointments/{running['id']}/no-show", {"late_entry_reason": "just in case"})
    assert marked.status_code == 200 and marked.get_json()["late_entry"] is None
    assert late_entry_events(app, running["id"])[-1] == ("appointment.no_show", None)
    # Not yet ended, not checked in: completing is still refused.
    soon = practice.booked_ok(starts_at=at(minutes=30), client_id=practice.ben["id"])
    assert practice.post(f"/appointments/{soon['id']}/complete", {"late_entry_reason": "x"}).status_code == 409
    # Check-in after the end stays refused, reason or not.
    past = practice.booked_ok(starts_at=at(hours=-3), client_id=practice.ben["id"])
    assert practice.post(f"/appointments/{past['id']}/check-in", {"late_entry_reason": "late"}).status_code == 409
    assert practice.get(f"/appointments/{past['id']}").get_json()["late_entry"] is None


# --- group sessions ------------------------------------------------------------------------------


@pytest.fixture
def group(practice):
    return practice.booked_ok(kind="group_therapy", client_id=None, client_ids=[practice.ada["id"]], capacity=2,
                              starts_at=at(days=2), duration_minutes=90)


def test_group_sessions_have_seats(practice, register_third, group):
    assert (group["is_group"], group["client_id"], group["client_ids"]) == (True, None, [practice.ada["id"]])
    seat = practice.post(f"/appointments/{group['id']}/attendees", {"client_id": practice.ben["id"]})
    assert seat.status_code == 201 and seat.get_json()["status"] == "registered"
    again = practice.post(f"/appointments/{group['id']}/attendees", {"client_id": practice.ben["id"]})
    assert again.status_code == 409
    full = practice.post(f"/appointments/{group['id']}/attendees", {"client_id": register_third["id"]})
    assert full.status_code == 409 and full.get_json()["type"].endswith("/session-full")
    left = practice.post(f"/appointments/{group['id']}/attendees/{practice.ben['id']}/cancel", {"by": "client"})
    assert left.get_json()["status"] == "cancelled_by_client"
    assert practice.post(f"/appointments/{group['id']}/attendees",
                         {"client_id": register_third["id"]}).status_code == 201
    listed = practice.get(f"/appointments/{group['id']}/attendees").get_json()["items"]
    assert [(a["client_id"], a["status"]) for a in listed] == [
        (practice.ada["id"], "registered"), (practice.ben["id"], "cancelled_by_client"),
        (register_third["id"], "registered"),
    ]
    assert practice.get("/appointments", client_id=register_third["id"]).get_json()["items"][0]["id"] == group["id"]
    reduced = practice.patch(f"/appointments/{group['id']}", {"capacity": 1})
    assert reduced.status_code == 409
    assert practice.post(f"/appointments/{group['id']}/cancel", {"by": "client"}).status_code == 422


def test_a_group_seat_clashes_with_the_clients_other_bookings(practice, group):
    practice.booked_ok(client_id=practice.ben["id"], clinician_id=practice.colleague.id,
                       starts_at=datetime.fromisoformat(group["starts_at"]) + timedelta(minutes=30))
    refused = practice.post(f"/appointments/{group['id']}/attendees", {"client_id": practice.ben["id"]})
    assert refused.status_code == 409
    assert refused.get_json()["clashes"][0]["party"] == "client"
    # And the other way round: Ada's seat blocks an individual appointment.
    clash = practice.book(clinician_id=practice.colleague.id, starts_at=group["starts_at"])
    assert clash.status_code == 409 and clash.get_json()["clashes"][0]["appointment_id"] == group["id"]


def test_attendance_is_per_attendee(practice):
    session = practice.booked_ok(kind="group_therapy", client_id=None, capacity=8,
                                 client_ids=[practice.ada["id"], practice.ben["id"]], starts_at=at(hours=-1))
    url = f"/appointments/{session['id']}/attendees"
    assert practice.post(f"{url}/{practice.ada['id']}/attendance", {"status": "attended"}).status_code == 200
    assert practice.post(f"{url}/{practice.ben['id']}/attendance", {"status": "no_show"}).status_code == 200
    assert practice.post(f"{url}/{practice.ben['id']}/attendance", {"status": "maybe"}).status_code == 422
    assert practice.post(f"{url}/999999/attendance", {"status": "attended"}).status_code == 404
    listed = {a["client_id"]: a["status"] for a in practice.get(url).get_json()["items"]}
    assert listed == {practice.ada["id"]: "attended", practice.ben["id"]: "no_show"}
    individual = practice.booked_ok(starts_at=at(days=9))
    assert practice.get(f"/appointments/{individual['id']}/attendees").status_code == 409


@pytest.fixture
def register_third(practice):
    from tests.appointments_setup import register

    return register(practice.http, practice.headers, practice.site, first_name="Cy", last_name="Dunn",
                    date_of_birth="1990-02-02")


# --- recurrence and wall-clock time (no database) --------------------------------------------------


def test_a_wall_time_skipped_by_the_clocks_moves_forward_by_the_gap():
    # 2027-03-14 02:30 does not exist in New York: it is 03:30 EDT (07:30 UTC).
    assert from_local(datetime(2027, 3, 14, 2, 30), ZONE)  # noqa: DTZ001 - a wall-clock time == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    # 2026-11-01 01:30 happens twice: the first (EDT, 05:30 UTC) is taken.
    assert from_local(datetime(2026, 11, 1, 1, 30), ZONE)  # noqa: DTZ001 == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_until_in_utc_or_as_a_local_date():
    start = datetime(2027, 1, 4, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
    by_date = occurrences(start, "FREQ=WEEKLY;UNTIL=20270118", ZONE)
    assert by_date == [start, start + timedelta(weeks=1), start + timedelta(weeks=2)]
    by_instant = occurrences(start, "FREQ=WEEKLY;UNTIL=20270118T135959Z", ZONE)
    assert by_instant == [start, start + timedelta(weeks=1)]
    assert normalise_rule("rrule:freq=daily;count=2") == "FREQ=DAILY;COUNT=2"
    with pytest.raises(RecurrenceError):
        normalise_rule("FREQ=DAILY;COUNT=2;COUNT=3")
