"""The unit of work (one commit, and what follows it) and the domain signals that run inside it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent, Outcome
from clinic.audit.operations import record
from clinic.auth.models import Site, User
from clinic.core import signals, unit_of_work
from clinic.core.unit_of_work import Queue
from clinic.extensions import db
from clinic.scheduling.models import Appointment
from tests.appointments_setup import Practice, build_practice

NOW = datetime.now(UTC)


def _events(action: str) -> int:
    return int(db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0)


def test_after_commit_work_runs_once_committed_and_never_after_a_rollback(app: Flask) -> None:
    ran: list[str] = []
    with app.app_context():
        unit_of_work.after_commit(lambda: ran.append("committed"))
        assert ran == []
        unit_of_work.commit()
        assert ran == ["committed"]
        unit_of_work.after_commit(lambda: ran.append("rolled back"))
        unit_of_work.rollback()
        unit_of_work.commit()  # a later commit does not bring it back
    assert ran == ["committed"]


def test_queued_rows_are_written_at_commit_and_failures_survive_a_rollback(app: Flask) -> None:
    with app.app_context():
        record("probe.success", resource="probe")
        record("probe.denied", resource="probe", outcome=Outcome.DENIED)
        assert (_events("probe.success"), _events("probe.denied")) == (0, 0)  # nothing before the commit
        unit_of_work.rollback()
        assert (_events("probe.success"), _events("probe.denied")) == (0, 1)
        record("probe.success", resource="probe")
        unit_of_work.commit()
        assert _events("probe.success") == 1


def test_a_plain_rollback_forgets_everything_queued(app: Flask) -> None:
    with app.app_context():
        record("probe.denied", resource="probe", outcome=Outcome.DENIED)
        db.session.rollback()
        unit_of_work.commit()
        assert _events("probe.denied") == 0


def test_a_rolled_back_savepoint_keeps_the_unit_of_work_going(app: Flask) -> None:
    with app.app_context():
        record("probe.outer", resource="probe")
        with pytest.raises(RuntimeError), db.session.begin_nested():
            raise RuntimeError("inner failure")
        unit_of_work.commit()
        assert _events("probe.outer") == 1


def test_a_failed_savepoint_undoes_only_its_block_and_keeps_its_refusals(app: Flask) -> None:
    """What a console form does with a refused change: the block's writes and queued work go, the
    refusal's audit event and everything before the block stay, and the unit of work commits."""
    ran: list[str] = []
    with app.app_context():
        record("probe.before", resource="probe")
        made: list[int] = []

        def refused_change() -> None:
            site = Site(name="Refused site", timezone="America/New_York", display_name="Refused")
            db.session.add(site)
            db.session.flush()
            made.append(site.id)
            record("probe.inside", resource="probe")
            record("probe.refused", resource="probe", outcome=Outcome.DENIED)
            unit_of_work.after_commit(lambda: ran.append("inside"))
            raise RuntimeError("refused")

        with pytest.raises(RuntimeError), unit_of_work.savepoint():
            refused_change()
        site_id = made[0]
        record("probe.after", resource="probe")
        unit_of_work.commit()
        assert db.session.get(Site, site_id) is None
        assert [_events(name) for name in ("probe.before", "probe.inside", "probe.refused", "probe.after")] == [
            1, 0, 1, 1,
        ]
        assert ran == []
        with unit_of_work.savepoint():  # a block that succeeds is kept
            record("probe.kept", resource="probe")
        unit_of_work.commit()
        assert _events("probe.kept") == 1


def test_redo_if_rolled_back_records_again_what_the_outside_world_saw(app: Flask, make_site: Callable[..., Site]) -> None:
    site = make_site()
    with app.app_context():
        row = db.session.get_one(Site, site.id)

        def rename() -> None:
            db.session.get_one(Site, site.id).name = "Seen by the provider"

        row.name = "Changed with the rest"
        rename()
        unit_of_work.redo_if_rolled_back(rename)
        unit_of_work.rollback()
        assert db.session.get_one(Site, site.id).name == "Seen by the provider"
        db.session.rollback()  # committed on its own: a later rollback keeps it
        assert db.session.get_one(Site, site.id).name == "Seen by the provider"

        unit_of_work.redo_if_rolled_back(lambda: setattr(db.session.get_one(Site, site.id), "name", "stale"))
        unit_of_work.commit()  # a commit settles it: the callback is dropped
        unit_of_work.rollback()
        assert db.session.get_one(Site, site.id).name == "Seen by the provider"


def test_the_context_manager_commits_once_or_rolls_back_and_reraises(app: Flask) -> None:
    with app.app_context():
        with unit_of_work.unit_of_work():
            record("probe.kept", resource="probe")
        assert _events("probe.kept") == 1
        def failing_work() -> None:
            with unit_of_work.unit_of_work():
                record("probe.lost", resource="probe")
                record("probe.refused", resource="probe", outcome=Outcome.FAILURE)
                raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            failing_work()
        assert (_events("probe.lost"), _events("probe.refused")) == (0, 1)


