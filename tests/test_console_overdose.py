"""The overdose prevention page (/clients/{id}/overdose) and the chart's card: naloxone dispensed and due,
overdose events, and the confirmation of a death that discharges the client."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.clients.models import Episode
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.overdose.models import NaloxoneDispense, OverdoseEvent
from tests.conftest import Session

TODAY = to_local(utcnow(), "America/New_York").date()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(name=f"Riverside {utcnow().timestamp()}")


@pytest.fixture
def clinician(make_user: Callable[..., User], site: Site) -> User:
    return make_user("clinician", sites=[site], name="Dana Reyes")


@pytest.fixture
def signed_in(login: Callable[..., Session], clinician: User) -> Session:
    return login(clinician)


def _client(session: Session, site: Site, admitted_days_ago: int | None = None) -> int:
    response = session.post(
        "/api/v1/clients?allow_duplicate=true",
        json={
            "site_id": site.id,
            "first_name": "Maria",
            "last_name": "Okafor",
            "date_of_birth": "1988-04-12",
            "primary_clinician_id": session.user.id,
        },
    )
    assert response.status_code == 201, response.get_json()
    client_id = int(response.get_json()["id"])
    if admitted_days_ago is not None:
        admitted = session.post(
            f"/api/v1/clients/{client_id}/episodes",
            json={"admitted_on": (TODAY - timedelta(days=admitted_days_ago)).isoformat(), "level_of_care": "1-OTP"},
        )
        assert admitted.status_code == 201, admitted.get_json()
    return client_id


def _text(response: Any) -> str:
    html = response.get_data(as_text=True)
    html = html[html.index("<main") : html.index("</main>")]
    html = re.sub(r"</?(span|strong|a|em|time)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _actions(app: Flask, since: int, client_id: int) -> list[str]:
    with app.app_context():
        stmt = select(AuditEvent.action).where(AuditEvent.id > since, AuditEvent.client_id == client_id)
        return list(db.session.scalars(stmt.order_by(AuditEvent.id)))


def _count(app: Flask, model: Any, client_id: int) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model).where(model.client_id == client_id)) or 0)


def _naloxone(session: Session, client_id: int, **fields: Any) -> Any:
    return session.post(
        f"/clients/{client_id}/naloxone",
        data={
            "csrf_token": session.csrf_token,
            "dispensed_on": TODAY.isoformat(),
            "formulation": "nasal_4mg",
            "quantity": "2",
            "education_given": "true",
            **fields,
        },
    )


def _overdose(session: Session, client_id: int, **fields: Any) -> Any:
    return session.post(
        f"/clients/{client_id}/overdose-events",
        data={
            "csrf_token": session.csrf_token,
            "occurred_on": (TODAY - timedelta(days=1)).isoformat(),
            "fatal": "false",
            "naloxone_used": "true",
            "substances": "Fentanyl, xylazine",
            "setting": "home",
            "source": "family",
            **fields,
        },
    )


def test_the_page_is_for_clinicians_audited_and_says_naloxone_is_due(
    app: Flask,
    signed_in: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., Session],
    make_site: Callable[..., Site],
) -> None:
    client_id = _client(signed_in, site)
    since = _last_event_id(app)
    response = signed_in.get(f"/clients/{client_id}/overdose")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = _text(response)
    assert "Naloxone due No naloxone has been dispensed to this client." in text
    assert "No overdose recorded." in text
    assert {"client.read", "naloxone_dispense.read", "overdose_event.read"} <= set(_actions(app, since, client_id))

    intake = login(make_user("intake", sites=[site]))
    assert intake.get(f"/clients/{client_id}/overdose").status_code == 403
    assert _naloxone(intake, client_id).status_code == 403
    other = login(make_user("clinician", sites=[make_site()]))
    since = _last_event_id(app)
    assert other.get(f"/clients/{client_id}/overdose").status_code == 404
    assert "access.denied" in _actions(app, since, client_id)
    assert _overdose(other, client_id).status_code == 404
    assert _count(app, OverdoseEvent, client_id) == 0


def test_recording_naloxone_shows_it_held_until_due_again(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    old = _naloxone(signed_in, client_id, dispensed_on=(TODAY - timedelta(days=400)).isoformat())
    assert old.status_code == 303
    assert "Naloxone due Last dispensed" in _text(signed_in.get(f"/clients/{client_id}/overdose"))
    since = _last_event_id(app)
    done = _naloxone(signed_in, client_id, formulation="im_0_4mg", quantity="3")
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"/clients/{client_id}/overdose?done=naloxone")
    assert "naloxone_dispense.create" in _actions(app, since, client_id)
    text = _text(signed_in.get(f"/clients/{client_id}/overdose?done=naloxone"))
    assert "Naloxone dispense recorded." in text
    assert "Holds naloxone Last dispensed" in text and "(3 units: Intramuscular injection, 0.4 mg/mL)" in text
    due = TODAY + timedelta(days=365)
    assert f"Due again {due.strftime('%b')} {due.day}, {due.year}" in text
    api = signed_in.get(f"/api/v1/clients/{client_id}/naloxone").get_json()["items"]
    assert [(d["formulation"], d["quantity"]) for d in api] == [("im_0_4mg", 3), ("nasal_4mg", 2)]


def test_bad_naloxone_input_is_shown_beside_the_fields_and_nothing_is_written(
    app: Flask, signed_in: Session, site: Site
) -> None:
    client_id = _client(signed_in, site)
    empty = signed_in.post(
        f"/clients/{client_id}/naloxone", data={"csrf_token": signed_in.csrf_token, "dispensed_on": "", "quantity": ""}
    )
    assert empty.status_code == 422
    text = _text(empty)
    for message in (
        "Choose the formulation.",
        "Enter how many units were handed over.",
        "Say whether overdose response was taught.",
    ):
        assert message in text
    html = empty.get_data(as_text=True)
    assert 'id="formulation-error"' in html and 'id="quantity-error"' in html
    too_many = _naloxone(signed_in, client_id, quantity="40")
    assert too_many.status_code == 422 and "Must be between 1 and 24." in _text(too_many)
    assert 'value="40"' in too_many.get_data(as_text=True)
    future = _naloxone(signed_in, client_id, dispensed_on=(TODAY + timedelta(days=5)).isoformat())
    assert future.status_code == 422 and 'id="dispensed_on-error"' in future.get_data(as_text=True)
    assert _count(app, NaloxoneDispense, client_id) == 0


def test_recording_an_overdose_alerts_and_lists_it(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    since = _last_event_id(app)
    done = _overdose(signed_in, client_id, naloxone_used="unknown", note="Found by her brother")
    assert done.status_code == 303 and done.headers["Location"].endswith("done=overdose")
    assert "overdose_event.create" in _actions(app, since, client_id)
    [event] = signed_in.get(f"/api/v1/clients/{client_id}/overdose-events").get_json()["items"]
    assert event["substances"] == ["fentanyl", "xylazine"] and event["naloxone_used"] is None
    assert event["source"] == "family"
    page = signed_in.get(f"/clients/{client_id}/overdose?done=overdose")
    text = _text(page)
    assert "Overdose recorded. The client's clinician has been sent a safety alert." in text
    assert "Survived Not known fentanyl, xylazine home Found by her brother Family or a friend" in text
    assert "Safety alert: overdose reported" in page.get_data(as_text=True)
    assert "Confirm death" not in text


def test_bad_overdose_input_is_shown_beside_the_fields_and_nothing_is_written(
    app: Flask, signed_in: Session, site: Site
) -> None:
    client_id = _client(signed_in, site)
    missing = signed_in.post(
        f"/clients/{client_id}/overdose-events",
        data={"csrf_token": signed_in.csrf_token, "occurred_on": "", "substances": "fentanyl"},
    )
    assert missing.status_code == 422
    text = _text(missing)
    for message in (
        "Enter the date of the overdose.",
        "Say whether the overdose was fatal.",
        "Say whether naloxone was used (or that it is not known).",
        "Choose who reported the overdose.",
    ):
        assert message in text
    assert 'value="fentanyl"' in missing.get_data(as_text=True)
    bad = _overdose(signed_in, client_id, substances="fentanyl, K2 spice!")
    assert bad.status_code == 422 and 'id="substances-error"' in bad.get_data(as_text=True)
    assert "Substance names are lower-case" in _text(bad)
    future = _overdose(signed_in, client_id, occurred_on=(TODAY + timedelta(days=4)).isoformat())
    assert future.status_code == 422 and 'id="occurred_on-error"' in future.get_data(as_text=True)
    assert _count(app, OverdoseEvent, client_id) == 0


def test_a_fatal_overdose_is_confirmed_and_discharges_the_client(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site, admitted_days_ago=30)
    done = _overdose(signed_in, client_id, fatal="true", source="ed_notice")
    assert done.status_code == 303 and done.headers["Location"].endswith("done=fatal")
    page = signed_in.get(f"/clients/{client_id}/overdose?done=fatal")
    html = page.get_data(as_text=True)
    assert "Fatal overdose recorded" in _text(page)
    [event_id] = re.findall(r'action="/clients/\d+/overdose-events/(\d+)/confirm-death"', html)
    confirm = re.search(r'data-confirm="([^"]+)"', html.split("confirm-death")[1])
    assert confirm is not None
    message = confirm.group(1).replace("&#39;", "'")
    assert "closes on" in message and "TEDS reason 6 (death)" in message
    assert "every appointment ahead is cancelled" in message and "medication orders still running end" in message
    assert ">Confirm death and discharge (TEDS 6)</button>" in html
    with app.app_context():
        assert db.session.scalar(select(Episode.discharged_on).where(Episode.client_id == client_id)) is None

    since = _last_event_id(app)
    confirmed = signed_in.post(
        f"/clients/{client_id}/overdose-events/{event_id}/confirm-death", data={"csrf_token": signed_in.csrf_token}
    )
    assert confirmed.status_code == 303 and confirmed.headers["Location"].endswith("done=death-confirmed")
    actions = _actions(app, since, client_id)
    assert "episode.discharge" in actions and "overdose_event.confirm_death" in actions
    with app.app_context():
        episode = db.session.scalars(select(Episode).where(Episode.client_id == client_id)).one()
        assert episode.discharge_reason_code == 6
        assert episode.discharged_on == TODAY - timedelta(days=1)
    text = _text(signed_in.get(f"/clients/{client_id}/overdose?done=death-confirmed"))
    assert "Death confirmed. The client is discharged with TEDS reason 6 (death)" in text
    assert "episode discharged (TEDS 6)" in text
    assert "Confirm death and discharge" not in text
    # Again: nothing more happens.
    again = signed_in.post(
        f"/clients/{client_id}/overdose-events/{event_id}/confirm-death", data={"csrf_token": signed_in.csrf_token}
    )
    assert again.status_code == 303


def test_a_confirmation_the_operation_refuses_is_said_on_the_event(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site, admitted_days_ago=3)
    assert (
        _overdose(signed_in, client_id, fatal="true", occurred_on=(TODAY - timedelta(days=10)).isoformat()).status_code
        == 303
    )
    [event] = signed_in.get(f"/api/v1/clients/{client_id}/overdose-events").get_json()["items"]
    refused = signed_in.post(
        f"/clients/{client_id}/overdose-events/{event['id']}/confirm-death", data={"csrf_token": signed_in.csrf_token}
    )
    assert refused.status_code == 422
    assert "Must be on or after" in _text(refused)
    with app.app_context():
        assert db.session.scalar(select(Episode.discharged_on).where(Episode.client_id == client_id)) is None
    # A non-fatal event has no confirmation: posting one anyway is refused; another client's event is not found.
    assert _overdose(signed_in, client_id).status_code == 303
    events = signed_in.get(f"/api/v1/clients/{client_id}/overdose-events").get_json()["items"]
    survived = next(e for e in events if not e["fatal"])
    not_fatal = signed_in.post(
        f"/clients/{client_id}/overdose-events/{survived['id']}/confirm-death",
        data={"csrf_token": signed_in.csrf_token},
    )
    assert not_fatal.status_code == 422 and "Only a fatal overdose can be confirmed as a death." in _text(not_fatal)
    someone_else = _client(signed_in, site)
    assert (
        signed_in.post(
            f"/clients/{someone_else}/overdose-events/{event['id']}/confirm-death",
            data={"csrf_token": signed_in.csrf_token},
        ).status_code
        == 404
    )


def test_the_chart_shows_overdose_prevention(
    app: Flask, signed_in: Session, site: Site, make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    client_id = _client(signed_in, site)
    chart = _text(signed_in.get(f"/clients/{client_id}"))
    assert "Overdose prevention Naloxone Naloxone due Never dispensed. Last overdose None recorded." in chart
    assert _naloxone(signed_in, client_id, dispensed_on=(TODAY - timedelta(days=10)).isoformat()).status_code == 303
    assert _overdose(signed_in, client_id, occurred_on=(TODAY - timedelta(days=2)).isoformat()).status_code == 303
    since = _last_event_id(app)
    chart = _text(signed_in.get(f"/clients/{client_id}"))
    dispensed = TODAY - timedelta(days=10)
    assert f"Naloxone Last dispensed {dispensed.strftime('%b')} {dispensed.day}, {dispensed.year}; due again" in chart
    assert "Naloxone due" not in chart
    happened = TODAY - timedelta(days=2)
    assert f"Last overdose {happened.strftime('%b')} {happened.day}, {happened.year}" in chart
    actions = _actions(app, since, client_id)
    assert "naloxone_dispense.read" in actions and "overdose_event.read" in actions
    # Intake coordinators see no clinical card.
    intake = login(make_user("intake", sites=[site]))
    assert "Overdose prevention" not in _text(intake.get(f"/clients/{client_id}"))
