"""A drug screen being marked entered in error while someone corrects it or records it again
(PostgreSQL, committed data): the correction waits for the mark and never lands on the marked
screen, where it would count nowhere."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.plans.models import CMProgram, DrugScreen
from clinic.plans.screens import results_of
from tests.conftest import committed_clinician, committed_postgres_app


@pytest.fixture(scope="module")
def care() -> Iterator[dict[str, Any]]:
    with committed_postgres_app(connections=4) as app:
        site_id, _user_id, headers = committed_clinician(
            app, email="screener@example.org", site_name="Parallel site", timezone="America/New_York"
        )
        person = app.test_client().post(
            "/api/v1/clients",
            headers=headers,
            json={"site_id": site_id, "first_name": "Ana", "last_name": "Lima", "date_of_birth": "1990-01-01"},
        )
        assert person.status_code == 201, person.get_json()
        yield {"app": app, "headers": headers, "client_id": person.get_json()["id"]}


def _screen(care: dict[str, Any], hours_ago: int, result: str) -> dict[str, Any]:
    body = {
        "collected_at": (utcnow() - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat(),
        "results": {"fentanyl": result},
    }
    made = (
        care["app"]
        .test_client()
        .post(f"/api/v1/clients/{care['client_id']}/drug-screens", headers=care["headers"], json=body)
    )
    assert made.status_code == 201, made.get_json()
    return {**made.get_json(), "body": body}


def _while_marking(app: Flask, screen_id: int, send: Callable[[], Any]) -> tuple[bool, Any]:
    """``send`` while the screen's mark is written and not yet committed (its row locked, as
    ``mark_entered_in_error`` holds it); whether ``send`` waited for the mark, and its answer."""
    answers: list[Any] = []
    with app.app_context():
        marking = db.engine.connect()
        marking_tx = marking.begin()
        marking.execute(
            update(DrugScreen)
            .where(DrugScreen.id == screen_id)
            .values(entered_in_error_at=utcnow(), entered_in_error_reason="Wrong client's sample.")
        )
        thread = threading.Thread(target=lambda: answers.append(send()))
        thread.start()
        thread.join(timeout=3)
        waited = thread.is_alive()
        marking_tx.commit()
        marking.close()
        thread.join(timeout=60)
    (answer,) = answers
    return waited, answer


def _results(app: Flask, screen_id: int) -> dict[str, str]:
    with app.app_context():
        return {name: str(value) for name, value in results_of([screen_id])[screen_id].items()}


def test_a_correction_sent_while_the_screen_is_being_marked_is_refused(care: dict[str, Any]) -> None:
    app = care["app"]
    wrong = _screen(care, 5, "positive")

    def correct() -> Any:
        return app.test_client().patch(
            f"/api/v1/drug-screens/{wrong['id']}", headers=care["headers"], json={"results": {"fentanyl": "negative"}}
        )

    waited, answer = _while_marking(app, wrong["id"], correct)
    assert waited
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert answer.get_json()["type"].endswith("/already-entered-in-error")
    with app.app_context():
        listed = db.session.scalars(select(DrugScreen).where(DrugScreen.id == wrong["id"])).one()
        assert listed.entered_in_error_at is not None
    assert _results(app, wrong["id"]) == {"fentanyl": "positive"}  # as it was when it was marked


def test_a_screen_recorded_again_while_it_is_being_marked_is_a_new_screen(care: dict[str, Any]) -> None:
    app = care["app"]
    wrong = _screen(care, 7, "positive")
    again = {**wrong["body"], "results": {"fentanyl": "negative"}}

    def record_again() -> Any:
        return app.test_client().post(
            f"/api/v1/clients/{care['client_id']}/drug-screens", headers=care["headers"], json=again
        )

    _waited, answer = _while_marking(app, wrong["id"], record_again)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json()["id"] != wrong["id"]
    assert answer.get_json()["results"] == {"fentanyl": "negative"}
    assert _results(app, wrong["id"]) == {"fentanyl": "positive"}


def test_a_screen_sent_three_times_at_once_is_recorded_once(care: dict[str, Any]) -> None:
    """A form submitted twice, a retry: the same collection time at once makes one screen, never a 500."""
    app = care["app"]
    collected_at = (utcnow() - timedelta(hours=9)).replace(microsecond=0)
    body = {"collected_at": collected_at.isoformat(), "results": {"fentanyl": "negative"}}
    barrier = threading.Barrier(3)
    answers: list[int] = []

    def send() -> None:
        http = app.test_client()
        barrier.wait()
        url = f"/api/v1/clients/{care['client_id']}/drug-screens"
        answers.append(http.post(url, headers=care["headers"], json=body).status_code)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers)[-1] < 500 and answers.count(201) == 1, answers
    with app.app_context():
        same = db.session.scalars(
            select(DrugScreen.id).where(
                DrugScreen.client_id == care["client_id"], DrugScreen.collected_at == collected_at
            )
        ).all()
    assert len(same) == 1


def test_a_program_ended_while_another_end_is_being_written_is_refused(care: dict[str, Any]) -> None:
    """Two ends at once: the second waits for the first, sees the program ended, and is the 409."""
    app, headers = care["app"], care["headers"]
    http = app.test_client()
    plan = http.post(f"/api/v1/clients/{care['client_id']}/plans", headers=headers, json={"problems": []})
    assert plan.status_code == 201, plan.get_json()
    program = http.post(
        f"/api/v1/plans/{plan.get_json()['id']}/cm-programs",
        headers=headers,
        json={
            "target_substances": ["fentanyl"],
            "schedule": "escalating_voucher",
            "starts_on": (utcnow() - timedelta(days=30)).date().isoformat(),
        },
    )
    assert program.status_code == 201, program.get_json()
    program_id = program.get_json()["id"]
    ended_on = (utcnow() - timedelta(days=2)).date()
    answers: list[Any] = []
    with app.app_context():
        ending = db.engine.connect()
        ending_tx = ending.begin()
        ending.execute(update(CMProgram).where(CMProgram.id == program_id).values(ends_on=ended_on))

        def end() -> None:
            answers.append(app.test_client().post(f"/api/v1/cm-programs/{program_id}/end", headers=headers, json={}))

        thread = threading.Thread(target=end)
        thread.start()
        thread.join(timeout=3)
        waited = thread.is_alive()
        ending_tx.commit()
        ending.close()
        thread.join(timeout=60)
    assert waited
    (answer,) = answers
    assert answer.status_code == 409, answer.get_data(as_text=True)
    assert answer.get_json()["type"].endswith("/program-ended")
    with app.app_context():
        assert db.session.get_one(CMProgram, program_id).ends_on == ended_on
