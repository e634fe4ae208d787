"""Safety alerts are never dropped: routing when the clinician is gone, acknowledgement, one escalation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from clinic.audit.models import AuditEvent
from clinic.auth import operations as auth_ops
from clinic.auth.models import Role, User
from clinic.clients.models import Client
from clinic.clients.operations import register_client
from clinic.core.time import utcnow
from clinic.core.unit_of_work import unit_of_work
from clinic.extensions import db
from clinic.notify.models import StaffNotification, StaffNotificationKind
from clinic.notify.staff import escalate_safety_alerts, send_safety_alert
from clinic.notify.tasks import escalate_safety_alerts_task
from tests.conftest import PASSWORD, committed_postgres_app

ALERTS = "/api/v1/staff-notifications"
PHQ9_ITEM9 = {"q1": 1, "q2": 1, "q3": 1, "q4": 1, "q5": 1, "q6": 1, "q7": 1, "q8": 1, "q9": 2}


@pytest.fixture
def clinic_site(make_site, make_user, bearer, client) -> dict[str, Any]:
    """A site with a primary clinician, a colleague, two supervisors and an admin, and a client."""
    site = make_site()
    admin = make_user("admin", sites=[site])
    people = {
        "site": site,
        "admin": admin,
        "primary": make_user("clinician", sites=[site]),
        "colleague": make_user("clinician", sites=[site]),
        "supervisor_a": make_user("clinician", sites=[site], is_supervisor=True),
        "supervisor_b": make_user("clinician", sites=[site], is_supervisor=True),
        "other_admin": make_user("admin", sites=[make_site()]),
    }
    people["headers"] = {name: bearer(user) for name, user in people.items() if name != "site"}
    people["client"] = register(client, people, people["primary"].id)
    return people


def register(client, people, primary_id: int | None, first_name: str = "Lee") -> dict[str, Any]:
    response = client.post(
        "/api/v1/clients",
        headers=people["headers"]["primary"],
        json={
            "site_id": people["site"].id,
            "first_name": first_name,
            "last_name": "Moss",
            "date_of_birth": "1985-03-04",
            "primary_clinician_id": primary_id,
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def phq9_item9(client, people, by: str = "colleague") -> dict[str, Any]:
    response = client.post(
        f"/api/v1/clients/{people['client']['id']}/assessments",
        headers=people["headers"][by],
        json={
            "instrument": "PHQ-9",
            "answers": PHQ9_ITEM9,
            "administered_at": (utcnow() - timedelta(minutes=5)).isoformat(),
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["flags"] == ["suicide_risk_item"]
    return response.get_json()


def alerts_of(client, people, who: str) -> list[dict[str, Any]]:
    response = client.get(ALERTS, headers=people["headers"][who])
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["items"])


def set_user(client, people, who: str, **changes: Any) -> None:
    response = client.patch(f"/api/v1/users/{people[who].id}", headers=people["headers"]["admin"], json=changes)
    assert response.status_code == 200, response.get_json()


def age_alerts(app: Flask, by: timedelta) -> None:
    """Make every alert as old as ``by`` (the clock cannot be moved for the API)."""
    with app.app_context():
        db.session.execute(update(StaffNotification).values(created_at=utcnow() - by))
        db.session.commit()


def escalate(app: Flask) -> int:
    with app.app_context():
        done = escalate_safety_alerts()
        db.session.commit()
        return done


# --- routing --------------------------------------------------------------------------------


def test_phq9_item9_with_the_clinician_deactivated_reaches_every_supervisor(client, clinic_site):
    people = clinic_site
    set_user(client, people, "primary", is_active=False)
    assessment = phq9_item9(client, people)
    for supervisor in ("supervisor_a", "supervisor_b"):
        [alert] = alerts_of(client, people, supervisor)
        assert alert["kind"] == "safety_flag"
        assert alert["client_id"] == people["client"]["id"]
        assert alert["resource_id"] == str(assessment["id"])
        assert alert["acknowledged_at"] is None
        assert alert["escalated"] is False
        assert alert["created_at"]
        assert "Lee" not in alert["title"] + alert["body"] and "Moss" not in alert["title"] + alert["body"]
    for nobody in ("admin", "other_admin"):
        assert alerts_of(client, people, nobody) == []
    # The clinician who administered it, with the client now, is told too.
    assert [a["resource_id"] for a in alerts_of(client, people, "colleague")] == [str(assessment["id"])]


def test_without_supervisors_the_site_admins_get_it(client, clinic_site):
    people = clinic_site
    set_user(client, people, "primary", is_active=False)
    set_user(client, people, "supervisor_a", is_supervisor=False)
    set_user(client, people, "supervisor_b", is_active=False)
    phq9_item9(client, people)
    [alert] = alerts_of(client, people, "admin")
    assert (alert["kind"], alert["client_id"], alert["escalated"]) == ("safety_flag", people["client"]["id"], False)
    assert alerts_of(client, people, "other_admin") == []
    assert alerts_of(client, people, "supervisor_a") == []
    assert len(alerts_of(client, people, "colleague")) == 1  # who administered it


def test_an_active_clinician_gets_it_alone(client, clinic_site):
    people = clinic_site
    phq9_item9(client, people)
    assert len(alerts_of(client, people, "primary")) == 1
    for nobody in ("colleague", "supervisor_a", "supervisor_b", "admin"):
        assert alerts_of(client, people, nobody) == []


def test_the_new_kinds_are_stored_and_only_safety_kinds_are_routed(app, clinic_site):
    people = clinic_site
    with app.test_request_context():
        client_row = db.session.get_one(Client, people["client"]["id"])
        for kind in (StaffNotificationKind.OVERDOSE, StaffNotificationKind.MISSED_DOSES):
            [made] = send_safety_alert(
                client_row, kind=kind, title="t", body="b", dedupe_key=f"test:{kind.value}", also_user_ids=(None,)
            )
            assert made.user_id == people["primary"].id
        with pytest.raises(ValueError, match="not a safety alert kind"):
            send_safety_alert(client_row, kind=StaffNotificationKind.CLIENT_REPLY, title="t", body="b", dedupe_key="x")
        db.session.commit()
        kinds = db.session.scalars(
            select(StaffNotification.kind).where(StaffNotification.client_id == client_row.id)
        ).all()
    assert sorted(k.value for k in kinds) == ["missed_doses", "overdose"]


def test_who_an_alert_went_to_is_on_the_clients_audit_trail(app, client, clinic_site):
    people = clinic_site
    # The active primary clinician gets it; with them gone, both supervisors and whoever administered it.
    phq9_item9(client, people)
    set_user(client, people, "primary", is_active=False)
    phq9_item9(client, people)
    with app.app_context():
        routed = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "staff_notification.route", AuditEvent.client_id == people["client"]["id"])
            .order_by(AuditEvent.id)
        ).all()
    assert [sorted(event.details["to_user_ids"]) for event in routed] == [
        [people["primary"].id],
        sorted([people["colleague"].id, people["supervisor_a"].id, people["supervisor_b"].id]),
    ]
    assert {event.details["kind"] for event in routed} == {"safety_flag"}


# --- escalation -----------------------------------------------------------------------------


def test_escalation_after_the_hours_once_to_the_supervisors(app, client, clinic_site):
    people = clinic_site
    phq9_item9(client, people)
    age_alerts(app, timedelta(hours=3, minutes=59))
    assert escalate(app) == 0
    assert alerts_of(client, people, "supervisor_a") == []

    age_alerts(app, timedelta(hours=4, minutes=1))
    with app.app_context():
        assert escalate_safety_alerts_task.apply().get() == 1
        assert escalate_safety_alerts_task.apply().get() == 0
    assert escalate(app) == 0
    for supervisor in ("supervisor_a", "supervisor_b"):
        [copy] = alerts_of(client, people, supervisor)
        assert copy["escalated"] is True
        assert copy["kind"] == "safety_flag"
        assert copy["client_id"] == people["client"]["id"]
        assert copy["acknowledged_at"] is None
        assert "4 hours" in copy["body"]
    [original] = alerts_of(client, people, "primary")
    assert original["escalated"] is False and original["escalated_at"] is not None
    assert alerts_of(client, people, "admin") == []
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "staff_notification.escalate")).all()
        assert [e.client_id for e in events] == [people["client"]["id"]]


def test_an_acknowledged_alert_is_not_escalated(app, client, clinic_site):
    people = clinic_site
    phq9_item9(client, people)
    [alert] = alerts_of(client, people, "primary")
    acknowledged = client.post(
        f"{ALERTS}/{alert['id']}/acknowledge", headers=people["headers"]["primary"], json={"note": "Called; safe."}
    )
    assert acknowledged.status_code == 200, acknowledged.get_json()
    assert acknowledged.get_json()["acknowledged_at"] is not None
    age_alerts(app, timedelta(hours=30))
    assert escalate(app) == 0
    assert alerts_of(client, people, "supervisor_a") == []


def test_one_supervisors_acknowledgement_stops_it_for_all(app, client, clinic_site):
    people = clinic_site
    set_user(client, people, "primary", is_active=False)
    phq9_item9(client, people)
    [alert] = alerts_of(client, people, "supervisor_b")
    client.post(f"{ALERTS}/{alert['id']}/acknowledge", headers=people["headers"]["supervisor_b"])
    age_alerts(app, timedelta(hours=5))
    assert escalate(app) == 0
    assert [a["escalated"] for a in alerts_of(client, people, "supervisor_a")] == [False]
    assert alerts_of(client, people, "admin") == []


def test_the_only_supervisor_as_clinician_escalates_to_the_admins(app, client, clinic_site):
    people = clinic_site
    set_user(client, people, "supervisor_b", is_supervisor=False)
    people["client"] = register(client, people, people["supervisor_a"].id, first_name="Kim")
    phq9_item9(client, people)
    age_alerts(app, timedelta(hours=4, minutes=1))
    assert escalate(app) == 1
    [copy] = alerts_of(client, people, "admin")
    assert copy["escalated"] is True
    assert [a["escalated"] for a in alerts_of(client, people, "supervisor_a")] == [False]
    assert alerts_of(client, people, "other_admin") == []


# --- two workers at once (PostgreSQL, committed data) ----------------------------------------


@pytest.fixture
def committed_app() -> Iterator[Flask]:
    with committed_postgres_app(connections=4) as app:
        yield app


def test_two_workers_at_once_escalate_exactly_once(committed_app: Flask) -> None:
    app = committed_app
    with app.test_request_context():
        site = auth_ops.create_site(name="Parallel site", timezone="America/New_York")
        db.session.flush()
        ids = {}
        for name, supervisor in (("primary", False), ("sup_a", True), ("sup_b", True)):
            user = auth_ops.create_user(
                email=f"{name}@example.org",
                name=name,
                role=Role.CLINICIAN,
                site_ids=[site.id],
                password=PASSWORD,
                is_supervisor=supervisor,
                audit=False,
            )
            ids[name] = user.id
        client_row = register_client(
            actor=db.session.get_one(User, ids["primary"]),
            site_id=site.id,
            first_name="Par",
            last_name="Allel",
            date_of_birth=date(1990, 1, 1),
            primary_clinician_id=ids["primary"],
        )
        send_safety_alert(client_row, kind=StaffNotificationKind.OVERDOSE, title="t", body="b", dedupe_key="race")
        db.session.execute(update(StaffNotification).values(created_at=utcnow() - timedelta(hours=5)))
        db.session.commit()

    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait()
                with unit_of_work():
                    results.append(escalate_safety_alerts())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(results) == [0, 1]
    with app.app_context():
        copies = db.session.scalars(
            select(StaffNotification.user_id).where(StaffNotification.escalated.is_(True))
        ).all()
    assert sorted(copies) == sorted([ids["sup_a"], ids["sup_b"]])


def test_the_client_banner_shows_one_chip_for_an_alert_with_many_copies(app, client, clinic_site, login):
    people = clinic_site
    set_user(client, people, "primary", is_active=False)
    phq9_item9(client, people)  # to both supervisors and the colleague who administered it
    age_alerts(app, timedelta(hours=5))
    set_user(client, people, "supervisor_b", is_supervisor=False)
    escalate(app)  # and once more to the admin
    page = login(people["colleague"]).get(f"/clients/{people['client']['id']}")
    assert page.status_code == 200
    banner = page.get_data(as_text=True).split("</section>")[0]
    assert banner.count('<span class="tag tag--red">Safety alert: PHQ-9</span>') == 1
