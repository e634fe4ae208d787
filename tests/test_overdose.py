"""Overdose prevention: naloxone dispenses, overdose events and their alerts, a fatal one's discharge, the report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.core.time import today
from clinic.extensions import db

TODAY = today()


@pytest.fixture
def ward(make_site, make_user, bearer, client):
    """A site, its clinician (the client's primary clinician), and one admitted client."""

    def setup(*, admitted_on: date | None = None, primary: bool = True):
        site = make_site()
        clinician = make_user("clinician", sites=[site])
        headers = bearer(clinician)
        person = client.post(
            "/api/v1/clients",
            headers=headers,
            json={
                "site_id": site.id,
                "first_name": "Mara",
                "last_name": "Quill",
                "date_of_birth": "1984-03-09",
                "primary_clinician_id": clinician.id if primary else None,
            },
        ).get_json()
        episode = client.post(
            f"/api/v1/clients/{person['id']}/episodes",
            headers=headers,
            json={"admitted_on": (admitted_on or TODAY - timedelta(days=100)).isoformat(), "level_of_care": "1"},
        ).get_json()
        return {"site": site, "clinician": clinician, "headers": headers, "client": person, "episode": episode}

    return setup


def naloxone(client, ctx, **body):
    payload = {
        "dispensed_on": TODAY.isoformat(),
        "formulation": "nasal_4mg",
        "quantity": 2,
        "education_given": True,
        **body,
    }
    return client.post(f"/api/v1/clients/{ctx['client']['id']}/naloxone", headers=ctx["headers"], json=payload)


def overdose(client, ctx, **body):
    payload = {
        "occurred_on": TODAY.isoformat(),
        "fatal": False,
        "naloxone_used": True,
        "substances": ["fentanyl"],
        "source": "client_report",
        **body,
    }
    return client.post(f"/api/v1/clients/{ctx['client']['id']}/overdose-events", headers=ctx["headers"], json=payload)


def alerts(client, headers):
    return client.get("/api/v1/staff-notifications", headers=headers).get_json()["items"]


def events(app: Flask, action: str, client_id: int) -> list[AuditEvent]:
    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.client_id == client_id)
        return list(db.session.scalars(stmt))


# --- naloxone ----------------------------------------------------------------------------


def test_naloxone_dispenses_are_recorded_listed_and_audited(app, client, ward):
    ctx = ward()
    first = naloxone(client, ctx, dispensed_on=(TODAY - timedelta(days=30)).isoformat(), formulation="im_0_4mg")
    assert first.status_code == 201, first.get_json()
    second = naloxone(client, ctx, quantity=1, education_given=False)
    assert second.status_code == 201
    assert second.get_json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "client_id": ctx["client"]["id"],
        "site_id": ctx["site"].id,
        "dispensed_on": TODAY.isoformat(),
        "formulation": "nasal_4mg",
        "quantity": 1,
        "education_given": False,
        "recorded_by_id": ctx["clinician"].id,
        "created_at": "",
    }
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/naloxone", headers=ctx["headers"]).get_json()
    assert [d["id"] for d in listed["items"]] == [second.get_json()["id"], first.get_json()["id"]]
    assert len(events(app, "naloxone_dispense.create", ctx["client"]["id"])) == 2
    assert events(app, "naloxone_dispense.read", ctx["client"]["id"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dispensed_on", (TODAY + timedelta(days=2)).isoformat()),
        ("quantity", 0),
        ("quantity", 25),
        ("formulation", "nasal_2mg"),
        ("education_given", None),
    ],
)
def test_a_naloxone_dispense_that_cannot_be_right_is_refused_naming_the_field(client, ward, field, value):
    ctx = ward()
    response = naloxone(client, ctx, **{field: value})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/naloxone", headers=ctx["headers"]).get_json()
    assert listed["items"] == []


def test_the_largest_quantity_and_yesterday_are_accepted(client, ward):
    ctx = ward()
    response = naloxone(client, ctx, quantity=24, dispensed_on=(TODAY - timedelta(days=1)).isoformat())
    assert response.status_code == 201


