"""The clinician's home (/today) and the alerts page (/alerts), through Flask's test client.

The site of these tests keeps a time zone in which it is about noon now, so "today" has room for
visits hours before and after this moment whatever time the suite runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.console.dates import clock
from clinic.extensions import db
from clinic.notify.models import StaffNotification, StaffNotificationKind
from clinic.notify.staff import notify_staff
from clinic.plans.models import Plan
from tests.appointments_setup import register
from tests.conftest import Session
from tests.test_plans import tree

HTMX = {"HX-Request": "true"}


def midday_zone() -> str:
    """A fixed-offset zone in which it is between noon and 1 PM now (Etc/GMT names have inverted signs)."""
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def at(**delta: float) -> datetime:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0)


@dataclass
class Day:
    app: Flask
    http: FlaskClient
    site: Site
    zone: str
    clinician: User
    colleague: User
    headers: dict[str, str]
    colleague_headers: dict[str, str]
    session: Session
    ada: dict[str, Any]
    ben: dict[str, Any]

    def book(self, starts_at: datetime, minutes: int = 30, *, client: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, clinician: User | None = None) -> dict[str, Any]:
        response = self.http.post("/api/v1/appointments", headers=headers or self.headers, json={
            "site_id": self.site.id, "kind": "individual_therapy", "clinician_id": (clinician or self.clinician).id,
            "client_id": (client or self.ada)["id"], "starts_at": starts_at.isoformat(), "duration_minutes": minutes,
        })
        assert response.status_code == 201, response.get_json()
        booked: dict[str, Any] = response.get_json()
        return booked

    def appointment(self, appointment_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.http.get(f"/api/v1/appointments/{appointment_id}", headers=self.headers).get_json()
        return found

    def today(self) -> str:
        response = self.session.get("/today")
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return str(response.get_data(as_text=True))

    def local_date(self) -> date:
        return datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo(self.zone)).date()

    def alert(self, user: User, kind: StaffNotificationKind = StaffNotificationKind.SAFETY_FLAG, *,
              title: str = "Safety flag on a PHQ-9: item 9 answered above 0", client_id: int | None = None) -> int:
        with self.app.app_context():
            row = notify_staff(user.id, kind=kind, title=title, body=f"{title}. Review the client's safety today.",
                               client_id=client_id, resource="client", resource_id=client_id)
            assert row is not None
            db.session.commit()
            return row.id


@pytest.fixture
def day(app, client, make_site, make_user, bearer, login) -> Day:
    zone = midday_zone()
    site = make_site(timezone=zone)
    clinician = make_user("clinician", sites=[site], name="Dana Whitfield")
    colleague = make_user("clinician", sites=[site], name="Colleague Clinician")
    headers = bearer(clinician)
    ada = register(client, headers, site, first_name="Ada", last_name="Brown", date_of_birth="1980-01-01",
                   primary_clinician_id=clinician.id)
    ben = register(client, headers, site, first_name="Ben", last_name="Okafor", date_of_birth="1975-06-30",
                   primary_clinician_id=colleague.id)
    return Day(app=app, http=client, site=site, zone=zone, clinician=clinician, colleague=colleague,
               headers=headers, colleague_headers=bearer(colleague), session=login(clinician), ada=ada, ben=ben)


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _row(html: str, appointment_id: int) -> str:
    match = re.search(rf'<tr id="appointment-{appointment_id}".*?</tr>', html, re.S)
    assert match, f"no row of appointment {appointment_id}"
    return match.group(0)


# --- /today: the appointments ---------------------------------------------------------------


def test_today_shows_the_clinicians_own_appointments_of_the_day_in_time_order(day):
    later = day.book(at(hours=2))
    earlier = day.book(at(hours=-3))
    day.book(at(hours=1), client=day.ben, clinician=day.colleague, headers=day.colleague_headers)  # a colleague's
    day.book(at(days=1, hours=2))  # tomorrow
    html = day.today()
    assert re.findall(r'<tr id="appointment-(\d+)"', html) == [str(earlier["id"]), str(later["id"])]
    row = _row(html, later["id"])
    assert '<span class="family">Brown</span>, Ada' in row
    assert "Born Jan 1, 1980" in row
    assert "Individual therapy" in row
    assert re.search(r"Check in<span class=\"visually-hidden\">: Brown, Ada at ", row)
    assert "<title>Today \u2013 clinic</title>" in html  # no client in the title
    # Read as GET /appointments reads them: one appointment.read per row, via the list.
    reads = [(e.resource_id, e.client_id, e.details) for e in _events(day.app, "appointment.read")]
    assert sorted(reads) == sorted(
        (str(a["id"]), day.ada["id"], {"via": "list"}) for a in (earlier, later)
    )


def test_check_in_then_complete_through_the_plain_form_and_with_htmx(day):
    visit = day.book(at(minutes=-10), 60)
    token = day.session.csrf_token
    posted = day.session.client.post(f"/today/appointments/{visit['id']}/check-in", data={"csrf_token": token})
    assert posted.status_code == 303
    assert posted.headers["Location"] == f"/today#appointment-{visit['id']}"
    checked_in = day.appointment(visit["id"])
    assert checked_in["status"] == "checked_in"
    when = clock(datetime.fromisoformat(checked_in["checked_in_at"]), day.zone)
    row = _row(day.today(), visit["id"])
    assert f"Checked in {when}" in row
    assert ">Complete<" in row and ">Check in<" not in row

    swapped = day.session.post(f"/today/appointments/{visit['id']}/complete", headers=HTMX)
    assert swapped.status_code == 200
    body = swapped.get_data(as_text=True).strip()
    assert body.startswith(f'<tr id="appointment-{visit["id"]}"') and body.endswith("</tr>")
    completed = day.appointment(visit["id"])
    assert completed["status"] == "completed"
    assert f"Completed {clock(datetime.fromisoformat(completed['completed_at']), day.zone)}" in body
    assert "row--done" in body and "<form" not in body
    # The same operations as the API's status changes, audited as they are.
    assert [e.details for e in _events(day.app, "appointment.checked_in")] == [{"via": "staff"}]
    assert [e.details for e in _events(day.app, "appointment.completed")] == [{"via": "staff"}]


def test_a_refused_check_in_is_shown_in_the_row_and_changes_nothing(day):
    visit = day.book(at(hours=3))
    swapped = day.session.post(f"/today/appointments/{visit['id']}/check-in", headers=HTMX)
    assert swapped.status_code == 200
    row = swapped.get_data(as_text=True)
    assert "Check-in opens an hour before the start and closes at the end." in row
    assert 'role="alert"' in row and ">Check in<" in row
    assert day.appointment(visit["id"])["status"] == "scheduled"

    reads = len(_events(day.app, "appointment.read"))
    plain = day.session.client.post(f"/today/appointments/{visit['id']}/check-in",
                                     data={"csrf_token": day.session.csrf_token})
    assert plain.status_code == 409
    assert len(_events(day.app, "appointment.read")) == reads + 1  # the page showing it is a page view
    page = plain.get_data(as_text=True)
    assert "Check-in opens an hour before the start" in _row(page, visit["id"])
    assert f'href="#appointment-{visit["id"]}"' in page
    assert day.appointment(visit["id"])["status"] == "scheduled"


def test_an_ended_visit_is_completed_with_the_reason_it_is_recorded_late(day):
    visit = day.book(at(hours=-2), 30)
    row = _row(day.today(), visit["id"])
    assert "Why it is recorded only now" in row and ">Check in<" not in row

    refused = day.session.post(f"/today/appointments/{visit['id']}/complete", headers=HTMX)
    assert refused.status_code == 200
    assert "say why its outcome is recorded only now" in refused.get_data(as_text=True)
    assert 'aria-invalid="true"' in refused.get_data(as_text=True)
    assert day.appointment(visit["id"])["status"] == "scheduled"

    plain = day.session.client.post(f"/today/appointments/{visit['id']}/complete",
                                    data={"csrf_token": day.session.csrf_token})
    assert plain.status_code == 422

    done = day.session.post(f"/today/appointments/{visit['id']}/complete", headers=HTMX,
                            data={"late_entry_reason": "Check-in was forgotten"})
    assert "(late entry)" in done.get_data(as_text=True)
    assert day.appointment(visit["id"])["late_entry"]["reason"] == "Check-in was forgotten"


def test_another_sites_appointment_is_not_found(day, make_site, make_user, login):
    visit = day.book(at(minutes=-5), 30)
    outsider = login(make_user("clinician", sites=[make_site()]))
    response = outsider.post(f"/today/appointments/{visit['id']}/check-in", headers=HTMX)
    assert response.status_code == 404
    assert day.appointment(visit["id"])["status"] == "scheduled"


# --- /today: alerts, reviews and follow-ups --------------------------------------------------------


def test_reviews_due_of_the_clinicians_clients_are_listed_overdue_first(day):
    def plan_due(client: dict[str, Any], headers: dict[str, str], on: date) -> int:
        response = day.http.post(f"/api/v1/clients/{client['id']}/plans", headers=headers,
                                 json={"problems": tree(day.clinician.id)})
        assert response.status_code == 201, response.get_json()
        plan_id = int(response.get_json()["id"])
        with day.app.app_context():
            db.session.get_one(Plan, plan_id).next_review_on = on
            db.session.commit()
        return plan_id

    local = day.local_date()
    due_today = plan_due(day.ada, day.headers, local)
    overdue = plan_due(day.ada, day.headers, local - timedelta(days=3))
    plan_due(day.ben, day.colleague_headers, local - timedelta(days=9))  # the colleague's client
    plan_due(day.ada, day.headers, local + timedelta(days=1))  # not due yet
    html = day.today()
    reviews = html[html.index('id="reviews-heading"'):html.index('id="follow-ups-heading"')]
    assert reviews.count('href="/clients/') == 2
    assert reviews.index("Overdue 3 days") < reviews.index("Due today")
    assert "Okafor" not in reviews
    assert sorted(int(e.resource_id or 0) for e in _events(day.app, "plan.read")) == sorted([due_today, overdue])


def test_follow_ups_due_at_the_site_are_listed_with_their_risk_flags(day):
    def call(name: str, follow_up_at: datetime, flags: list[str]) -> int:
        response = day.http.post("/api/v1/intake-calls", headers=day.headers, json={
            "site_id": day.site.id, "direction": "inbound", "occurred_at": at(hours=-3).isoformat(),
            "caller_name": name, "caller_relation": "self", "callback_phone": "(212) 555-0134",
            "referral_source": "self", "reason": "wants treatment", "substances": ["fentanyl"],
            "risk_flags": flags, "outcome": "callback_requested", "follow_up_at": follow_up_at.isoformat(),
        })
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])

    due = call("Quinn Harlow", at(hours=-1), ["suicidal_ideation"])
    call("Later Caller", at(hours=5), [])
    html = day.today()
    follow_ups = html[html.index('id="follow-ups-heading"'):]
    assert f'<a href="/intake/calls/{due}">Quinn Harlow</a>' in follow_ups
    assert "Thoughts of suicide" in follow_ups  # the intake queue's words for the flag
    assert "Later Caller" not in follow_ups


def test_the_alerts_part_counts_what_is_unacknowledged_and_shows_the_newest(day):
    day.alert(day.clinician, StaffNotificationKind.REVIEW_OVERDUE, title="A treatment plan review is overdue")
    day.alert(day.clinician, client_id=day.ada["id"])
    day.alert(day.colleague, title="Someone else's alert")
    html = day.today()
    alerts = html[html.index('id="alerts-heading"'):html.index('id="reviews-heading"')]
    assert "2 to acknowledge</strong>, 2 unread" in alerts
    assert "Safety flag on a PHQ-9" in alerts and "today__alert--safety" in alerts
    assert "A treatment plan review is overdue" not in alerts  # only the newest
    assert 'href="/alerts"' in alerts
    assert "Someone else" not in html
    # The newest alert names a client: read as GET /staff-notifications reads it.
    assert [e.client_id for e in _events(day.app, "staff_notification.read")] == [day.ada["id"]]


def test_an_empty_day_says_what_would_appear_there(app, make_site, make_user, login):
    session = login(make_user("clinician", sites=[make_site(timezone=midday_zone())]))
    html = session.get("/today").get_data(as_text=True)
    for text in ("You have no appointments today", "No alerts need you.", "No plan reviews are due for your clients.",
                 "No intake follow-ups are due"):
        assert text in html


def test_today_is_the_clinicians_page(day, make_user, login, client):
    intake = login(make_user("intake", sites=[day.site]))
    refused = intake.get("/today")
    assert refused.status_code == 403
    assert "You cannot do this" in refused.get_data(as_text=True)
    assert login(make_user("admin")).get("/today").status_code == 403
    signed_out = client.get("/today")
    assert signed_out.status_code == 303
    assert signed_out.headers["Location"].startswith("/login?next=%2Ftoday")


# --- /alerts ---------------------------------------------------------------------------------


def _alert_row(html: str, alert_id: int) -> str:
    match = re.search(rf'<tr id="alert-{alert_id}".*?</tr>', html, re.S)
    assert match, f"no row of alert {alert_id}"
    return match.group(0)


def test_alerts_list_what_is_to_acknowledge_first_with_a_safety_alerts_next_steps(day):
    safety = day.alert(day.clinician, client_id=day.ada["id"])
    review = day.alert(day.clinician, StaffNotificationKind.REVIEW_OVERDUE, title="A treatment plan review is overdue")
    done = day.alert(day.clinician, StaffNotificationKind.CLIENT_REPLY, title="A client replied to a text reminder")
    assert day.session.post(f"/api/v1/staff-notifications/{done}/acknowledge", json={}).status_code == 200
    response = day.session.get("/alerts")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    to_acknowledge = html[html.index('id="open-heading"'):html.index('id="done-heading"')]
    acknowledged = html[html.index('id="done-heading"'):]
    # The most urgent first: the safety alert before the newer review (the rest newest first).
    assert re.findall(r'<tr id="alert-(\d+)"', to_acknowledge) == [str(safety), str(review)]
    assert re.findall(r'<tr id="alert-(\d+)"', acknowledged) == [str(done)]
    row = _alert_row(html, safety)
    assert ">Safety<" in row and "row--urgent" in row and "Not read yet" in row
    assert "Next steps" in row and "988" in row
    assert f'href="/clients/{day.ada["id"]}"' in row
    assert "Next steps" not in _alert_row(html, review)
    assert "<title>Alerts \u2013 clinic</title>" in html


def test_an_alert_is_marked_read_then_acknowledged_with_a_note(day):
    alert = day.alert(day.clinician, client_id=day.ada["id"])
    read = day.session.post(f"/alerts/{alert}/read", headers=HTMX)
    assert read.status_code == 200
    assert "not acknowledged" in read.get_data(as_text=True) and "Not read yet" not in read.get_data(as_text=True)

    acknowledged = day.session.post(f"/alerts/{alert}/acknowledge", headers=HTMX, data={"note": "Called her; safe"})
    row = acknowledged.get_data(as_text=True)
    assert row.strip().startswith(f'<tr id="alert-{alert}"')
    assert "Acknowledged " in row and "Called her; safe" in row and "<form" not in row
    listed = day.http.get("/api/v1/staff-notifications?acknowledged=false", headers=day.headers).get_json()["items"]
    assert listed == []
    item = day.http.get("/api/v1/staff-notifications", headers=day.headers).get_json()["items"][0]
    assert item["acknowledged_at"] and item["read_at"] and item["acknowledgement_note"] == "Called her; safe"
    events = _events(day.app, "staff_notification.acknowledge")
    assert [(e.client_id, e.resource_id) for e in events] == [(day.ada["id"], str(alert))]


def test_acknowledging_through_the_plain_form_and_a_note_too_long(day):
    alert = day.alert(day.clinician)
    too_long = day.session.client.post(f"/alerts/{alert}/acknowledge",
                                       data={"csrf_token": day.session.csrf_token, "note": "x" * 1001})
    assert too_long.status_code == 422
    page = too_long.get_data(as_text=True)
    assert "There is a problem" in page and f'href="#alert-{alert}-note"' in page
    assert 'value="' + "x" * 1001 + '"' in _alert_row(page, alert)  # what was typed is kept
    swapped = day.session.post(f"/alerts/{alert}/acknowledge", headers=HTMX, data={"note": "x" * 1001})
    assert swapped.status_code == 200 and "Length must be between 1 and 1000." in swapped.get_data(as_text=True)

    plain = day.session.client.post(f"/alerts/{alert}/acknowledge", data={"csrf_token": day.session.csrf_token})
    assert plain.status_code == 303 and plain.headers["Location"] == f"/alerts#alert-{alert}"
    with day.app.app_context():
        row = db.session.get_one(StaffNotification, alert)
        assert row.acknowledged_at is not None and row.acknowledgement_note is None


def test_acknowledging_again_changes_nothing_and_another_users_alert_is_not_found(day):
    alert = day.alert(day.clinician)
    first = day.http.post(f"/api/v1/staff-notifications/{alert}/acknowledge", headers=day.headers,
                          json={"note": "Seen"}).get_json()
    again = day.http.post(f"/api/v1/staff-notifications/{alert}/acknowledge", headers=day.headers).get_json()
    assert again["acknowledged_at"] == first["acknowledged_at"] and again["acknowledgement_note"] == "Seen"
    theirs = day.alert(day.colleague)
    assert day.session.post(f"/alerts/{theirs}/acknowledge", headers=HTMX).status_code == 404
    assert day.session.post(f"/alerts/{theirs}/read").status_code == 404
    with day.app.app_context():
        assert db.session.get_one(StaffNotification, theirs).acknowledged_at is None


def test_every_role_has_its_alerts_page(day, make_user, login, client):
    for role, sites in (("intake", [day.site]), ("admin", [])):
        user = make_user(role, sites=sites)
        day.alert(user, StaffNotificationKind.CLIENT_REPLY, title=f"For the {role}")
        html = login(user).get("/alerts").get_data(as_text=True)
        assert f"For the {role}" in html
    assert client.get("/alerts").status_code == 303


# --- CSRF and the reads of an alert shown again --------------------------------------------------


def test_today_and_alert_forms_without_the_csrf_token_are_refused_and_change_nothing(day):
    visit = day.book(at(minutes=-5), 30)
    alert = day.alert(day.clinician, client_id=day.ada["id"])
    checked = day.session.client.post(f"/today/appointments/{visit['id']}/check-in", headers={"Accept": "text/html"})
    assert checked.status_code == 403 and checked.mimetype == "text/html"
    assert day.appointment(visit["id"])["status"] == "scheduled"
    acknowledged = day.session.client.post(f"/alerts/{alert}/acknowledge", data={"note": "seen"},
                                           headers={"Accept": "text/html"})
    assert acknowledged.status_code == 403
    with day.app.app_context():
        row = db.session.get_one(StaffNotification, alert)
        assert row.acknowledged_at is None and row.read_at is None


def test_an_alert_about_a_client_shown_again_with_its_error_is_an_audited_read(day):
    alert = day.alert(day.clinician, client_id=day.ada["id"])
    before = len(_events(day.app, "staff_notification.read"))
    swapped = day.session.post(f"/alerts/{alert}/acknowledge", headers=HTMX, data={"note": "x" * 1001})
    assert swapped.status_code == 200 and "Length must be between 1 and 1000." in swapped.get_data(as_text=True)
    reads = _events(day.app, "staff_notification.read")[before:]
    assert [(event.client_id, event.resource_id) for event in reads] == [(day.ada["id"], str(alert))]
