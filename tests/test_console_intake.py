"""The intake pages of the staff console: the queue, logging a call, the call, converting and linking a caller."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.clients.models import Client
from clinic.core.time import start_of_day
from clinic.extensions import db
from clinic.intake import pages
from clinic.intake.models import IntakeCall, RiskFlag

ZONE = "America/New_York"


def _now() -> datetime:
    return datetime.now(UTC)


def _local_today() -> Any:
    return _now().astimezone(ZoneInfo(ZONE)).date()


def call_body(site_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "site_id": site_id,
        "direction": "inbound",
        "occurred_at": (_now() - timedelta(hours=1)).isoformat(),
        "caller_name": "Sam Ortiz",
        "caller_relation": "self",
        "callback_phone": "(212) 555-0134",
        "referral_source": "emergency department",
        "reason": "wants to start buprenorphine",
        "substances": ["fentanyl"],
        "risk_flags": [],
        "outcome": "callback_requested",
    }
    body.update(overrides)
    return body


def form_body(site_id: int, **overrides: Any) -> dict[str, Any]:
    """The new-call form as a browser posts it (the site's local date and time)."""
    local = (_now() - timedelta(minutes=30)).astimezone(ZoneInfo(ZONE))
    body: dict[str, Any] = {
        "site_id": str(site_id),
        "direction": "inbound",
        "occurred_date": local.date().isoformat(),
        "occurred_time": local.strftime("%H:%M"),
        "caller_name": "Robin Vega",
        "caller_relation": "self",
        "callback_phone": "(646) 555-0199",
        "referral_source": "family doctor",
        "reason": "wants help with fentanyl use",
        "substances": "fentanyl,  heroin ",
        "outcome": "callback_requested",
        "follow_up_date": "",
        "follow_up_time": "",
        "notes": "",
    }
    body.update(overrides)
    return body


@pytest.fixture
def desk(app, make_site, make_user, login, bearer):
    site, other_site = make_site(timezone=ZONE), make_site(timezone=ZONE)
    coordinator = make_user("intake", sites=[site], name="Casey Intake")
    outsider = make_user("intake", sites=[other_site])
    return {
        "site": site,
        "other_site": other_site,
        "session": login(coordinator),
        "outsider": login(outsider),
        "headers": bearer(coordinator),
        "outsider_headers": bearer(outsider),
        "coordinator": coordinator,
    }


def _log(client, desk, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/intake-calls", json=call_body(desk["site"].id, **overrides), headers=desk["headers"])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("</section>", start)
    return html[start:end]


def _call(app, call_id: int) -> IntakeCall:
    with app.app_context():
        found = db.session.get(IntakeCall, call_id)
        assert found is not None
        db.session.expunge(found)
        return found


def _actions(app, resource: str, resource_id: int | str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.resource == resource, AuditEvent.resource_id == str(resource_id))
            .order_by(AuditEvent.id)
        ))


# --- the queue -------------------------------------------------------------------------------------


def test_signed_out_the_intake_page_asks_to_sign_in(client):
    response = client.get("/intake")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=%2Fintake"