def test_a_queue_name_is_taken_once() -> None:
    with pytest.raises(ValueError, match="audit"):
        Queue("audit", write=lambda _session, _items: None)


def test_the_cli_runs_in_one_unit_of_work(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "--email", "cli@example.org", "--name", "Cli User", "--role", "admin",
              "--password-stdin"],
        input="a-long-and-uncommon-passphrase\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "cli@example.org")) is not None
        assert _events("user.create") >= 1
    refused = runner.invoke(
        args=["users", "create", "--email", "cli2@example.org", "--name", "Cli Two", "--role", "admin",
              "--password-stdin"],
        input="short\n",
    )
    assert refused.exit_code == 1
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "cli2@example.org")) is None


# --- signals -----------------------------------------------------------------------------------


@pytest.fixture
def practice(client: FlaskClient, make_site: Callable[..., Site], make_user: Callable[..., User],
             bearer: Callable[[User], dict[str, str]]) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def test_booking_announces_the_appointment_and_notify_plans_its_reminders(practice: Practice) -> None:
    heard: list[list[int]] = []

    def listener(appointments: list[Appointment], **_: Any) -> None:
        heard.append([a.id for a in appointments])

    with signals.appointment_booked.connected_to(listener):
        booked = practice.booked_ok()
    assert heard == [[booked["id"]]]
    assert practice.reminders(booked["id"])  # written by notify's receiver in the same transaction


def test_cancelling_is_announced_as_a_cancellation(practice: Practice) -> None:
    booked = practice.booked_ok()
    changed: list[int] = []
    cancelled: list[int] = []
    with signals.appointment_changed.connected_to(lambda a, **_: changed.extend(x.id for x in a)), \
            signals.appointment_cancelled.connected_to(lambda a, **_: cancelled.extend(x.id for x in a)):
        response = practice.post(f"/appointments/{booked['id']}/cancel", {"by": "client", "reason": "sick"})
    assert response.status_code == 200, response.get_json()
    assert (changed, cancelled) == ([], [booked["id"]])
    assert {r["status"] for r in practice.reminders(booked["id"])} == {"cancelled"}


def test_a_failing_receiver_rolls_the_whole_change_back(app: Flask, practice: Practice) -> None:
    def broken(_appointments: list[Appointment], **_: Any) -> None:
        raise RuntimeError("a receiver failed")

    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Appointment))
    with signals.appointment_booked.connected_to(broken):
        assert practice.book().status_code == 500
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == before


def test_a_change_of_contact_details_is_announced(practice: Practice) -> None:
    heard: list[int] = []
    with signals.contact_details_changed.connected_to(lambda client_id, **_: heard.append(client_id)):
        response = practice.patch(f"/clients/{practice.ada['id']}", {"phone": "+12025550199"})
    assert response.status_code == 200, response.get_json()
    assert heard == [practice.ada["id"]]


def test_signing_an_assessment_and_changing_a_medication_are_announced(practice: Practice) -> None:
    signed: list[tuple[int, int]] = []
    changed: list[tuple[int, bool, list[str]]] = []
    client_id = practice.ada["id"]
    assessment = practice.post(f"/clients/{client_id}/assessments", {
        "instrument": "GAD-7", "answers": {f"q{i}": 1 for i in range(1, 8)},
        "administered_at": (NOW - timedelta(minutes=5)).isoformat(),
    }).get_json()
    plan = practice.post(f"/clients/{client_id}/plans", {"problems": []}).get_json()
    with signals.assessment_signed.connected_to(lambda a, actor, **_: signed.append((a.id, actor.id))), \
            signals.medication_changed.connected_to(
                lambda m, created, fields, **_: changed.append((m.id, created, fields))):
        assert practice.post(f"/assessments/{assessment['id']}/sign").status_code == 200
        med = practice.post(f"/plans/{plan['id']}/medications", {
            "medication": "buprenorphine_naloxone", "dose": 16, "unit": "mg", "frequency": "daily",
            "phase": "maintenance", "prescriber_id": practice.clinician.id, "start_on": NOW.date().isoformat(),
        })
        assert med.status_code == 201, med.get_json()
        patched = practice.patch(f"/medications/{med.get_json()['id']}", {"dose": 12, "reason": "taper"})
        assert patched.status_code == 200, patched.get_json()
    assert signed == [(assessment["id"], practice.clinician.id)]
    medication_id = med.get_json()["id"]
    assert changed == [(medication_id, True, []), (medication_id, False, ["dose"])]


def test_the_timeline_collects_every_domain_through_its_signal(practice: Practice) -> None:
    practice.booked_ok()
    items = practice.get(f"/clients/{practice.ada['id']}/timeline").get_json()["items"]
    kinds = {item["kind"].split(".")[0] for item in items}
    assert "appointment" in kinds  # scheduling answers the clients package's question, unimported by it
