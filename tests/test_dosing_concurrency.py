"""Requests sent at the same moment (PostgreSQL, committed data): the dosing checks, a correction
and a confirmed death are each made once, whoever sends them together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.extensions import db
from tests.conftest import committed_clinician, committed_postgres_app
from tests.test_dosing import ALL_MET, ZONE, at, today


@pytest.fixture(scope="module")
def otp() -> Iterator[dict[str, Any]]:
    """An OTP, its clinician's bearer headers, and a client 200 days in treatment on methadone 40 mg."""
    with committed_postgres_app(connections=4) as app:
        site_id, user_id, headers = committed_clinician(
            app, email="dispenser@example.org", site_name="Parallel OTP", timezone=ZONE, is_otp=True
        )
        http = app.test_client()
        person = http.post(
            "/api/v1/clients",
            headers=headers,
            json={
                "site_id": site_id,
                "first_name": "Par",
                "last_name": "Allel",
                "date_of_birth": "1985-04-02",
                "primary_clinician_id": user_id,
            },
        ).get_json()
        admitted = {"admitted_on": (today() - timedelta(days=200)).isoformat(), "level_of_care": "1-OTP"}
        assert http.post(f"/api/v1/clients/{person['id']}/episodes", headers=headers, json=admitted).status_code == 201
        plan = http.post(f"/api/v1/clients/{person['id']}/plans", headers=headers, json={"problems": []}).get_json()
        order = http.post(
            f"/api/v1/plans/{plan['id']}/medications",
            headers=headers,
            json={
                "medication": "methadone",
                "dose": 40,
                "unit": "mg",
                "frequency": "daily",
                "phase": "maintenance",
                "prescriber_id": user_id,
                "start_on": (today() - timedelta(days=100)).isoformat(),
            },
        )
        assert order.status_code == 201, order.get_json()
        review = {"criteria": ALL_MET, "note": "Reviewed."}
        assert (
            http.put(f"/api/v1/clients/{person['id']}/take-home-eligibility", headers=headers, json=review).status_code
            == 200
        )
        yield {
            "app": app,
            "headers": headers,
            "site_id": site_id,
            "client_id": person["id"],
            "medication_id": order.get_json()["id"],
        }


def at_once(app: Flask, send: Callable[[FlaskClient], Any], count: int = 3) -> list[Any]:
    """``send`` from ``count`` threads released together, each with its own connection."""
    barrier = threading.Barrier(count)
    answers: list[Any] = []

    def run() -> None:
        http = app.test_client()
        barrier.wait()
        answers.append(send(http))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def dose(otp: dict[str, Any], **body: Any) -> Callable[[FlaskClient], int]:
    url = f"/api/v1/clients/{otp['client_id']}/doses"
    body = {"medication_id": otp["medication_id"], "lot_number": "L-1", **body}
    return lambda http: http.post(url, headers=otp["headers"], json=body).status_code


def events(otp: dict[str, Any], action: str) -> int:
    with otp["app"].app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def test_parts_of_a_split_dose_sent_together_never_exceed_the_days_dose(otp):
    day = today() - timedelta(days=1)
    sent = dose(otp, kind="observed", amount_mg=30, administered_at=at(day), split=True)
    assert sorted(at_once(otp["app"], sent)) == [201, 422, 422]


def test_the_days_dose_sent_twice_together_is_recorded_once(otp):
    day = today() - timedelta(days=2)
    whole = dose(otp, kind="observed", amount_mg=40, administered_at=at(day))
    assert sorted(at_once(otp["app"], whole)) == [201, 409, 409]


def test_take_homes_sent_together_cover_each_day_once(otp):
    supply = dose(otp, kind="take_home", amount_mg=40, dispensed_at=at(today(), 0, 30), take_home_days=3)
    assert sorted(at_once(otp["app"], supply)) == [201, 409, 409]


def test_an_entry_voided_by_two_people_at_once_is_voided_once(otp):
    day = today() - timedelta(days=5)
    given = (
        otp["app"]
        .test_client()
        .post(
            f"/api/v1/clients/{otp['client_id']}/doses",
            headers=otp["headers"],
            json={
                "medication_id": otp["medication_id"],
                "kind": "observed",
                "amount_mg": 40,
                "administered_at": at(day),
                "lot_number": "L-1",
            },
        )
    )
    assert given.status_code == 201, given.get_json()
    url = f"/api/v1/doses/{given.get_json()['id']}/entered-in-error"
    before = events(otp, "dose.void")
    answers = at_once(otp["app"], lambda http: http.post(url, headers=otp["headers"], json={"reason": "Wrong lot"}))
    assert sorted(answer.status_code for answer in answers) == [200, 409, 409]
    assert events(otp, "dose.void") == before + 1


def test_a_death_confirmed_by_two_people_at_once_discharges_once(otp):
    app, headers = otp["app"], otp["headers"]
    event = app.test_client().post(
        f"/api/v1/clients/{otp['client_id']}/overdose-events",
        headers=headers,
        json={
            "occurred_on": today().isoformat(),
            "fatal": True,
            "naloxone_used": False,
            "substances": ["fentanyl"],
            "source": "family",
        },
    )
    assert event.status_code == 201, event.get_json()
    url = f"/api/v1/overdose-events/{event.get_json()['id']}/confirm-death"
    answers = at_once(app, lambda http: http.post(url, headers=headers, json={}))
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len({answer.get_json()["death_confirmed_at"] for answer in answers}) == 1
    assert events(otp, "episode.discharge") == 1
    assert events(otp, "overdose_event.confirm_death") == 1


def test_a_dose_naming_another_clients_order_is_refused_without_waiting_on_that_order(otp):
    """The order is looked up within the client's own: an id of someone else's order locks nothing of theirs."""
    app, headers = otp["app"], otp["headers"]
    http = app.test_client()
    other = http.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": otp["site_id"], "first_name": "Other", "last_name": "Person", "date_of_birth": "1990-01-01"},
    ).get_json()
    with app.app_context():
        holder = db.engine.connect()
        transaction = holder.begin()
        # Someone is recording a dose on the other client's order: their row is locked.
        holder.exec_driver_sql("SELECT id FROM medications WHERE id = %s FOR UPDATE", (otp["medication_id"],))
        try:
            answers: list[int] = []
            url = f"/api/v1/clients/{other['id']}/doses"
            body = {
                "medication_id": otp["medication_id"],
                "kind": "observed",
                "amount_mg": 40,
                "administered_at": at(today() - timedelta(days=20)),
                "lot_number": "L-1",
            }
            worker = threading.Thread(
                target=lambda: answers.append(http.post(url, headers=headers, json=body).status_code)
            )
            worker.start()
            worker.join(timeout=5)
            assert answers == [422], "the request waited on another client's order"
        finally:
            transaction.rollback()
            holder.close()
            worker.join(timeout=30)