def test_intake_cannot_record_or_read_naloxone_or_overdoses_and_other_sites_see_nothing(
    client, ward, make_user, make_site, bearer
):
    ctx = ward()
    intake = bearer(make_user("intake", sites=[ctx["site"]]))
    base = f"/api/v1/clients/{ctx['client']['id']}"
    assert client.post(f"{base}/naloxone", headers=intake, json={}).status_code == 403
    assert client.get(f"{base}/naloxone", headers=intake).status_code == 403
    assert client.post(f"{base}/overdose-events", headers=intake, json={}).status_code == 403
    stranger = bearer(make_user("clinician", sites=[make_site()]))
    assert client.get(f"{base}/naloxone", headers=stranger).status_code == 404
    assert client.get(f"{base}/overdose-events", headers=stranger).status_code == 404
    event = overdose(client, ctx, fatal=True).get_json()
    assert client.post(f"/api/v1/overdose-events/{event['id']}/confirm-death", headers=stranger).status_code == 404


# --- overdose events ---------------------------------------------------------------------


def test_a_non_fatal_overdose_alerts_the_primary_clinician_without_naming_the_client(app, client, ward):
    ctx = ward()
    response = overdose(
        client,
        ctx,
        occurred_on=(TODAY - timedelta(days=2)).isoformat(),
        naloxone_used=None,
        substances=["xylazine", "fentanyl"],
        setting="home",
        source="ed_notice",
        note="Seen at St. Mary's ED.",
    )
    assert response.status_code == 201, response.get_json()
    event = response.get_json()
    assert event["fatal"] is False and event["naloxone_used"] is None
    assert event["substances"] == ["fentanyl", "xylazine"]
    assert event["discharge"] is None
    [alert] = [a for a in alerts(client, ctx["headers"]) if a["kind"] == "overdose"]
    assert alert["client_id"] == ctx["client"]["id"]
    assert "Quill" not in alert["title"] + alert["body"] and "Mara" not in alert["title"] + alert["body"]
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/overdose-events", headers=ctx["headers"]).get_json()
    assert [e["id"] for e in listed["items"]] == [event["id"]]
    assert events(app, "overdose_event.create", ctx["client"]["id"])
    timeline = client.get(f"/api/v1/clients/{ctx['client']['id']}/timeline", headers=ctx["headers"]).get_json()
    assert [e["summary"] for e in timeline["items"] if e["kind"] == "overdose_event"] == [
        "Overdose reported (ed notice)"
    ]
    # Not a death: nothing to confirm.
    refused = client.post(f"/api/v1/overdose-events/{event['id']}/confirm-death", headers=ctx["headers"], json={})
    assert refused.status_code == 409


def test_without_a_primary_clinician_the_site_supervisor_is_alerted(client, ward, make_user, bearer):
    ctx = ward(primary=False)
    supervisor = bearer(make_user("clinician", sites=[ctx["site"]], is_supervisor=True))
    assert overdose(client, ctx).status_code == 201
    assert [a["kind"] for a in alerts(client, supervisor)] == ["overdose"]
    # With no clinician of their own, the clinician who recorded it follows it up too.
    assert [a["kind"] for a in alerts(client, ctx["headers"])] == ["overdose"]


def test_an_overdose_alert_reaches_someone_even_at_a_site_without_supervisors_or_admins(client, ward):
    ctx = ward(primary=False)
    assert overdose(client, ctx).status_code == 201
    assert [a["kind"] for a in alerts(client, ctx["headers"])] == ["overdose"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("occurred_on", (TODAY + timedelta(days=2)).isoformat()),
        ("source", "police"),
        ("substances", ["Fentanyl!"]),
        ("substances", ["fentanyl\n"]),
        ("fatal", None),
    ],
)
def test_an_overdose_that_cannot_be_right_is_refused_naming_the_field(client, ward, field, value):
    ctx = ward()
    response = overdose(client, ctx, **{field: value})
    assert response.status_code == 422
    assert any(key.startswith(field) for key in response.get_json()["errors"])
    assert alerts(client, ctx["headers"]) == []


