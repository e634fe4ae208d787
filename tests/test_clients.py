"""Clients, episodes of care, consents, disclosures and the timeline, as their users meet them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from stdnum import damm

from clinic.audit.models import AuditEvent
from clinic.clients.models import Client
from clinic.extensions import db

TODAY = datetime.now(UTC).date()


@pytest.fixture
def team(make_site, make_user, bearer):
    site, other_site = make_site(), make_site()
    clinician = make_user("clinician", sites=[site], name="Dr. Lee")
    coordinator = make_user("intake", sites=[site])
    outsider = make_user("clinician", sites=[other_site])
    return {
        "site": site,
        "other_site": other_site,
        "clinician": clinician,
        "clinician_headers": bearer(clinician),
        "intake_headers": bearer(coordinator),
        "outsider_headers": bearer(outsider),
        "admin_headers": bearer(make_user("admin", sites=[site])),
    }


def register(client, headers, site_id, **fields):
    body = {"site_id": site_id, "first_name": "José", "last_name": "García", "date_of_birth": "1985-06-15", **fields}
    return client.post("/api/v1/clients", json=body, headers=headers)


def test_registration_assigns_an_mrn_with_a_check_digit(client, team):
    response = register(client, team["intake_headers"], team["site"].id, phone="415 555 2671")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert len(body["mrn"]) == 8
    assert damm.is_valid(body["mrn"])
    assert body["status"] == "prospective"
    assert body["phone"] == "+14155552671"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_mrn_cannot_be_supplied_or_changed(client, team):
    headers = team["intake_headers"]
    refused = register(client, headers, team["site"].id, mrn="12345679")
    assert refused.status_code == 422
    assert "mrn" in refused.get_json()["errors"]
    created = register(client, headers, team["site"].id).get_json()
    for field, value in [
        ("mrn", "12345679"),
        ("site_id", team["other_site"].id),
        ("id", 1),
        ("status", "active"),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("created_by_id", 1),
    ]:
        response = client.patch(f"/api/v1/clients/{created['id']}", json={field: value}, headers=headers)
        assert response.status_code == 422
        assert field in response.get_json()["errors"]
    after = client.get(f"/api/v1/clients/{created['id']}", headers=headers).get_json()
    assert after == created


def test_likely_duplicates_are_409_with_candidates(client, team):
    headers, site = team["intake_headers"], team["site"].id
    first = register(client, headers, site, phone="+14155552671").get_json()
    same_name = register(client, headers, site, first_name="jose", last_name="GARCIA")
    assert same_name.status_code == 409
    assert same_name.get_json()["candidates"] == [
        {"id": first["id"], "mrn": first["mrn"], "first_name": "José", "last_name": "García",
         "date_of_birth": "1985-06-15", "site_id": site, "status": "prospective"}
    ]
    same_phone = register(
        client, headers, site, first_name="Ana", last_name="Ruiz", date_of_birth="1990-01-01", phone="(415) 555-2671"
    )
    assert same_phone.status_code == 409
    forced = client.post(
        "/api/v1/clients?allow_duplicate=true",
        headers=headers,
        json={"site_id": site, "first_name": "José", "last_name": "García", "date_of_birth": "1985-06-15"},
    )
    assert forced.status_code == 201
    assert forced.get_json()["mrn"] != first["mrn"]


def test_the_same_person_at_another_site_is_not_a_duplicate_here(client, team, make_user, bearer):
    register(client, team["intake_headers"], team["site"].id)
    other_coordinator = make_user("intake", sites=[team["other_site"]])
    assert register(client, bearer(other_coordinator), team["other_site"].id).status_code == 201


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("jose", ["José García"]),
        ("JOS", ["José García"]),
        ("garc", ["José García"]),
        ("gar", ["José García", "Gareth Jones"]),
        ("José Garc", ["José García"]),
        ("garcia jose", ["José García"]),
        ("zoe", ["Zoë Müller"]),
        ("muller", ["Zoë Müller"]),
        ("xavier", []),
    ],
)
def test_name_search_ignores_case_and_accents(client, team, query, expected):
    headers, site = team["intake_headers"], team["site"].id
    register(client, headers, site)
    register(client, headers, site, first_name="Zoë", last_name="Müller", date_of_birth="1979-02-02")
    register(client, headers, site, first_name="Gareth", last_name="Jones", date_of_birth="1969-03-03")
    items = client.get("/api/v1/clients", query_string={"q": query}, headers=headers).get_json()["items"]
    assert sorted(f"{c['first_name']} {c['last_name']}" for c in items) == sorted(expected)


def test_search_by_mrn_and_phone_and_a_mistyped_mrn_is_caught(client, team):
    headers, site = team["intake_headers"], team["site"].id
    created = register(client, headers, site, phone="+12025550199").get_json()
    by_mrn = client.get("/api/v1/clients", query_string={"q": created["mrn"]}, headers=headers).get_json()["items"]
    assert [c["id"] for c in by_mrn] == [created["id"]]
    by_phone = client.get("/api/v1/clients", query_string={"q": "(202) 555-0199"}, headers=headers).get_json()["items"]
    assert [c["id"] for c in by_phone] == [created["id"]]
    mrn = created["mrn"]
    typo = mrn[:2] + mrn[3] + mrn[2] + mrn[4:] if mrn[2] != mrn[3] else mrn[:-1] + str((int(mrn[-1]) + 1) % 10)
    response = client.get("/api/v1/clients", query_string={"q": typo}, headers=headers)
    assert response.status_code == 422
    assert "q" in response.get_json()["errors"]


def test_client_list_is_keyset_paginated_alphabetically(client, team):
    headers, site = team["intake_headers"], team["site"].id
    for i, last in enumerate(["Young", "Adams", "Moreno", "Baker", "Ng"]):
        register(client, headers, site, first_name="Pat", last_name=last, date_of_birth=f"198{i}-01-01")
    names, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/clients", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=headers
        ).get_json()
        names += [c["last_name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == ["Adams", "Baker", "Moreno", "Ng", "Young"]


def test_a_name_search_pages_through_first_and_last_name_matches_in_order_once_each(client, team, make_user, bearer):
    headers, site = team["intake_headers"], team["site"].id
    people = [("Kim", "Young"), ("Ann", "Kimball"), ("Kimberly", "Adams"), ("Lee", "Kim"), ("Bo", "Kimura"),
              ("Kimi", "Zane"), ("Kim", "Kim"), ("Pat", "Moreno")]
    for i, (first, last) in enumerate(people):
        register(client, headers, site, first_name=first, last_name=last, date_of_birth=f"197{i}-01-01")
    other = make_user("intake", sites=[team["other_site"]])
    register(client, bearer(other), team["other_site"].id, first_name="Kim", last_name="Abbot")  # not in scope
    names, cursor = [], None
    while True:
        query = {"q": "kim", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/clients", query_string=query, headers=headers).get_json()
        names += [f"{c['first_name']} {c['last_name']}" for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Alphabetical by last name, then first name: matches on either name, each once, none from elsewhere.
    assert names == ["Kimberly Adams", "Kim Kim", "Lee Kim", "Ann Kimball", "Bo Kimura", "Kim Young", "Kimi Zane"]


def test_primary_clinician_must_be_a_clinician_of_the_site(client, team, make_user):
    headers, site = team["intake_headers"], team["site"].id
    coordinator = make_user("intake", sites=[team["site"]])
    elsewhere = make_user("clinician", sites=[team["other_site"]])
    for bad in (coordinator.id, elsewhere.id, 987654):
        response = register(client, headers, site, primary_clinician_id=bad)
        assert response.status_code == 422
        assert "primary_clinician_id" in response.get_json()["errors"]
    good = register(client, headers, site, primary_clinician_id=team["clinician"].id)
    assert good.status_code == 201
    mine = client.get("/api/v1/clients", query_string={"clinician_id": team["clinician"].id}, headers=headers)
    assert [c["id"] for c in mine.get_json()["items"]] == [good.get_json()["id"]]


def test_out_of_site_reads_and_updates_are_404_and_change_nothing(app, client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    outsider = team["outsider_headers"]
    assert client.get(f"/api/v1/clients/{created['id']}", headers=outsider).status_code == 404
    assert (
        client.patch(f"/api/v1/clients/{created['id']}", json={"first_name": "Changed"}, headers=outsider).status_code
        == 404
    )
    assert client.get(f"/api/v1/clients/{created['id']}/timeline", headers=outsider).status_code == 404
    assert (
        client.post(
            f"/api/v1/clients/{created['id']}/episodes",
            headers=outsider,
            json={"admitted_on": TODAY.isoformat(), "level_of_care": "1"},
        ).status_code
        == 404
    )
    assert client.get("/api/v1/clients", headers=outsider).get_json()["items"] == []
    with app.app_context():
        assert db.session.get(Client, created["id"]).first_name == "José"


def test_registering_at_a_site_that_is_not_yours_is_refused(client, team):
    response = register(client, team["intake_headers"], team["other_site"].id)
    assert response.status_code == 422
    assert "site_id" in response.get_json()["errors"]


def test_admins_see_clients_only_in_reports(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    assert client.get(f"/api/v1/clients/{created['id']}", headers=team["admin_headers"]).status_code == 403
    assert client.get("/api/v1/clients", headers=team["admin_headers"]).status_code == 403


def test_intake_coordinators_update_demographics_but_see_no_clinical_data(client, team):
    intake = team["intake_headers"]
    created = register(client, intake, team["site"].id).get_json()
    updated = client.patch(
        f"/api/v1/clients/{created['id']}",
        headers=intake,
        json={"preferred_language": "es", "email": "Jose@Example.org"},
    )
    assert updated.status_code == 200
    assert updated.get_json()["email"] == "jose@example.org"
    client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=team["clinician_headers"],
        json={"admitted_on": TODAY.isoformat(), "level_of_care": "1-OTP"},
    )
    assert client.get(f"/api/v1/clients/{created['id']}/episodes", headers=intake).status_code == 403
    assert (
        client.post(
            f"/api/v1/clients/{created['id']}/episodes",
            headers=intake,
            json={"admitted_on": TODAY.isoformat(), "level_of_care": "1"},
        ).status_code
        == 403
    )
    kinds = [
        e["kind"] for e in client.get(f"/api/v1/clients/{created['id']}/timeline", headers=intake).get_json()["items"]
    ]
    assert not any(kind.startswith("episode") for kind in kinds)
    clinician_kinds = [
        e["kind"]
        for e in client.get(f"/api/v1/clients/{created['id']}/timeline", headers=team["clinician_headers"]).get_json()[
            "items"
        ]
    ]
    assert "episode.admitted" in clinician_kinds


# --- episodes ------------------------------------------------------------------------------


def test_episode_rules_and_client_status(client, team):
    headers = team["clinician_headers"]
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    url = f"/api/v1/clients/{created['id']}"
    admitted_on = TODAY - timedelta(days=40)
    episode = client.post(
        f"{url}/episodes", headers=headers, json={"admitted_on": admitted_on.isoformat(), "level_of_care": "1-OTP"}
    )
    assert episode.status_code == 201, episode.get_json()
    assert client.get(url, headers=headers).get_json()["status"] == "active"
    second = client.post(
        f"{url}/episodes", headers=headers, json={"admitted_on": TODAY.isoformat(), "level_of_care": "1"}
    )
    assert second.status_code == 409
    discharged = client.post(
        f"/api/v1/episodes/{episode.get_json()['id']}/discharge",
        headers=headers,
        json={"discharged_on": (admitted_on + timedelta(days=30)).isoformat(), "reason_code": 1},
    )
    assert discharged.status_code == 200
    assert discharged.get_json()["length_of_stay_days"] == 30
    assert discharged.get_json()["reason_code"] == 1
    assert client.get(url, headers=headers).get_json()["status"] == "discharged"
    again = client.post(
        f"/api/v1/episodes/{episode.get_json()['id']}/discharge",
        headers=headers,
        json={"discharged_on": TODAY.isoformat(), "reason_code": 2},
    )
    assert again.status_code == 409
    readmitted = client.post(
        f"{url}/episodes", headers=headers, json={"admitted_on": TODAY.isoformat(), "level_of_care": "2.1"}
    )
    assert readmitted.status_code == 201
    assert client.get(url, headers=headers).get_json()["status"] == "active"
    listed = client.get(f"{url}/episodes", headers=headers).get_json()["items"]
    assert [e["level_of_care"] for e in listed] == ["2.1", "1-OTP"]


def test_same_day_discharge_counts_as_one_day(client, team):
    headers = team["clinician_headers"]
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    episode = client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=headers,
        json={"admitted_on": TODAY.isoformat(), "level_of_care": "3.7-WM"},
    ).get_json()
    out = client.post(
        f"/api/v1/episodes/{episode['id']}/discharge",
        headers=headers,
        json={"discharged_on": TODAY.isoformat(), "reason_code": 4},
    ).get_json()
    assert out["length_of_stay_days"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"discharged_on": "2000-01-01", "reason_code": 1}, "discharged_on"),
        ({"discharged_on": TODAY.isoformat(), "reason_code": 8}, "reason_code"),
        ({"discharged_on": TODAY.isoformat(), "reason_code": 0}, "reason_code"),
        ({"discharged_on": TODAY.isoformat()}, "reason_code"),
    ],
)
def test_bad_discharges_are_422(client, team, body, field):
    headers = team["clinician_headers"]
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    episode = client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=headers,
        json={"admitted_on": (TODAY - timedelta(days=3)).isoformat(), "level_of_care": "1"},
    ).get_json()
    response = client.post(f"/api/v1/episodes/{episode['id']}/discharge", headers=headers, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert client.get(f"/api/v1/clients/{created['id']}", headers=headers).get_json()["status"] == "active"


@pytest.mark.parametrize("level", ["5", "2.7", "OTP", ""])
def test_unknown_asam_levels_are_422(client, team, level):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    response = client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=team["clinician_headers"],
        json={"admitted_on": TODAY.isoformat(), "level_of_care": level},
    )
    assert response.status_code == 422
    assert "level_of_care" in response.get_json()["errors"]


def test_fourth_edition_levels_need_the_edition(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    response = client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=team["clinician_headers"],
        json={"admitted_on": TODAY.isoformat(), "level_of_care": "2.7", "asam_edition": "4"},
    )
    assert response.status_code == 201
    assert response.get_json()["asam_edition"] == "4"


# --- consents and disclosures ---------------------------------------------------------------

DISCLOSURE = {
    "kind": "disclosure",
    "recipient": "County Probation Office",
    "purpose": "Verify treatment attendance",
    "information_description": "Attendance dates and drug screen results, March to June",
    "disclosing_party": "Riverside Clinic",
    "expires_on": (TODAY + timedelta(days=180)).isoformat(),
    "signed_on": TODAY.isoformat(),
    "signature_name": "José García",
    "revocation_acknowledged": True,
}


def test_communication_consents_by_intake(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    url = f"/api/v1/clients/{created['id']}/consents"
    response = client.post(
        url,
        headers=team["intake_headers"],
        json={
            "kind": "communication",
            "channel": "sms",
            "granted_on": TODAY.isoformat(),
            "evidence": "signed intake form",
        },
    )
    assert response.status_code == 201
    assert response.get_json()["status"] == "active"
    missing = client.post(url, headers=team["intake_headers"], json={"kind": "communication", "channel": "email"})
    assert missing.status_code == 422
    assert set(missing.get_json()["errors"]) == {"granted_on", "evidence"}


@pytest.mark.parametrize(
    "element",
    [
        "recipient",
        "purpose",
        "information_description",
        "disclosing_party",
        "signed_on",
        "signature_name",
        "revocation_acknowledged",
        "expires_on",
    ],
)
def test_each_missing_disclosure_element_is_named(client, team, element):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    body = {k: v for k, v in DISCLOSURE.items() if k != element}
    response = client.post(f"/api/v1/clients/{created['id']}/consents", headers=team["clinician_headers"], json=body)
    assert response.status_code == 422
    assert element in response.get_json()["errors"]


def test_all_missing_disclosure_elements_are_named_at_once(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    response = client.post(
        f"/api/v1/clients/{created['id']}/consents",
        headers=team["clinician_headers"],
        json={"kind": "disclosure", "revocation_acknowledged": False},
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) >= {
        "recipient",
        "purpose",
        "information_description",
        "disclosing_party",
        "signed_on",
        "signature_name",
        "revocation_acknowledged",
        "expires_on",
    }


def test_an_expiry_event_can_stand_for_the_date(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    body = {**{k: v for k, v in DISCLOSURE.items() if k != "expires_on"}, "expiry_event": "end of probation"}
    assert (
        client.post(
            f"/api/v1/clients/{created['id']}/consents", headers=team["clinician_headers"], json=body
        ).status_code
        == 201
    )


def test_disclosure_consents_are_clinical(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    url = f"/api/v1/clients/{created['id']}/consents"
    assert client.post(url, headers=team["intake_headers"], json=DISCLOSURE).status_code == 403
    client.post(url, headers=team["clinician_headers"], json=DISCLOSURE)
    assert client.get(url, headers=team["intake_headers"]).get_json()["items"] == []
    assert [c["kind"] for c in client.get(url, headers=team["clinician_headers"]).get_json()["items"]] == ["disclosure"]


def _disclose(client, headers, client_id, consent_id, **overrides):
    body = {
        "consent_id": consent_id,
        "recipient": "county probation office",
        "purpose": "Verify treatment attendance",
        "description": "Attendance dates March-June",
        "disclosed_at": f"{TODAY.isoformat()}T12:00:00Z",
        **overrides,
    }
    return client.post(f"/api/v1/clients/{client_id}/disclosures", headers=headers, json=body)


def test_disclosures_under_a_consent_and_their_accounting(client, team):
    headers = team["clinician_headers"]
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    consent = client.post(f"/api/v1/clients/{created['id']}/consents", headers=headers, json=DISCLOSURE).get_json()
    assert consent["patient_name"] == "José García"
    made = _disclose(client, headers, created["id"], consent["id"])
    assert made.status_code == 201, made.get_json()
    assert _disclose(client, headers, created["id"], consent["id"], recipient="Local newspaper").status_code == 403
    assert _disclose(client, headers, created["id"], consent["id"], purpose="Marketing").status_code == 403
    assert _disclose(client, headers, created["id"], 987654).status_code == 403
    late = (TODAY + timedelta(days=400)).isoformat()
    assert _disclose(client, headers, created["id"], consent["id"], disclosed_at=f"{late}T09:00:00Z").status_code == 403
    accounting = client.get(f"/api/v1/clients/{created['id']}/disclosures", headers=headers).get_json()["items"]
    assert len(accounting) == 1
    entry = accounting[0]
    assert (entry["recipient"], entry["purpose"], entry["consent_id"]) == (
        "county probation office",
        "Verify treatment attendance",
        consent["id"],
    )
    assert entry["description"] == "Attendance dates March-June"


def test_revocation_takes_effect_on_the_next_request(client, team):
    headers = team["clinician_headers"]
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    consent = client.post(f"/api/v1/clients/{created['id']}/consents", headers=headers, json=DISCLOSURE).get_json()
    revoked = client.post(f"/api/v1/consents/{consent['id']}/revoke", headers=headers)
    assert revoked.status_code == 200
    assert revoked.get_json()["status"] == "revoked"
    now = f"{TODAY.isoformat()}T23:59:59Z"
    assert _disclose(client, headers, created["id"], consent["id"], disclosed_at=now).status_code == 403


def test_consent_revocation_is_scoped(client, team):
    created = register(client, team["intake_headers"], team["site"].id).get_json()
    consent = client.post(
        f"/api/v1/clients/{created['id']}/consents", headers=team["clinician_headers"], json=DISCLOSURE
    ).get_json()
    assert client.post(f"/api/v1/consents/{consent['id']}/revoke", headers=team["outsider_headers"]).status_code == 404
    # An intake coordinator cannot even see disclosure consents.
    assert client.post(f"/api/v1/consents/{consent['id']}/revoke", headers=team["intake_headers"]).status_code == 404


# --- timeline and audit ----------------------------------------------------------------------


def test_timeline_is_in_time_order(client, team):
    headers = team["clinician_headers"]
    call = client.post(
        "/api/v1/intake-calls",
        headers=team["intake_headers"],
        json={
            "site_id": team["site"].id,
            "direction": "inbound",
            "occurred_at": f"{(TODAY - timedelta(days=20)).isoformat()}T15:00:00Z",
            "caller_name": "José",
            "caller_relation": "self",
            "callback_phone": "2125550134",
            "referral_source": "self",
            "reason": "help",
            "outcome": "assessment_scheduled",
        },
    ).get_json()
    created = client.post(
        f"/api/v1/intake-calls/{call['id']}/convert",
        headers=team["intake_headers"],
        json={"first_name": "José", "last_name": "García", "date_of_birth": "1985-06-15"},
    ).get_json()
    episode = client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=headers,
        json={"admitted_on": (TODAY - timedelta(days=10)).isoformat(), "level_of_care": "1"},
    ).get_json()
    client.post(
        f"/api/v1/episodes/{episode['id']}/discharge",
        headers=headers,
        json={"discharged_on": (TODAY - timedelta(days=2)).isoformat(), "reason_code": 2},
    )
    items = client.get(f"/api/v1/clients/{created['id']}/timeline", headers=headers).get_json()["items"]
    assert [i["kind"] for i in items] == ["intake_call", "episode.admitted", "episode.discharged"]
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    assert "8 days" in items[-1]["summary"]


def test_every_read_and_write_of_a_client_is_audited(app, client, team):
    headers = team["clinician_headers"]
    created = register(client, headers, team["site"].id).get_json()
    client.get(f"/api/v1/clients/{created['id']}", headers=headers)
    client.patch(f"/api/v1/clients/{created['id']}", headers=headers, json={"preferred_language": "es"})
    client.get("/api/v1/clients", query_string={"q": "jose"}, headers=headers)
    client.post(
        f"/api/v1/clients/{created['id']}/episodes",
        headers=headers,
        json={"admitted_on": TODAY.isoformat(), "level_of_care": "1"},
    )
    client.get(f"/api/v1/clients/{created['id']}/episodes", headers=headers)
    client.get(f"/api/v1/clients/{created['id']}/timeline", headers=headers)
    client.get(f"/api/v1/clients/{created['id']}", headers=team["outsider_headers"])  # refused, audited as denied
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.client_id == created["id"]).order_by(AuditEvent.id)
        ).all()
    assert [r.action for r in rows] == [
        "client.create",
        "client.read",
        "client.update",
        "client.read",
        "episode.admit",
        "episode.read",
        "client.timeline",
        "access.denied",
    ]
    assert {r.user_id for r in rows[:-1]} == {team["clinician"].id}
    assert all(r.outcome.value == "success" for r in rows[:-1])
    assert rows[-1].outcome.value == "denied"
    assert rows[-1].user_id != team["clinician"].id