def test_the_queue_shows_follow_ups_due_tagged_in_words_and_the_log_with_risk_first(app, client, desk):
    zone_today = start_of_day(_local_today(), ZONE)
    plain = _log(client, desk, caller_name="Newest Plain", occurred_at=(_now() - timedelta(minutes=5)).isoformat(),
                 outcome="info_only")
    risky = _log(client, desk, caller_name="Older Risky", occurred_at=(_now() - timedelta(days=2)).isoformat(),
                 risk_flags=["recent_overdose"], outcome="info_only")
    overdue = _log(client, desk, caller_name="Late Caller", occurred_at=(_now() - timedelta(days=3)).isoformat(),
                   follow_up_at=(zone_today - timedelta(hours=15)).isoformat())
    due = _log(client, desk, caller_name="Today Caller", occurred_at=(_now() - timedelta(days=3, hours=1)).isoformat(),
               follow_up_at=zone_today.isoformat())
    later = _log(client, desk, caller_name="Next Week", follow_up_at=(_now() + timedelta(days=7)).isoformat())

    response = desk["session"].get("/intake")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<title>Intake \u2013 clinic</title>" in html

    queue = _section(html, "follow-ups-title")
    assert queue.index("Late Caller") < queue.index("Today Caller")  # the longest overdue first
    assert 'tag--red">Overdue<' in queue and 'tag--orange">Due today<' in queue
    assert "Next Week" not in queue and "Newest Plain" not in queue
    assert "2 follow-ups due" in queue

    log = _section(html, "log-title")
    assert log.index("Older Risky") < log.index("Newest Plain")  # risk first, as the API orders
    assert 'class="row--urgent"' in log and "Recent overdose" in log
    assert 'tag--blue">Upcoming<' in log
    # Each row handed out is audited as the API's list is.
    assert "intake_call.read" in _actions(app, "intake_call", plain["id"])
    assert _actions(app, "intake_call", overdue["id"]).count("intake_call.read") == 2  # queue and log
    assert risky and due and later


def test_the_log_filters_by_outcome_and_pages_with_next(app, client, desk, monkeypatch):
    monkeypatch.setattr(pages, "LOG_LIMIT", 2)
    for n in range(3):
        _log(client, desk, caller_name=f"Waiting {n}", outcome="waitlisted",
             occurred_at=(_now() - timedelta(hours=n + 1)).isoformat())
    _log(client, desk, caller_name="Referred One", outcome="referred_out")
    html = desk["session"].get("/intake?outcome=waitlisted").get_data(as_text=True)
    log = _section(html, "log-title")
    assert "Waiting 0" in log and "Waiting 1" in log and "Waiting 2" not in log and "Referred One" not in log
    next_url = re.search(r'href="([^"]+)" rel="next"', log)
    assert next_url is not None
    second = desk["session"].get(next_url.group(1).replace("&amp;", "&")).get_data(as_text=True)
    log = _section(second, "log-title")
    assert "Waiting 2" in log and "Waiting 0" not in log and "Referred One" not in log