def test_fatal_overdose_to_discharge(app, client, ward):
    ctx = ward(admitted_on=TODAY - timedelta(days=60))
    died_on = TODAY - timedelta(days=3)
    response = overdose(client, ctx, fatal=True, occurred_on=died_on.isoformat(), source="family")
    assert response.status_code == 201
    event = response.get_json()
    # The answer asks for the discharge; nothing is closed until a clinician confirms.
    assert event["discharge"] == {
        "episode_id": ctx["episode"]["id"],
        "reason_code": 6,
        "discharged_on": died_on.isoformat(),
        "confirm_path": f"/api/v1/overdose-events/{event['id']}/confirm-death",
    }
    [alert] = alerts(client, ctx["headers"])
    assert alert["kind"] == "overdose" and "Fatal" in alert["title"]
    episodes = client.get(f"/api/v1/clients/{ctx['client']['id']}/episodes", headers=ctx["headers"]).get_json()
    assert episodes["items"][0]["discharged_on"] is None

    confirmed = client.post(event["discharge"]["confirm_path"], headers=ctx["headers"], json={})
    assert confirmed.status_code == 200, confirmed.get_json()
    body = confirmed.get_json()
    assert body["discharge"] is None
    assert body["discharged_episode_id"] == ctx["episode"]["id"]
    assert body["death_confirmed_by_id"] == ctx["clinician"].id and body["death_confirmed_at"]
    [episode] = client.get(f"/api/v1/clients/{ctx['client']['id']}/episodes", headers=ctx["headers"]).get_json()[
        "items"
    ]
    assert episode["discharged_on"] == died_on.isoformat()
    assert episode["reason_code"] == 6
    person = client.get(f"/api/v1/clients/{ctx['client']['id']}", headers=ctx["headers"]).get_json()
    assert person["status"] == "discharged"
    # Again: the same answer, no second discharge or audit event.
    again = client.post(event["discharge"]["confirm_path"], headers=ctx["headers"], json={})
    assert again.status_code == 200
    assert again.get_json()["death_confirmed_at"] == body["death_confirmed_at"]
    assert len(events(app, "episode.discharge", ctx["client"]["id"])) == 1
    assert len(events(app, "overdose_event.confirm_death", ctx["client"]["id"])) == 1


