"""The intake call log as intake coordinators and clinicians use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.extensions import db
from clinic.intake.models import IntakeCall


def _iso(dt: datetime) -> str:
    return dt.isoformat()


NOW = datetime.now(UTC)


def call_body(site_id: int, **overrides):
    body = {
        "site_id": site_id,
        "direction": "inbound",
        "occurred_at": _iso(NOW - timedelta(hours=1)),
        "caller_name": "Sam Ortiz",
        "caller_relation": "self",
        "callback_phone": "(212) 555-0134",
        "referral_source": "emergency department",
        "reason": "wants to start buprenorphine",
        "substances": ["fentanyl", "heroin"],
        "risk_flags": [],
        "outcome": "assessment_scheduled",
    }
    body.update(overrides)
    return body


@pytest.fixture
def front_desk(make_site, make_user, bearer):
    site, other_site = make_site(), make_site()
    coordinator = make_user("intake", sites=[site])
    outsider = make_user("intake", sites=[other_site])
    return {
        "site": site,
        "other_site": other_site,
        "coordinator": coordinator,
        "headers": bearer(coordinator),
        "outsider_headers": bearer(outsider),
    }


def test_logging_a_call_stores_the_phone_in_e164(client, front_desk):
    response = client.post("/api/v1/intake-calls", json=call_body(front_desk["site"].id), headers=front_desk["headers"])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["callback_phone"] == "+12125550134"
    assert body["substances"] == ["fentanyl", "heroin"]
    assert body["client_id"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("callback_phone", "555-12"),
        ("direction", "sideways"),
        ("caller_relation", "neighbour"),
        ("outcome", "maybe"),
        ("risk_flags", ["bored"]),
        ("occurred_at", _iso(NOW + timedelta(days=1))),
        ("occurred_at", "2026-03-08T02:30:00"),  # the site's local time, skipped by the clocks in New York
        ("caller_name", "   "),
    ],
)
def test_bad_fields_are_422_naming_the_field_and_nothing_is_written(app, client, front_desk, field, value):
    response = client.post(
        "/api/v1/intake-calls", json=call_body(front_desk["site"].id, **{field: value}), headers=front_desk["headers"]
    )
    assert response.status_code == 422
    assert any(key == field or key.startswith(field + ".") for key in response.get_json()["errors"])
    with app.app_context():
        assert db.session.scalars(select(IntakeCall)).all() == []


def test_a_call_for_a_site_that_is_not_yours_is_refused(client, front_desk):
    response = client.post(
        "/api/v1/intake-calls", json=call_body(front_desk["other_site"].id), headers=front_desk["headers"]
    )
    assert response.status_code == 422
    assert "site_id" in response.get_json()["errors"]


def test_calls_with_risk_flags_sort_first_then_newest(client, front_desk):
    site, headers = front_desk["site"].id, front_desk["headers"]
    ids = {}
    for name, hours_ago, flags in [
        ("old-risk", 30, ["recent_overdose"]),
        ("newest", 1, []),
        ("older", 5, []),
        ("new-risk", 2, ["pregnant", "withdrawal_now"]),
    ]:
        ids[name] = client.post(
            "/api/v1/intake-calls",
            headers=headers,
            json=call_body(
                site, caller_name=name, occurred_at=_iso(NOW - timedelta(hours=hours_ago)), risk_flags=flags
            ),
        ).get_json()["id"]
    listed = client.get("/api/v1/intake-calls", headers=headers).get_json()["items"]
    assert [c["caller_name"] for c in listed] == ["new-risk", "old-risk", "newest", "older"]
    # Keyset pagination keeps that order across pages.
    first = client.get("/api/v1/intake-calls?limit=3", headers=headers).get_json()
    second = client.get(f"/api/v1/intake-calls?limit=3&cursor={first['next_cursor']}", headers=headers).get_json()
    assert [c["caller_name"] for c in first["items"] + second["items"]] == ["new-risk", "old-risk", "newest", "older"]


def test_follow_up_queue_lists_due_calls_not_yet_converted(client, front_desk):
    site, headers = front_desk["site"].id, front_desk["headers"]
    due = client.post(
        "/api/v1/intake-calls",
        headers=headers,
        json=call_body(
            site, caller_name="due", outcome="callback_requested", follow_up_at=_iso(NOW - timedelta(minutes=5))
        ),
    ).get_json()
    client.post(
        "/api/v1/intake-calls",
        headers=headers,
        json=call_body(
            site, caller_name="later", outcome="callback_requested", follow_up_at=_iso(NOW + timedelta(days=1))
        ),
    )
    client.post("/api/v1/intake-calls", headers=headers, json=call_body(site, caller_name="none"))
    converted = client.post(
        "/api/v1/intake-calls",
        headers=headers,
        json=call_body(site, caller_name="converted", follow_up_at=_iso(NOW - timedelta(hours=2))),
    ).get_json()
    client.post(
        f"/api/v1/intake-calls/{converted['id']}/convert",
        headers=headers,
        json={"first_name": "Con", "last_name": "Verted", "date_of_birth": "1990-01-01"},
    )
    queue = client.get("/api/v1/intake-calls?follow_up_due=true", headers=headers).get_json()["items"]
    assert [c["id"] for c in queue] == [due["id"]]


def test_filters_by_outcome_and_time(client, front_desk):
    site, headers = front_desk["site"].id, front_desk["headers"]
    client.post(
        "/api/v1/intake-calls",
        headers=headers,
        json=call_body(site, outcome="waitlisted", occurred_at=_iso(NOW - timedelta(days=3))),
    )
    client.post("/api/v1/intake-calls", headers=headers, json=call_body(site, outcome="referred_out"))
    waitlisted = client.get("/api/v1/intake-calls?outcome=waitlisted", headers=headers).get_json()["items"]
    assert [c["outcome"] for c in waitlisted] == ["waitlisted"]
    since = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = client.get(f"/api/v1/intake-calls?from={since}", headers=headers).get_json()["items"]
    assert [c["outcome"] for c in recent] == ["referred_out"]


def test_out_of_site_calls_are_404_and_unchanged(app, client, front_desk):
    call = client.post(
        "/api/v1/intake-calls", headers=front_desk["headers"], json=call_body(front_desk["site"].id)
    ).get_json()
    other = front_desk["outsider_headers"]
    assert client.get(f"/api/v1/intake-calls/{call['id']}", headers=other).status_code == 404
    assert client.patch(f"/api/v1/intake-calls/{call['id']}", headers=other, json={"notes": "x"}).status_code == 404
    assert client.get("/api/v1/intake-calls", headers=other).get_json()["items"] == []
    with app.app_context():
        assert db.session.get(IntakeCall, call["id"]).notes is None


def test_patch_updates_fields_but_never_site_or_link(client, front_desk):
    headers = front_desk["headers"]
    call = client.post("/api/v1/intake-calls", headers=headers, json=call_body(front_desk["site"].id)).get_json()
    patched = client.patch(
        f"/api/v1/intake-calls/{call['id']}",
        headers=headers,
        json={"notes": "called back", "risk_flags": ["injection_use"]},
    )
    assert patched.status_code == 200
    assert patched.get_json()["risk_flags"] == ["injection_use"]
    for field, value in [("site_id", front_desk["other_site"].id), ("client_id", 1), ("id", 999)]:
        refused = client.patch(f"/api/v1/intake-calls/{call['id']}", headers=headers, json={field: value})
        assert refused.status_code == 422
        assert field in refused.get_json()["errors"]
    again = client.get(f"/api/v1/intake-calls/{call['id']}", headers=headers).get_json()
    assert (again["site_id"], again["client_id"], again["id"]) == (front_desk["site"].id, None, call["id"])


def test_converting_a_call_makes_a_linked_prospective_client_once(client, front_desk):
    headers = front_desk["headers"]
    call = client.post("/api/v1/intake-calls", headers=headers, json=call_body(front_desk["site"].id)).get_json()
    converted = client.post(
        f"/api/v1/intake-calls/{call['id']}/convert",
        headers=headers,
        json={"first_name": "Sam", "last_name": "Ortiz", "date_of_birth": "1988-04-12"},
    )
    assert converted.status_code == 201, converted.get_json()
    new_client = converted.get_json()
    assert new_client["status"] == "prospective"
    assert new_client["site_id"] == front_desk["site"].id
    assert new_client["phone"] == "+12125550134"  # the caller called about themself
    assert client.get(f"/api/v1/intake-calls/{call['id']}", headers=headers).get_json()["client_id"] == new_client["id"]
    again = client.post(
        f"/api/v1/intake-calls/{call['id']}/convert",
        headers=headers,
        json={"first_name": "Sam", "last_name": "Ortiz", "date_of_birth": "1988-04-12"},
    )
    assert again.status_code == 409


def test_clinicians_log_calls_too_and_admins_cannot(client, make_site, make_user, bearer):
    site = make_site()
    clinician = make_user("clinician", sites=[site])
    admin = make_user("admin", sites=[site])
    assert client.post("/api/v1/intake-calls", json=call_body(site.id), headers=bearer(clinician)).status_code == 201
    assert client.post("/api/v1/intake-calls", json=call_body(site.id), headers=bearer(admin)).status_code == 403
    assert client.get("/api/v1/intake-calls", headers=bearer(admin)).status_code == 403


def test_every_read_and_write_of_a_call_is_audited(app, client, front_desk):
    headers = front_desk["headers"]
    call = client.post("/api/v1/intake-calls", headers=headers, json=call_body(front_desk["site"].id)).get_json()
    client.get(f"/api/v1/intake-calls/{call['id']}", headers=headers)
    client.get("/api/v1/intake-calls", headers=headers)
    client.patch(f"/api/v1/intake-calls/{call['id']}", headers=headers, json={"notes": "n"})
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.resource == "intake_call", AuditEvent.resource_id == str(call["id"]))
            .order_by(AuditEvent.id)
        ).all()
    assert actions == ["intake_call.create", "intake_call.read", "intake_call.read", "intake_call.update"]


# --- repeat callers and likely duplicates -------------------------------------------------------------


def _register(client, headers, site_id, **fields):
    body = {"site_id": site_id, "first_name": "Sam", "last_name": "Ortiz", "date_of_birth": "1988-04-12", **fields}
    response = client.post("/api/v1/clients", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_repeat_call_is_linked_to_the_existing_client_once(app, client, front_desk):
    headers, site = front_desk["headers"], front_desk["site"].id
    existing = _register(client, headers, site)
    call = client.post("/api/v1/intake-calls", headers=headers,
                       json=call_body(site, outcome="info_only")).get_json()
    linked = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=headers,
                         json={"client_id": existing["id"]})
    assert linked.status_code == 200, linked.get_json()
    body = linked.get_json()
    assert (body["linked_client_id"], body["linked_by_id"], body["client_id"]) == (
        existing["id"], front_desk["coordinator"].id, None)
    assert body["linked_at"]
    assert client.get(f"/api/v1/intake-calls/{call['id']}", headers=headers).get_json() == body
    # Once: linking again, or converting a linked call, is a 409 naming the client.
    again = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=headers,
                        json={"client_id": existing["id"]})
    assert again.status_code == 409 and again.get_json()["client_id"] == existing["id"]
    converted = client.post(f"/api/v1/intake-calls/{call['id']}/convert", headers=headers,
                            json={"first_name": "Sam", "last_name": "Ortiz", "date_of_birth": "1988-04-12"})
    assert converted.status_code == 409 and converted.get_json()["type"].endswith("/already-linked")
    # The client's timeline shows the call; the link is audited on the client's trail.
    timeline = client.get(f"/api/v1/clients/{existing['id']}/timeline", headers=headers).get_json()["items"]
    assert [(e["kind"], e["resource_id"], e["summary"]) for e in timeline if e["kind"] == "intake_call"] == [
        ("intake_call", call["id"], "Inbound repeat call: info only")
    ]
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "intake_call.link").order_by(AuditEvent.id)
        ).all()
    assert [(e.resource_id, e.client_id, e.user_id) for e in events] == [
        (str(call["id"]), existing["id"], front_desk["coordinator"].id)
    ]


def test_a_converted_call_cannot_be_linked(client, front_desk):
    headers, site = front_desk["headers"], front_desk["site"].id
    existing = _register(client, headers, site, first_name="Other", phone="+12125550199")
    call = client.post("/api/v1/intake-calls", headers=headers, json=call_body(site)).get_json()
    made = client.post(f"/api/v1/intake-calls/{call['id']}/convert", headers=headers,
                       json={"first_name": "Newly", "last_name": "Made", "date_of_birth": "2001-01-01"}).get_json()
    refused = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=headers,
                          json={"client_id": existing["id"]})
    assert refused.status_code == 409
    assert refused.get_json()["type"].endswith("/already-converted") and refused.get_json()["client_id"] == made["id"]


def test_only_a_client_of_the_calls_site_can_be_linked(app, client, front_desk, make_user, bearer):
    headers, site, other_site = front_desk["headers"], front_desk["site"].id, front_desk["other_site"]
    call = client.post("/api/v1/intake-calls", headers=headers, json=call_body(site)).get_json()
    elsewhere = _register(client, front_desk["outsider_headers"], other_site.id)
    # A coordinator of both sites: the client is theirs to see, but of another site than the call.
    both = bearer(make_user("intake", sites=[front_desk["site"], other_site]))
    for who, client_id in [(headers, elsewhere["id"]), (both, elsewhere["id"]), (headers, 2**31 - 1)]:
        response = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=who, json={"client_id": client_id})
        assert response.status_code == 422 and "client_id" in response.get_json()["errors"]
    bad = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=headers, json={"client_id": "1"})
    assert bad.status_code == 422 and "client_id" in bad.get_json()["errors"]
    # The call of another site is not found.
    theirs = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=front_desk["outsider_headers"],
                         json={"client_id": elsewhere["id"]})
    assert theirs.status_code == 404
    with app.app_context():
        assert db.session.get(IntakeCall, call["id"]).linked_client_id is None


def test_a_likely_duplicate_on_convert_lists_who_the_candidates_are(app, client, front_desk):
    headers, site = front_desk["headers"], front_desk["site"].id
    existing = _register(client, headers, site, phone="+12125550134")
    call = client.post("/api/v1/intake-calls", headers=headers, json=call_body(site)).get_json()
    refused = client.post(f"/api/v1/intake-calls/{call['id']}/convert", headers=headers,
                          json={"first_name": "Samuel", "last_name": "Ortiz", "date_of_birth": "1988-04-13"})
    assert refused.status_code == 409
    assert refused.get_json()["candidates"] == [
        {"id": existing["id"], "mrn": existing["mrn"], "first_name": "Sam", "last_name": "Ortiz",
         "date_of_birth": "1988-04-12", "site_id": site, "status": "prospective"}
    ]
    # Showing the candidate is a read of their record, audited although the request was refused.
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "client.read", AuditEvent.client_id == existing["id"])
        ).all()
    assert [(e.outcome.value, e.details) for e in events] == [("success", {"via": "duplicate-check"})]
    # Then the coordinator links the repeat call instead.
    linked = client.post(f"/api/v1/intake-calls/{call['id']}/link", headers=headers, json={"client_id": existing["id"]})
    assert linked.status_code == 200
