"""What every request gets from the request cycle, whatever the view: no caching of client data,
and an audit event for every refusal on client data."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.assessments.models import Assessment
from clinic.audit.models import AuditEvent, Outcome
from clinic.auth.models import Role, User
from clinic.clients.models import Client, Consent, Episode
from clinic.core.permissions import Permission, declared_permissions
from clinic.core.time import utcnow
from clinic.demo.loader import seed
from clinic.extensions import db
from clinic.intake.models import IntakeCall
from clinic.notify.links import make_token
from clinic.notify.models import ReminderChannel
from clinic.plans.models import CMProgram, DrugScreen, Medication, Plan, PlanRevision, PlanStatus
from clinic.scheduling.models import Appointment

#: Permissions whose routes hand out client records.
CLIENT_DATA = {Permission.CLIENTS_READ, Permission.CLINICAL_READ, Permission.INTAKE_READ, Permission.APPOINTMENTS_READ}

#: Query parameters a route needs to answer 200 (a route missing here is asked with none).
QUERY: dict[str, dict[str, str]] = {
    "assessments.assessment_trend": {"instrument": "PHQ-9"},
    "plans.diff_revisions": {"from": "1", "to": "1"},
    "dosing.dispensing_log": {"date": "2026-01-05"},
}


def client_data_get_routes(app: Flask) -> list[tuple[str, str]]:
    """``(rule, endpoint)`` of every GET route that serves client data, read from the URL map."""
    routes = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()):
            continue
        declared = declared_permissions(app.view_functions[rule.endpoint])
        if (declared and declared & CLIENT_DATA) or rule.endpoint.startswith("reminder_links."):
            routes.append((rule.rule, rule.endpoint))
    return sorted(routes)


@pytest.fixture
def demo(app: Flask, client: FlaskClient, bearer: Callable[[User], dict[str, str]]) -> dict[str, Any]:
    """A small demo clinic (the seeder's clients, plans, appointments...), one of its clinicians,
    and what the seeder does not make: a group session and a contingency-management program."""
    with app.app_context():
        seed(clients=24, seed=3, today=utcnow().date())
        db.session.commit()
        clinician = db.session.scalars(select(User).where(User.role == Role.CLINICIAN).order_by(User.id)).first()
        assert clinician is not None
        site_id = min(clinician.site_ids)
        open_plan = (Plan.site_id == site_id, Plan.status != PlanStatus.CLOSED)
        plan = db.session.scalars(select(Plan).where(*open_plan).order_by(Plan.id)).first()
        assert plan is not None
        members = db.session.scalars(select(Client.id).where(Client.site_id == site_id).order_by(Client.id)).all()[:2]
    headers = bearer(clinician)
    starts = (utcnow() + timedelta(days=300)).replace(hour=15, minute=0, second=0, microsecond=0)
    group = client.post("/api/v1/appointments", headers=headers, json={
        "site_id": site_id, "kind": "group_therapy", "clinician_id": clinician.id, "client_ids": list(members),
        "starts_at": starts.isoformat(), "duration_minutes": 60, "capacity": 8,
    })
    assert group.status_code == 201, group.get_json()
    program = client.post(f"/api/v1/plans/{plan.id}/cm-programs", headers=headers, json={
        "target_substances": ["fentanyl"], "schedule": "escalating_voucher",
    })
    assert program.status_code == 201, program.get_json()
    with app.app_context():
        ids = _ids_within(sorted(clinician.site_ids))
        link = make_token(db.session.get_one(Appointment, ids["appointment_id"]), ids["link_client_id"],
                          ReminderChannel.SMS)
    # The FHIR export is disclosed under a consent of the client: one in force, for its query.
    consent = client.post(f"/api/v1/clients/{ids['client_id']}/consents", headers=headers, json={
        "kind": "disclosure", "recipient": "Dr. A. Primary, MD", "purpose": "coordination of care",
        "information_description": "the record", "disclosing_party": "the program", "signature_name": "the client",
        "signed_on": utcnow().date().isoformat(), "expires_on": (utcnow() + timedelta(days=30)).date().isoformat(),
        "revocation_acknowledged": True,
    })
    assert consent.status_code == 201, consent.get_json()
    query = {"fhir.client_fhir": {"consent_id": str(consent.get_json()["id"])}}
    return {"clinician": clinician, "ids": ids, "link_token": link, "query": query}


def _ids_within(sites: list[int]) -> dict[str, int]:
    def first(model: Any, *where: Any) -> int:
        found = db.session.scalar(select(model.id).where(model.site_id.in_(sites), *where).order_by(model.id))
        assert found is not None, f"the demo has no {model.__name__} at the clinician's sites"
        return int(found)

    plan_id = first(Plan)
    group = first(Appointment, Appointment.is_group.is_(True))
    individual = db.session.get_one(Appointment, first(Appointment, Appointment.is_group.is_(False)))
    return {
        "client_id": db.session.get_one(Plan, plan_id).client_id,
        "plan_id": plan_id,
        "number": int(db.session.scalar(select(func.min(PlanRevision.number)).where(PlanRevision.plan_id == plan_id))),
        "program_id": first(CMProgram),
        "assessment_id": first(Assessment),
        "call_id": first(IntakeCall),
        "appointment_id": individual.id,
        "group_appointment_id": group,
        "link_client_id": individual.client_id or 0,
        "medication_id": first(Medication),
        "screen_id": first(DrugScreen),
        "episode_id": first(Episode),
        "consent_id": first(Consent),
        "site_id": sites[0],
    }


def _url(rule: str, endpoint: str, demo: dict[str, Any]) -> str:
    ids = demo["ids"]

    def value(match: re.Match[str]) -> str:
        name = match.group(2)
        if name == "token":
            return str(demo["link_token"])
        if name == "appointment_id" and endpoint == "scheduling.list_attendees":
            return str(ids["group_appointment_id"])
        return str(ids[name])

    return re.sub(r"<(?:(\w+):)?(\w+)>", value, rule)


def test_every_client_data_get_route_is_never_cached(
    app: Flask, client: FlaskClient, demo: dict[str, Any], bearer: Callable[[User], dict[str, str]]
) -> None:
    routes = client_data_get_routes(app)
    assert len(routes) >= 30  # the URL map is read, not a hand-kept list
    headers = bearer(demo["clinician"])
    answered = {}
    for rule, endpoint in routes:
        url = _url(rule, endpoint, demo)
        query = QUERY.get(endpoint) or demo["query"].get(endpoint, {})
        response = client.get(url, headers=headers, query_string=query)
        response.get_data()  # a streamed export holds its request open until read
        response.close()
        answered[endpoint] = response.status_code
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
        assert response.headers.get("Cache-Control") == "no-store", url
    assert "reminder_links.show" in answered  # a page for clients, seen without signing in


def test_a_client_data_page_seen_without_signing_in_is_never_cached(
    client: FlaskClient, demo: dict[str, Any]
) -> None:
    response = client.get(f"/r/{demo['link_token']}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    forged = client.get("/r/not-a-token")
    assert forged.status_code == 404
    assert forged.headers["Cache-Control"] == "no-store"


def test_a_response_without_client_data_may_be_cached(client: FlaskClient) -> None:
    """The mark is not put on everything: the health check carries none."""
    assert "no-store" not in client.get("/healthz").headers.get("Cache-Control", "")


def _denials(app: Flask, since: int) -> list[AuditEvent]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > since, AuditEvent.action == "access.denied")
                .order_by(AuditEvent.id)
            )
        )


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


#: One route of each domain that serves client data: (domain, URL template, the id it names).
ONE_ROUTE_PER_DOMAIN = [
    ("clients", "/api/v1/clients/{client_id}", "client_id"),
    ("intake", "/api/v1/intake-calls/{call_id}", "call_id"),
    ("assessments", "/api/v1/assessments/{assessment_id}", "assessment_id"),
    ("plans", "/api/v1/plans/{plan_id}", "plan_id"),
    ("scheduling", "/api/v1/appointments/{appointment_id}", "appointment_id"),
    ("notify", "/api/v1/appointments/{appointment_id}/reminders", "appointment_id"),
    ("disclosures", "/api/v1/clients/{client_id}/disclosures", "client_id"),
]


@pytest.mark.parametrize(("domain", "template", "name"), ONE_ROUTE_PER_DOMAIN, ids=[d for d, _t, _n in ONE_ROUTE_PER_DOMAIN])
def test_a_role_refusal_on_client_data_is_audited(
    app: Flask,
    client: FlaskClient,
    demo: dict[str, Any],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
    domain: str,
    template: str,
    name: str,
) -> None:
    admin = make_user(Role.ADMIN)
    url = template.format(**demo["ids"])
    since = _last_event_id(app)
    response = client.get(url, headers=bearer(admin))
    assert response.status_code == 403
    (event,) = _denials(app, since)
    assert (event.user_id, event.outcome, event.resource) == (admin.id, Outcome.DENIED, "endpoint")
    assert event.details is not None
    assert event.details["path"] == url
    assert "lacks" in event.details["reason"]
    if name == "client_id":
        assert event.client_id == demo["ids"]["client_id"]


@pytest.mark.parametrize(("domain", "template", "name"), ONE_ROUTE_PER_DOMAIN, ids=[d for d, _t, _n in ONE_ROUTE_PER_DOMAIN])
def test_an_out_of_scope_404_on_client_data_is_audited(
    app: Flask,
    client: FlaskClient,
    demo: dict[str, Any],
    make_site: Callable[..., Any],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
    domain: str,
    template: str,
    name: str,
) -> None:
    outsider = make_user(Role.CLINICIAN, sites=[make_site()])
    url = template.format(**demo["ids"])
    since = _last_event_id(app)
    response = client.get(url, headers=bearer(outsider))
    assert response.status_code == 404
    assert response.get_json()["detail"] == "Not found."
    events = _denials(app, since)
    assert events, f"no access.denied event for {url}"
    assert all(e.user_id == outsider.id and e.outcome is Outcome.DENIED for e in events)
    assert str(demo["ids"][name]) in {e.resource_id for e in events}
    with app.app_context():
        expected_clients = _clients_of(name, demo["ids"][name])
    assert {e.client_id for e in events} == expected_clients


def _clients_of(name: str, ident: int) -> set[int | None]:
    model = {
        "client_id": Client, "call_id": IntakeCall, "assessment_id": Assessment, "plan_id": Plan,
        "appointment_id": Appointment,
    }[name]
    row = db.session.get_one(model, ident)
    if isinstance(row, Client):
        return {row.id}
    if isinstance(row, Appointment):
        return set(row.audit_client_ids()) or {None}
    return {row.client_id}


def test_a_missing_record_is_a_plain_404_with_nothing_to_audit(
    app: Flask, client: FlaskClient, demo: dict[str, Any], bearer: Callable[[User], dict[str, str]]
) -> None:
    since = _last_event_id(app)
    assert client.get("/api/v1/clients/2000000000", headers=bearer(demo["clinician"])).status_code == 404
    assert _denials(app, since) == []


def test_a_denied_write_leaves_only_the_denial(
    app: Flask, client: FlaskClient, demo: dict[str, Any], make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> None:
    """A refused write is rolled back whole, and its denial is still written (in its own transaction)."""
    admin = make_user(Role.ADMIN)
    client_id = demo["ids"]["client_id"]
    with app.app_context():
        language = db.session.get_one(Client, client_id).preferred_language
    wanted = "es" if language != "es" else "en"
    headers = bearer(admin)
    since = _last_event_id(app)
    response = client.patch(f"/api/v1/clients/{client_id}", headers=headers, json={"preferred_language": wanted})
    assert response.status_code == 403
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.id > since)).all()
        assert [(e.action, e.client_id) for e in events] == [("access.denied", client_id)]
        assert db.session.get_one(Client, client_id).preferred_language == language
    assert utcnow() - events[0].at < timedelta(minutes=1)