def test_a_date_filter_reads_the_sites_days_and_a_bad_one_is_shown_beside_the_field(client, desk):
    _log(client, desk, caller_name="Old Call", occurred_at=(_now() - timedelta(days=10)).isoformat())
    today = _local_today().isoformat()
    html = desk["session"].get(f"/intake?from={today}&to={today}").get_data(as_text=True)
    assert "Old Call" not in _section(html, "log-title")
    assert "No calls match these filters." in html

    response = desk["session"].get(f"/intake?from={today}&to={(_local_today() - timedelta(days=1)).isoformat()}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is problem" not in html and "There is a problem" in html
    assert 'id="to-error"' in html and "Must not be before from." in html


def test_empty_states_say_what_would_appear_and_how_to_add_one(desk):
    html = desk["session"].get("/intake").get_data(as_text=True)
    assert "No follow-ups are due." in html
    assert "No calls logged yet." in html and "Log a call" in html


def test_the_queue_shows_only_the_callers_sites(client, desk):
    _log(client, desk, caller_name="Ours Only")
    html = desk["outsider"].get("/intake").get_data(as_text=True)
    assert "Ours Only" not in html


# --- logging a call ---------------------------------------------------------------------------------


def test_the_new_call_form_offers_every_risk_flag_as_a_checkbox_with_next_steps(desk):
    response = desk["session"].get("/intake/calls/new")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for flag in RiskFlag:
        assert f'name="risk_flags" type="checkbox" value="{flag.value}"' in html
    assert "<legend" in html and "Risks the caller mentioned" in html
    # Beside the two urgent flags: the steps to take (a hint tied to the checkbox, and the full list).
    assert 'aria-describedby="risk_flags-suicidal_ideation-hint"' in html
    assert "988 Suicide &amp; Crisis Lifeline" in html and "warm handoff" in html
    assert "naloxone" in html and "same-day assessment" in html and "clinician on duty" in html
    assert 'class="notice notice--danger risk-steps"' in html
    assert ">Record call</button>" in html


def test_logging_a_risk_flagged_call_shows_what_to_do_next_on_the_call(app, desk):
    response = desk["session"].post("/intake/calls/new", data=form_body(
        desk["site"].id, risk_flags=["suicidal_ideation", "injection_use"],
        follow_up_date=(_local_today() + timedelta(days=1)).isoformat(), follow_up_time="09:30",
    ))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    location = response.headers["Location"]
    call_id = int(re.search(r"/intake/calls/(\d+)\?logged=1$", location).group(1))
    call = _call(app, call_id)
    assert call.callback_phone == "+16465550199"
    assert call.substances == ["fentanyl", "heroin"]
    assert call.risk_flags == ["injection_use", "suicidal_ideation"] and call.has_risk_flags
    local_follow_up = call.follow_up_at.astimezone(ZoneInfo(ZONE))
    assert (local_follow_up.hour, local_follow_up.minute) == (9, 30)  # the site's wall clock

    html = desk["session"].get(location).get_data(as_text=True)
    assert "The call was recorded." in html
    assert "notice--danger" in html and "Thoughts of suicide: what to do now" in html
    assert "Stay on the line." in html and "988" in html and "Tell the clinician on duty" in html
    assert "Recent overdose: what to do now" not in html
    assert "Injects drugs" in html
    assert "Robin Vega" not in html.split("<title>")[1].split("</title>")[0]


def test_a_recent_overdose_shows_naloxone_and_same_day_assessment(app, client, desk):
    call = _log(client, desk, risk_flags=["recent_overdose"])
    html = desk["session"].get(f"/intake/calls/{call['id']}").get_data(as_text=True)
    assert "Recent overdose: what to do now" in html
    assert "naloxone" in html and "emergency care" in html and "same-day assessment" in html


def test_a_form_with_mistakes_shows_them_beside_the_fields_and_keeps_what_was_typed(app, desk):
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(IntakeCall))
    body = form_body(desk["site"].id, callback_phone="555-12", caller_name="Kept Name", risk_flags=["pregnant"])
    del body["outcome"]
    response = desk["session"].post("/intake/calls/new", data=body)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert '<a href="#callback_phone">Phone number to call back:' in html
    assert 'id="callback_phone-error"' in html and 'id="outcome-error"' in html
    assert 'value="Kept Name"' in html and 'value="555-12"' in html
    assert 'value="pregnant" checked' in html
    assert 'value="fentanyl,  heroin "' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IntakeCall)) == before


def test_a_call_in_the_future_is_refused_by_the_operation_beside_its_date(desk):
    tomorrow = (_local_today() + timedelta(days=1)).isoformat()
    response = desk["session"].post("/intake/calls/new", data=form_body(desk["site"].id, occurred_date=tomorrow))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="occurred_date-error"' in html and "Must not be in the future." in html


def test_a_date_without_its_time_is_named(desk):
    response = desk["session"].post("/intake/calls/new", data=form_body(
        desk["site"].id, follow_up_date=_local_today().isoformat(), follow_up_time=""))
    assert response.status_code == 422
    assert "Enter the time as well as the date." in response.get_data(as_text=True)


def test_a_form_without_the_csrf_token_is_refused(app, desk):
    session = desk["session"]
    response = session.client.post("/intake/calls/new", data=form_body(desk["site"].id))
    assert response.status_code == 403
    assert "text/html" in response.content_type


# --- the call ----------------------------------------------------------------------------------------