def test_a_confirmed_death_cancels_the_appointments_and_group_seats_ahead_but_not_the_past(client, ward):
    """No reminder may reach the phone of a client who has died; what happened stays as it was."""
    ctx = ward(admitted_on=TODAY - timedelta(days=60))
    headers, site, clinician = ctx["headers"], ctx["site"], ctx["clinician"]
    person = ctx["client"]["id"]

    def book(**fields):
        body = {"site_id": site.id, "clinician_id": clinician.id, "duration_minutes": 60, **fields}
        response = client.post("/api/v1/appointments", headers=headers, json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    visit = book(kind="individual_therapy", client_id=person, starts_at=soon.isoformat())
    later = book(kind="individual_therapy", client_id=person, starts_at=(soon + timedelta(days=7)).isoformat())
    group = book(
        kind="group_therapy", client_ids=[person], capacity=4, starts_at=(soon + timedelta(days=1)).isoformat()
    )
    event = overdose(client, ctx, fatal=True, occurred_on=(TODAY - timedelta(days=1)).isoformat()).get_json()

    # Until a clinician confirms, nothing is cancelled.
    assert client.get(f"/api/v1/appointments/{visit['id']}", headers=headers).get_json()["status"] == "scheduled"
    assert client.post(event["discharge"]["confirm_path"], headers=headers, json={}).status_code == 200

    for booked in (visit, later):
        shown = client.get(f"/api/v1/appointments/{booked['id']}", headers=headers).get_json()
        assert shown["status"] == "cancelled_by_clinic"
        assert "died" in shown["cancel_reason"]
        reminders = client.get(f"/api/v1/appointments/{booked['id']}/reminders", headers=headers).get_json()
        assert all(reminder["status"] != "pending" for reminder in reminders), reminders
    [seat] = client.get(f"/api/v1/appointments/{group['id']}/attendees", headers=headers).get_json()["items"]
    assert seat["status"] == "cancelled_by_clinic"
    # The group session itself goes on for the others.
    assert client.get(f"/api/v1/appointments/{group['id']}", headers=headers).get_json()["status"] == "scheduled"


def test_a_confirmed_death_ends_the_medication_orders_still_running_on_that_day(app, client, ward):
    ctx = ward(admitted_on=TODAY - timedelta(days=60))
    headers, person = ctx["headers"], ctx["client"]["id"]
    plan = client.post(f"/api/v1/clients/{person}/plans", headers=headers, json={"problems": []}).get_json()

    def order(**fields):
        body = {
            "medication": "buprenorphine",
            "dose": 16,
            "unit": "mg",
            "frequency": "daily",
            "phase": "maintenance",
            "prescriber_id": ctx["clinician"].id,
            **fields,
        }
        response = client.post(f"/api/v1/plans/{plan['id']}/medications", headers=headers, json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    ended_before = order(
        start_on=(TODAY - timedelta(days=50)).isoformat(), end_on=(TODAY - timedelta(days=30)).isoformat()
    )
    running = order(start_on=(TODAY - timedelta(days=29)).isoformat())
    died_on = TODAY - timedelta(days=2)
    event = overdose(client, ctx, fatal=True, occurred_on=died_on.isoformat()).get_json()
    assert client.post(event["discharge"]["confirm_path"], headers=headers, json={}).status_code == 200

    answer = client.get(f"/api/v1/clients/{person}/medications", headers=headers).get_json()
    listed = {m["id"]: m for m in answer["items"]}
    assert listed[running["id"]]["end_on"] == died_on.isoformat()
    assert listed[ended_before["id"]]["end_on"] == (TODAY - timedelta(days=30)).isoformat()
    [change] = events(app, "medication.update", person)
    assert change.details["via"] == "death"


def test_a_fatal_overdose_of_a_client_without_an_open_episode_asks_for_no_discharge(client, ward):
    ctx = ward()
    discharged = client.post(
        f"/api/v1/episodes/{ctx['episode']['id']}/discharge",
        headers=ctx["headers"],
        json={"discharged_on": (TODAY - timedelta(days=10)).isoformat(), "reason_code": 2},
    )
    assert discharged.status_code == 200
    event = overdose(client, ctx, fatal=True).get_json()
    assert event["discharge"] is None
    confirmed = client.post(f"/api/v1/overdose-events/{event['id']}/confirm-death", headers=ctx["headers"], json={})
    assert confirmed.status_code == 200
    assert confirmed.get_json()["discharged_episode_id"] is None
    [episode] = client.get(f"/api/v1/clients/{ctx['client']['id']}/episodes", headers=ctx["headers"]).get_json()[
        "items"
    ]
    assert episode["reason_code"] == 2  # the earlier discharge stands


def test_a_death_dated_before_the_open_admission_is_refused_on_confirmation(client, ward):
    ctx = ward(admitted_on=TODAY - timedelta(days=5))
    event = overdose(client, ctx, fatal=True, occurred_on=(TODAY - timedelta(days=6)).isoformat()).get_json()
    refused = client.post(f"/api/v1/overdose-events/{event['id']}/confirm-death", headers=ctx["headers"], json={})
    assert refused.status_code == 422
    assert "occurred_on" in refused.get_json()["errors"]
    episodes = client.get(f"/api/v1/clients/{ctx['client']['id']}/episodes", headers=ctx["headers"]).get_json()
    assert episodes["items"][0]["discharged_on"] is None


# --- the report --------------------------------------------------------------------------


def test_the_overdose_prevention_report_by_hand(client, make_site, make_user, bearer):
    """Range 2026-01-01..2026-03-31; naloxone held = a dispense on the month's last day or the 364 before.

    client  admitted    discharged       naloxone               Jan-31  Feb-28  Mar-31
    A       2025-06-01  -                2025-03-31             yes     yes     no (365 days before)
    B       2025-12-01  -                2026-02-10             no      yes     yes
    C       2025-10-01  2026-02-15       2026-01-05             yes     -       -
    D       2026-03-31  -                -                      -       -       no
    E       2025-11-01  2026-03-31 (to)  -                      no      no      -
    F       2025-09-01  died 2026-03-10  -                      no      no      -
    H       2025-05-01  -                2025-04-01             yes     yes     yes (364 days before)
    in treatment                                                6       5       4
    holding naloxone                                            3       3       2
    Overdoses: B 2026-02-20; F 2026-03-10, fatal; A 2025-12-31 (before the range). Another site's
    client, with naloxone and an overdose in the range, counts nowhere.
    """
    site = make_site()
    clinician = make_user("clinician", sites=[site])
    headers = bearer(clinician)

    def admitted(name: str, on: str, site_id: int = site.id, h: dict[str, str] = headers) -> tuple[int, int]:
        person = client.post(
            "/api/v1/clients",
            headers=h,
            json={"site_id": site_id, "first_name": name, "last_name": "Case", "date_of_birth": "1990-01-01"},
        ).get_json()
        episode = client.post(
            f"/api/v1/clients/{person['id']}/episodes", headers=h, json={"admitted_on": on, "level_of_care": "1"}
        ).get_json()
        return person["id"], episode["id"]

    def give(client_id: int, on: str, h: dict[str, str] = headers) -> None:
        body = {"dispensed_on": on, "formulation": "nasal_4mg", "quantity": 2, "education_given": True}
        assert client.post(f"/api/v1/clients/{client_id}/naloxone", headers=h, json=body).status_code == 201

    def overdosed(client_id: int, on: str, *, fatal: bool = False, h: dict[str, str] = headers) -> dict:
        body = {"occurred_on": on, "fatal": fatal, "naloxone_used": None, "substances": [], "source": "family"}
        response = client.post(f"/api/v1/clients/{client_id}/overdose-events", headers=h, json=body)
        assert response.status_code == 201
        return response.get_json()

    def discharge(episode_id: int, on: str, reason: int) -> None:
        body = {"discharged_on": on, "reason_code": reason}
        assert client.post(f"/api/v1/episodes/{episode_id}/discharge", headers=headers, json=body).status_code == 200

    a, _ = admitted("Ada", "2025-06-01")
    give(a, "2025-03-31")
    overdosed(a, "2025-12-31")
    b, _ = admitted("Ben", "2025-12-01")
    give(b, "2026-02-10")
    overdosed(b, "2026-02-20")
    c, c_episode = admitted("Cal", "2025-10-01")
    give(c, "2026-01-05")
    discharge(c_episode, "2026-02-15", 2)
    admitted("Dee", "2026-03-31")
    _, e_episode = admitted("Eve", "2025-11-01")
    discharge(e_episode, "2026-03-31", 1)
    f, _ = admitted("Fay", "2025-09-01")
    death = overdosed(f, "2026-03-10", fatal=True)
    assert client.post(death["discharge"]["confirm_path"], headers=headers, json={}).status_code == 200
    h, _ = admitted("Hal", "2025-05-01")
    give(h, "2025-04-01")
    other = make_site()
    other_headers = bearer(make_user("clinician", sites=[other]))
    elsewhere, _ = admitted("Ola", "2025-06-01", other.id, other_headers)
    give(elsewhere, "2026-01-10", other_headers)
    overdosed(elsewhere, "2026-01-11", h=other_headers)

    admin = bearer(make_user("admin"))
    query = {"from": "2026-01-01", "to": "2026-03-31", "site_id": site.id}
    doc = client.get("/api/v1/reports/overdose-prevention", headers=admin, query_string=query).get_json()
    assert doc["summary"] == {
        "active_clients": 4,
        "with_naloxone": 2,
        "naloxone_rate": 0.5,
        "overdoses": 2,
        "fatal_overdoses": 1,
    }
    assert doc["rows"] == [
        {
            "month": "2026-01",
            "active_clients": 6,
            "with_naloxone": 3,
            "naloxone_rate": 0.5,
            "naloxone_dispenses": 1,
            "overdoses": 0,
            "fatal_overdoses": 0,
        },
        {
            "month": "2026-02",
            "active_clients": 5,
            "with_naloxone": 3,
            "naloxone_rate": 0.6,
            "naloxone_dispenses": 1,
            "overdoses": 1,
            "fatal_overdoses": 0,
        },
        {
            "month": "2026-03",
            "active_clients": 4,
            "with_naloxone": 2,
            "naloxone_rate": 0.5,
            "naloxone_dispenses": 0,
            "overdoses": 1,
            "fatal_overdoses": 1,
        },
    ]
    csv = client.get(
        "/api/v1/reports/overdose-prevention", headers=admin, query_string={**query, "format": "csv"}
    ).get_data(as_text=True)
    assert csv.splitlines()[0] == (
        "month,active_clients,with_naloxone,naloxone_rate,naloxone_dispenses,overdoses,fatal_overdoses"
    )
    assert csv.splitlines()[2] == "2026-02,5,3,0.6,1,1,0"
    svg = client.get("/api/v1/reports/overdose-prevention", headers=admin, query_string={**query, "format": "svg"})
    assert svg.status_code == 200
    assert "Holding naloxone: 50%" in svg.get_data(as_text=True)


def test_the_report_of_a_site_without_clients_or_events_is_empty(client, make_site, make_user, bearer):
    site = make_site()
    admin = bearer(make_user("admin"))
    doc = client.get("/api/v1/reports/overdose-prevention", headers=admin, query_string={"site_id": site.id}).get_json()
    assert doc["rows"] == []
    assert doc["summary"] == {
        "active_clients": 0,
        "with_naloxone": 0,
        "naloxone_rate": None,
        "overdoses": 0,
        "fatal_overdoses": 0,
    }
