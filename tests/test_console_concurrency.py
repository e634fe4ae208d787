"""Console forms sent twice at the same moment (PostgreSQL, committed data): a double-clicked or
retried form is recorded once and the other sending shows the refusal on its page, never a 500."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.core.time import to_local, utcnow
from clinic.dosing.models import Dose
from clinic.extensions import db
from clinic.plans.models import CMProgram, DrugScreen
from tests.conftest import PASSWORD
from tests.test_console_screens import _client as screens_client
from tests.test_console_screens import _plan, _start_form, _text
from tests.test_dosing import ZONE, today
from tests.test_dosing_concurrency import otp  # noqa: F401 - the shared OTP of committed data


def _signed_in(otp: dict[str, Any]) -> tuple[FlaskClient, str]:  # noqa: F811
    http = otp["app"].test_client()
    response = http.post("/api/v1/auth/login", json={"email": "dispenser@example.org", "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return http, response.get_json()["csrf_token"]


def test_a_late_entry_sent_twice_at_once_is_recorded_once(otp: dict[str, Any]) -> None:  # noqa: F811
    day = today() - timedelta(days=9)
    sessions = [_signed_in(otp) for _ in range(3)]
    barrier = threading.Barrier(len(sessions))
    answers: list[int] = []

    def send(http: FlaskClient, token: str) -> None:
        form = {
            "csrf_token": token,
            "date": day.isoformat(),
            "identity_confirmed": "yes",
            "kind": "observed",
            "amount_mg": "40",
            "lot_number": "L-9",
            "given_time": "08:30",
            "late_reason": "Entered from the paper log after the network outage.",
        }
        barrier.wait()
        url = f"/dosing/clients/{otp['client_id']}/orders/{otp['medication_id']}/doses"
        answers.append(http.post(url, data=form).status_code)

    threads = [threading.Thread(target=send, args=session) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [303, 409, 409], answers
    with otp["app"].app_context():
        given = db.session.scalar(
            select(func.count())
            .select_from(Dose)
            .where(Dose.medication_id == otp["medication_id"], Dose.given_on == day)
        )
    assert given == 1


def test_a_drug_screen_form_sent_twice_at_once_is_recorded_once(otp: dict[str, Any]) -> None:  # noqa: F811
    """The second sending records the same result again on the screen the first made ("re-recorded")."""
    collected = to_local(utcnow() - timedelta(hours=3), ZONE)
    sessions = [_signed_in(otp) for _ in range(3)]
    barrier = threading.Barrier(len(sessions))
    answers: list[tuple[int, str]] = []

    def send(http: FlaskClient, token: str) -> None:
        form = {
            "csrf_token": token,
            "collected_date": collected.date().isoformat(),
            "collected_time": collected.strftime("%H:%M"),
            "result_fentanyl": "negative",
        }
        barrier.wait()
        answer = http.post(f"/clients/{otp['client_id']}/screens", data=form)
        answers.append((answer.status_code, answer.headers.get("Location", "")))

    threads = [threading.Thread(target=send, args=session) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _ in answers] == [303, 303, 303], answers
    assert sorted(location.split("done=")[1] for _, location in answers) == ["re-recorded", "re-recorded", "recorded"]
    with otp["app"].app_context():
        made = db.session.scalar(
            select(func.count()).select_from(DrugScreen).where(DrugScreen.client_id == otp["client_id"])
        )
    assert made == 1


def test_a_cm_program_started_twice_from_the_page_is_started_once(
    app: Any, make_site: Any, make_user: Any, login: Any
) -> None:
    """A double click on Start: a second program with the same terms would pay every negative sample twice."""
    site = make_site(name=f"Riverside {utcnow().timestamp()}")
    session = login(make_user("clinician", sites=[site]))
    client_id = screens_client(session, site)
    _plan(session, client_id)
    form = _start_form(session, client_id=client_id, target_substances=["fentanyl"])
    first = session.post(f"/clients/{client_id}/cm-programs", data=form)
    second = session.post(f"/clients/{client_id}/cm-programs", data=form)
    assert (first.status_code, second.status_code) == (303, 303), _text(second)
    assert second.headers["Location"] == first.headers["Location"]  # the program the first made
    with app.app_context():
        made = db.session.scalars(select(CMProgram).where(CMProgram.client_id == client_id)).all()
        created = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "cm_program.create", AuditEvent.client_id == client_id)
        ).all()
    assert len(made) == 1 and len(created) == 1
    # Other terms are another program, started as asked.
    other = _start_form(session, client_id=client_id, target_substances=["cocaine"])
    assert session.post(f"/clients/{client_id}/cm-programs", data=other).status_code == 303
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(CMProgram).where(CMProgram.client_id == client_id)) == 2
        )