def test_the_call_page_is_audited_like_the_api_read_and_out_of_scope_is_not_found(app, client, desk):
    call = _log(client, desk)
    response = desk["session"].get(f"/intake/calls/{call['id']}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "Sam Ortiz" in html and "(212) 555-0134" in html and "Asked to be called back" in html
    assert "Register the caller as a client" in html and "Record call back" in html
    assert _actions(app, "intake_call", call["id"]) == ["intake_call.create", "intake_call.read"]

    outside = desk["outsider"].get(f"/intake/calls/{call['id']}")
    assert outside.status_code == 404
    assert "Page not found" in outside.get_data(as_text=True)
    assert "Sam Ortiz" not in outside.get_data(as_text=True)
    assert desk["outsider"].get(f"/intake/calls/{call['id']}/convert").status_code == 404
    assert desk["outsider"].post(f"/intake/calls/{call['id']}/follow-up", data={"outcome": "info_only"}).status_code == 404
    assert _actions(app, "intake_call", call["id"])[-1] == "access.denied"


def test_recording_a_call_back_in_the_queue_row_swaps_the_row(app, client, desk):
    call = _log(client, desk, follow_up_at=(_now() - timedelta(hours=1)).isoformat())
    url = f"/intake/calls/{call['id']}/follow-up"
    htmx = {"HX-Request": "true"}
    refused = desk["session"].post(url, data={"return_to": "queue"}, headers=htmx)
    assert refused.status_code == 200  # htmx swaps only a 2xx answer: the row with its error
    assert "Choose what came of the call back." in refused.get_data(as_text=True)
    assert _call(app, call["id"]).follow_up_at is not None

    response = desk["session"].post(url, data={"return_to": "queue", "outcome": "assessment_scheduled"}, headers=htmx)
    assert response.status_code == 200
    row = response.get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="follow-up-{call["id"]}" class="row--done"')
    assert "Call back recorded: Assessment booked." in row and "No further follow-up." in row
    assert f'id="follow-up-action-{call["id"]}"' in row  # htmx puts the focus on the status
    updated = _call(app, call["id"])
    assert updated.outcome.value == "assessment_scheduled" and updated.follow_up_at is None
    assert "intake_call.update" in _actions(app, "intake_call", call["id"])


def test_a_next_follow_up_is_kept_and_the_plain_form_returns_to_the_queue(app, client, desk):
    call = _log(client, desk, follow_up_at=(_now() - timedelta(hours=1)).isoformat())
    tomorrow = (_local_today() + timedelta(days=1)).isoformat()
    response = desk["session"].post(f"/intake/calls/{call['id']}/follow-up", data={
        "return_to": "queue", "outcome": "no_answer", "follow_up_date": tomorrow, "follow_up_time": "10:00",
    })
    assert response.status_code == 303
    assert response.headers["Location"] == f"/intake?done={call['id']}"
    updated = _call(app, call["id"])
    assert updated.outcome.value == "no_answer"
    assert updated.follow_up_at.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M") == f"{tomorrow} 10:00"
    html = desk["session"].get(response.headers["Location"]).get_data(as_text=True)
    assert "The call back was recorded." in html


def test_closing_a_follow_up_from_the_call_page(app, client, desk):
    call = _log(client, desk, follow_up_at=(_now() + timedelta(days=2)).isoformat())
    response = desk["session"].post(f"/intake/calls/{call['id']}/follow-up", data={"close": "1"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/intake/calls/{call['id']}?closed=1"
    assert _call(app, call["id"]).follow_up_at is None
    assert _call(app, call["id"]).outcome.value == "callback_requested"


def test_a_call_back_refused_on_the_call_page_shows_the_error_there(client, desk):
    call = _log(client, desk)
    response = desk["session"].post(f"/intake/calls/{call['id']}/follow-up", data={
        "outcome": "info_only", "follow_up_date": "2026-03-08", "follow_up_time": "02:30",  # skipped in New York
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="follow_up_date-error"' in html and "does not exist" in html


def test_correcting_a_call_adds_a_risk_flag_and_clears_the_follow_up(app, client, desk):
    call = _log(client, desk, follow_up_at=(_now() + timedelta(days=1)).isoformat(), notes="first")
    form = desk["session"].get(f"/intake/calls/{call['id']}/edit").get_data(as_text=True)
    assert 'value="Sam Ortiz"' in form and 'value="fentanyl"' in form and ">first</textarea>" in form
    local = datetime.fromisoformat(call["occurred_at"]).astimezone(ZoneInfo(ZONE))
    body = form_body(desk["site"].id, caller_name="Sam Ortiz", occurred_date=local.date().isoformat(),
                     occurred_time=local.strftime("%H:%M"), risk_flags=["withdrawal_now"], notes="")
    del body["site_id"]
    response = desk["session"].post(f"/intake/calls/{call['id']}/edit", data=body)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    updated = _call(app, call["id"])
    assert updated.risk_flags == ["withdrawal_now"] and updated.has_risk_flags
    assert updated.follow_up_at is None and updated.notes is None

    blank = desk["session"].post(f"/intake/calls/{call['id']}/edit", data={**body, "caller_name": "  "})
    assert blank.status_code == 422
    assert "Must not be blank." in blank.get_data(as_text=True)


# --- converting and linking ----------------------------------------------------------------------------


def _register(client, desk, **fields: Any) -> dict[str, Any]:
    body = {"site_id": desk["site"].id, "first_name": "Ana", "last_name": "Lima", "date_of_birth": "1990-03-04",
            **fields}
    response = client.post("/api/v1/clients", json=body, headers=desk["headers"])
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _count_clients(app) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Client)) or 0)


def test_the_convert_form_starts_from_the_callers_own_details(client, desk):
    call = _log(client, desk, caller_name="Ana Maria Lima")
    html = desk["session"].get(f"/intake/calls/{call['id']}/convert").get_data(as_text=True)
    assert 'value="Ana"' in html and 'value="Maria Lima"' in html and 'value="(212) 555-0134"' in html
    assert ">Register client</button>" in html


def test_a_likely_duplicate_is_shown_and_this_is_the_same_person_links_the_call(app, client, desk):
    existing = _register(client, desk)
    call = _log(client, desk, caller_name="Ana Lima", callback_phone="(917) 555-0101")
    clients_before = _count_clients(app)
    response = desk["session"].post(f"/intake/calls/{call['id']}/convert", data={
        "first_name": "ana", "last_name": "LIMA", "date_of_birth": "1990-03-04", "preferred_language": "en",
    })
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Is the caller already a client?" in html
    table = html[html.index("<table"):html.index("</table>")]
    assert "<th scope=\"col\">Name</th>" in table and "Date of birth" in table and "MRN" in table
    assert existing["mrn"] in table and "LIMA</span>, Ana" in table and "Mar 4, 1990" in table
    assert f'name="client_id" value="{existing["id"]}"' in table and "This is the same person" in table
    assert "Register as a new client" in html
    assert _count_clients(app) == clients_before
    assert _call(app, call["id"]).client_id is None
    # Showing a candidate is a read of their record, kept although the conversion was refused.
    assert "client.read" in _actions(app, "client", existing["id"])

    linked = desk["session"].post(f"/intake/calls/{call['id']}/link", data={"client_id": str(existing["id"])})
    assert linked.status_code == 303
    assert linked.headers["Location"] == f"/intake/calls/{call['id']}?linked=1"
    assert _call(app, call["id"]).linked_client_id == existing["id"]
    page = desk["session"].get(linked.headers["Location"]).get_data(as_text=True)
    assert "The call is linked to the client" in page
    assert existing["mrn"] in page
    assert f'href="/clients/{existing["id"]}"' in page
    assert f'href="/appointments/new?client_id={existing["id"]}&amp;kind=assessment"' in page
    assert "Register the caller as a client" not in page

    again = desk["session"].post(f"/intake/calls/{call['id']}/link", data={"client_id": str(existing["id"])})
    assert again.status_code == 409
    assert "already linked" in again.get_data(as_text=True)


def test_register_as_a_new_client_despite_the_candidates(app, client, desk):
    _register(client, desk)
    call = _log(client, desk, caller_name="Ana Lima")
    before = _count_clients(app)
    response = desk["session"].post(f"/intake/calls/{call['id']}/convert", data={
        "first_name": "Ana", "last_name": "Lima", "date_of_birth": "1990-03-04", "preferred_language": "en",
        "allow_duplicate": "1",
    })
    assert response.status_code == 303
    assert response.headers["Location"] == f"/intake/calls/{call['id']}?converted=1"
    assert _count_clients(app) == before + 1
    converted = _call(app, call["id"])
    assert converted.client_id is not None
    page = desk["session"].get(response.headers["Location"]).get_data(as_text=True)
    assert "registered as a client" in page
    assert f"/appointments/new?client_id={converted.client_id}&amp;kind=assessment" in page

    again = desk["session"].post(f"/intake/calls/{call['id']}/convert", data={
        "first_name": "Ana", "last_name": "Lima", "date_of_birth": "1990-03-04", "allow_duplicate": "1",
    })
    assert again.status_code == 409
    assert "already converted" in again.get_data(as_text=True)
    assert "already converted" in desk["session"].get(f"/intake/calls/{call['id']}/convert").get_data(as_text=True)


def test_a_new_client_without_candidates_is_registered_at_once(app, client, desk):
    call = _log(client, desk, caller_name="Unique Person", callback_phone="(718) 555-0142")
    response = desk["session"].post(f"/intake/calls/{call['id']}/convert", data={
        "first_name": "Unique", "last_name": "Person", "date_of_birth": "1985-07-01", "phone": "(718) 555-0142",
        "preferred_language": "es",
    })
    assert response.status_code == 303
    with app.app_context():
        created = db.session.get(Client, _call(app, call["id"]).client_id)
        assert created is not None
        assert (created.phone, created.preferred_language, created.status.value) == ("+17185550142", "es", "prospective")


def test_convert_form_errors_are_beside_the_fields_and_the_review_button_keeps_the_values(app, client, desk):
    call = _log(client, desk)
    response = desk["session"].post(f"/intake/calls/{call['id']}/convert", data={
        "first_name": "Kept", "last_name": "", "date_of_birth": "2999-01-01",
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="last_name-error"' in html and 'id="date_of_birth-error"' in html and 'value="Kept"' in html
    review = desk["session"].post(f"/intake/calls/{call['id']}/convert", data={
        "first_name": "Kept", "last_name": "Again", "date_of_birth": "1990-01-01", "review": "1",
    })
    assert review.status_code == 200
    assert 'value="Again"' in review.get_data(as_text=True)
    assert _call(app, call["id"]).client_id is None


def test_linking_to_a_client_of_another_site_is_the_not_found_page(app, client, desk):
    stranger = client.post("/api/v1/clients", headers=desk["outsider_headers"], json={
        "site_id": desk["other_site"].id, "first_name": "Far", "last_name": "Away", "date_of_birth": "1970-01-01",
    }).get_json()
    call = _log(client, desk)
    response = desk["session"].post(f"/intake/calls/{call['id']}/link", data={"client_id": str(stranger["id"])},
                                    headers={"Accept": "text/html"})
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Page not found" in html and "Away" not in html and "Far" not in html
    assert _call(app, call["id"]).linked_client_id is None
    assert "access.denied" in _actions(app, "client", stranger["id"])  # the attempt is in the audit trail
    for junk in ("\u00b2", "9" * 5000, "-1", "abc"):
        refused = desk["session"].post(f"/intake/calls/{call['id']}/link", data={"client_id": junk})
        assert refused.status_code in (404, 422), junk
    assert _call(app, call["id"]).linked_client_id is None


def test_a_coordinator_of_two_sites_sees_the_current_site_or_all_of_them(client, make_site, make_user, login, bearer):
    first, second = make_site(timezone=ZONE), make_site(timezone="America/Chicago")
    both = make_user("intake", sites=[first, second])
    headers = bearer(both)
    for site, name in ((first, "First Site Caller"), (second, "Second Site Caller")):
        response = client.post("/api/v1/intake-calls", json=call_body(site.id, caller_name=name), headers=headers)
        assert response.status_code == 201
    session = login(both)
    current = session.get("/intake").get_data(as_text=True)
    assert "First Site Caller" in current and "Second Site Caller" not in current
    chosen = session.get(f"/intake?site_id={second.id}").get_data(as_text=True)
    assert "Second Site Caller" in chosen and "First Site Caller" not in chosen
    assert "CST" in chosen or "CDT" in chosen  # the site's own clock
    every = session.get("/intake?site_id=all").get_data(as_text=True)
    assert "First Site Caller" in every and "Second Site Caller" in every and second.name in every
    form = session.get("/intake/calls/new").get_data(as_text=True)
    assert '<select class="select" id="site_id" name="site_id"' in form


# --- scope, junk and the reads of a call shown again ---------------------------------------------


def _calls(app) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(IntakeCall)) or 0)


def test_another_sites_id_in_a_filter_or_a_form_is_the_not_found_page(app, client, desk):
    _log(client, desk, caller_name="Kept Quiet")
    other = desk["other_site"].id
    listed = desk["session"].get(f"/intake?site_id={other}", headers={"Accept": "text/html"})
    assert listed.status_code == 404 and "Kept Quiet" not in listed.get_data(as_text=True)
    before = _calls(app)
    logged = desk["session"].post("/intake/calls/new", data=form_body(other), headers={"Accept": "text/html"})
    assert logged.status_code == 404
    assert "Page not found" in logged.get_data(as_text=True)
    assert _calls(app) == before


@pytest.mark.parametrize("junk", ["\u00b2", "9" * 5000, "-1", "abc"], ids=["superscript", "huge", "negative", "text"])
def test_ids_that_are_not_numbers_never_break_the_intake_pages(app, client, desk, junk):
    call = _log(client, desk)
    assert desk["session"].get("/intake", query_string={"site_id": junk}).status_code == 404
    assert desk["session"].get("/intake", query_string={"done": junk}).status_code == 200
    before = _calls(app)
    assert desk["session"].post("/intake/calls/new", data=form_body(junk)).status_code == 404
    assert _calls(app) == before
    linked = desk["session"].post(f"/intake/calls/{call['id']}/link", data={"client_id": junk})
    assert linked.status_code in (404, 422)


def test_a_call_shown_again_with_the_forms_errors_is_an_audited_read(app, client, desk):
    call = _log(client, desk, follow_up_at=(_now() - timedelta(hours=1)).isoformat())
    url = f"/intake/calls/{call['id']}"

    def reads() -> int:
        return _actions(app, "intake_call", call["id"]).count("intake_call.read")

    shown = reads()
    refused = desk["session"].post(f"{url}/follow-up", data={})
    assert refused.status_code == 422 and "Sam Ortiz" in refused.get_data(as_text=True)
    assert reads() == shown + 1
    row = desk["session"].post(f"{url}/follow-up", data={"return_to": "queue"}, headers={"HX-Request": "true"})
    assert row.status_code == 200 and "Sam Ortiz" in row.get_data(as_text=True)
    assert reads() == shown + 2
    future = (_local_today() + timedelta(days=3)).isoformat()
    corrected = desk["session"].post(f"{url}/edit", data=form_body(desk["site"].id, occurred_date=future))
    assert corrected.status_code == 422 and "Sam Ortiz" in corrected.get_data(as_text=True)
    assert reads() == shown + 3
    unchanged = _call(app, call["id"])
    assert unchanged.caller_name == "Sam Ortiz" and unchanged.occurred_at < _now()
    converting = desk["session"].post(f"{url}/convert", data={"first_name": "Sam"})
    assert converting.status_code == 422
    assert reads() == shown + 4
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Client)) == 0
