"""The demo seeder: counts, invariants, plausible distributions, determinism, an intact audit log."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.assessments.definitions import get_instrument
from clinic.audit.operations import verify_chain
from clinic.auth.models import User
from clinic.clients.identifiers import is_valid_mrn
from clinic.clients.models import Client, Episode
from clinic.clients.names import search_key
from clinic.core.phones import to_e164
from clinic.demo.generator import SITES, Generator, SiteStaff
from clinic.demo.loader import DEMO_PASSWORD, AlreadySeededError, seed
from clinic.extensions import db
from clinic.plans.content import node_ids, walk_tree
from clinic.plans.models import Plan

TODAY = date(2026, 3, 2)


def _pure_rows(clients: int, seed_value: int) -> dict[str, list[dict[str, Any]]]:
    staff = [
        SiteStaff(site_id=i + 1, spec=SITES[i], clinician_ids=(10 + i * 10, 11 + i * 10), intake_ids=(19 + i * 10,),
                  supervisor_id=10 + i * 10)
        for i in range(2)
    ]
    generator = Generator(clients=clients, seed=seed_value, today=TODAY, sites=staff, first_ids={},
                          tables={"appointments", "reminders"})
    rows: dict[str, list[dict[str, Any]]] = {}
    for chunk in generator.chunks():
        for table, batch in chunk.items():
            rows.setdefault(table, []).extend(batch)
    return rows


def test_same_seed_same_data_other_seed_other_data() -> None:
    first, again, other = _pure_rows(60, 7), _pure_rows(60, 7), _pure_rows(60, 8)
    assert first == again
    assert first["clients"] != other["clients"]


def test_distributions_are_plausible() -> None:
    rows = _pure_rows(1500, 3)
    statuses = Counter(c["status"] for c in rows["clients"])
    assert 0.05 < statuses["prospective"] / 1500 < 0.30
    past = [a for a in rows["appointments"] if a["starts_at"].date() < TODAY]
    counted = [a for a in past if a["status"] != "cancelled_by_clinic"]
    no_show_rate = sum(a["status"] == "no_show" for a in counted) / len(counted)
    assert 0.10 < no_show_rate < 0.30
    assert 8 < len(rows["appointments"]) / 1500 < 16
    fentanyl = [r["result"] for r in rows["drug_screen_results"] if r["substance"] == "fentanyl"]
    positivity = fentanyl.count("positive") / (fentanyl.count("positive") + fentanyl.count("negative"))
    assert 0.1 < positivity < 0.5
    reasons = Counter(e["discharge_reason_code"] for e in rows["episodes"] if e["discharged_on"])
    assert reasons.most_common(1)[0][0] == 2  # dropping out is the commonest way to leave
    future = [a for a in rows["appointments"] if a["starts_at"].date() >= TODAY]
    assert future and all(a["status"] in {"scheduled", "confirmed"} for a in future)
    assert {r["status"] for r in rows["reminders"]} >= {"pending", "sent"}


def _scheduling() -> Any:
    return pytest.importorskip("clinic.scheduling.models")


def _check_invariants() -> None:
    scheduling = _scheduling()
    appointment_model, released = scheduling.Appointment, scheduling.RELEASED_STATUSES
    clients = db.session.scalars(select(Client)).all()
    for client in clients:
        assert is_valid_mrn(client.mrn)
        assert client.search_first == search_key(client.first_name)
        assert client.search_last == search_key(client.last_name)
        if client.phone:
            assert to_e164(client.phone) == client.phone
    assert len({c.mrn for c in clients}) == len(clients)
    episodes = db.session.scalars(select(Episode).order_by(Episode.client_id, Episode.admitted_on)).all()
    by_client: dict[int, list[Episode]] = {}
    for episode in episodes:
        assert episode.discharged_on is None or episode.discharged_on >= episode.admitted_on
        assert episode.discharged_on is None or episode.discharged_on < TODAY
        by_client.setdefault(episode.client_id, []).append(episode)
    for client in clients:
        own = by_client.get(client.id, [])
        assert sum(e.is_open for e in own) <= 1
        expected = "prospective" if not own else "active" if own[-1].is_open else "discharged"
        assert client.status.value == expected
        for earlier, later in itertools.pairwise(own):
            assert earlier.discharged_on is not None and later.admitted_on >= earlier.discharged_on
    from clinic.assessments.models import Assessment

    for assessment in db.session.scalars(select(Assessment)):
        instrument = get_instrument(assessment.instrument)
        assert instrument is not None
        score = instrument.score(instrument.validate(assessment.answers))
        assert (score.total, score.severity, score.flags) == (
            assessment.total_score, assessment.severity, assessment.flags
        )
    for plan in db.session.scalars(select(Plan)):
        ids = [node["id"] for _path, _level, node in walk_tree(plan.content)]
        assert len(ids) == len(node_ids(plan.content))
        assert all(i[0] in "pgoi" and len(i) == 9 for i in ids)
    held = [a for a in db.session.scalars(select(appointment_model)) if a.status not in released]
    for key in ("clinician_id", "client_id"):
        spans: dict[int, list[Any]] = {}
        for appointment in held:
            spans.setdefault(getattr(appointment, key), []).append(appointment)
        for booked in spans.values():
            booked.sort(key=lambda a: a.starts_at)
            for a, b in itertools.pairwise(booked):
                assert a.ends_at <= b.starts_at, f"{key} double-booked: {a.id} and {b.id}"


def test_seed_loads_valid_rows_and_leaves_the_audit_log_intact(app: Flask) -> None:
    appointment_model = _scheduling().Appointment
    with app.app_context():
        report = seed(clients=40, seed=5, today=TODAY)
        db.session.commit()
        assert report.rows["clients"] == 40
        assert db.session.scalar(select(func.count()).select_from(Client)) == 40
        assert db.session.scalar(select(func.count()).select_from(appointment_model)) == report.rows["appointments"] > 200
        _check_invariants()
        assert verify_chain().broken is None
        with pytest.raises(AlreadySeededError):
            seed(clients=5, seed=6, today=TODAY)
        db.session.rollback()
        again = seed(clients=5, seed=6, today=TODAY, force=True)
        db.session.commit()
        assert again.rows["clients"] == 5
        assert db.session.scalar(select(func.count()).select_from(Client)) == 45
        # Staff are reused, not duplicated.
        admins = db.session.scalar(select(func.count()).select_from(User).where(User.email.like("admin@demo.%")))
        assert admins == 1


def test_cli_seeds_and_demo_staff_can_sign_in(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "seed", "--clients", "8", "--seed", "2", "--today", TODAY.isoformat(),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Seeded 8 clients" in result.output
    assert DEMO_PASSWORD in result.output
    refused = runner.invoke(args=["demo", "seed", "--clients", "8", "--quiet"])
    assert refused.exit_code == 1
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    client = app.test_client()
    response = client.post(
        "/api/v1/auth/login", json={"email": "clinician1.riverside@demo.example.org", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    listed = client.get("/api/v1/clients?limit=5")
    assert listed.status_code == 200
    assert listed.get_json()["items"]
    start = f"{(TODAY - timedelta(days=30)).isoformat()}T00:00:00Z"
    user_id = response.get_json()["user"]["id"]
    appointments = client.get(
        "/api/v1/appointments", query_string={"clinician_id": user_id, "from": start, "to": f"{TODAY}T00:00:00Z"}
    )
    assert appointments.status_code == 200, appointments.get_json()
    assert appointments.get_json()["items"]
