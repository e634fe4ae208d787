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
        ("occurred_at", "2026-01-01T10:00:00"),  # no offset
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
