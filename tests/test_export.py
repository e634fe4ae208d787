"""The appointments CSV export: its rows, its scope, its audit, and that it streams."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from clinic.audit.models import AuditEvent
from clinic.extensions import db
from clinic.scheduling import export
from clinic.scheduling.models import Appointment
from tests.appointments_setup import Practice, at, build_practice, register

EXPORT = "/appointments/export.csv"
HEADER = [
    "id", "site_id", "series_id", "kind", "is_group", "clinician_id", "client_id", "starts_at", "ends_at",
    "timezone", "status", "capacity", "location", "telehealth_url", "confirmed_at", "checked_in_at",
    "completed_at", "cancelled_at", "no_show_at", "cancel_reason", "created_at", "updated_at",
]


@pytest.fixture
def practice(client, make_site, make_user, bearer) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def rows_of(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block (on the test's connection)."""
    connection: Any = db._app_engines[app][None]
    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", listener)


def test_header_then_one_row_per_appointment_in_start_order(practice):
    later = practice.booked_ok(starts_at=at(days=5), location="=HYPERLINK(\"http://x\")")
    earlier = practice.booked_ok(starts_at=at(days=2), client_id=practice.ben["id"], duration_minutes=30)
    response = practice.get(EXPORT)
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.splitlines()[0].split(",") == HEADER
    rows = rows_of(response)
    assert [int(r["id"]) for r in rows] == [earlier["id"], later["id"]]
    first = rows[0]
    assert first["client_id"] == str(practice.ben["id"])
    assert first["clinician_id"] == str(practice.clinician.id)
    assert first["kind"] == "individual_therapy"
    assert first["status"] == "scheduled"
    assert first["is_group"] == "false"
    assert first["starts_at"] == earlier["starts_at"]
    assert first["ends_at"] == earlier["ends_at"]
    assert first["capacity"] == "" and first["cancelled_at"] == ""
    # Text typed by staff cannot become a spreadsheet formula.
    assert rows[1]["location"] == "'=HYPERLINK(\"http://x\")"


def test_from_to_and_site_filter_the_rows(practice):
    practice.booked_ok(starts_at=at(days=2))
    inside = practice.booked_ok(starts_at=at(days=4))
    practice.booked_ok(starts_at=at(days=6))
    query = {"from": at(days=3).isoformat(), "to": at(days=5).isoformat(), "site_id": practice.site.id}
    assert [int(r["id"]) for r in rows_of(practice.get(EXPORT, **query))] == [inside["id"]]
    wrong = practice.get(EXPORT, **{"from": at(days=5).isoformat(), "to": at(days=3).isoformat()})
    assert wrong.status_code == 422


def test_another_sites_appointments_are_not_exported(practice, make_user, bearer, client):
    ours = practice.booked_ok(starts_at=at(days=2))
    outsider_site = practice.outsider.site_ids[0]
    theirs_client = client.post(
        "/api/v1/clients", headers=practice.outsider_headers,
        json={"site_id": outsider_site, "first_name": "Cy", "last_name": "Dunn", "date_of_birth": "1990-02-02"},
    ).get_json()
    theirs = client.post("/api/v1/appointments", headers=practice.outsider_headers, json={
        "site_id": outsider_site, "kind": "individual_therapy", "clinician_id": practice.outsider.id,
        "client_id": theirs_client["id"], "starts_at": at(days=2).isoformat(), "duration_minutes": 60,
    })
    assert theirs.status_code == 201, theirs.get_json()
    assert [int(r["id"]) for r in rows_of(practice.get(EXPORT))] == [ours["id"]]
    assert [int(r["id"]) for r in rows_of(practice.get(EXPORT, headers=practice.outsider_headers))] == [
        theirs.get_json()["id"]
    ]
    # Naming a site that is not the caller's is refused, not answered with its rows.
    assert practice.get(EXPORT, site_id=outsider_site).status_code == 422


def test_intake_coordinators_export_and_administrators_may_not(practice):
    booked = practice.booked_ok(starts_at=at(days=2))
    assert [int(r["id"]) for r in rows_of(practice.get(EXPORT, headers=practice.intake_headers))] == [booked["id"]]
    assert practice.get(EXPORT, headers=practice.admin_headers).status_code == 403
    assert practice.http.get(f"/api/v1{EXPORT}").status_code == 401


def _export_events(app):
    with app.app_context():
        return db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.in_(["appointment.export", "appointment.read"]))
            .order_by(AuditEvent.id)
        ).all()


def test_one_audit_event_for_the_exported_client_with_the_exports_parameters(app, practice):
    practice.booked_ok(starts_at=at(days=2))
    practice.booked_ok(starts_at=at(days=3))
    since = at(days=1).isoformat()
    assert len(rows_of(practice.get(EXPORT, **{"from": since}))) == 2
    events = _export_events(app)
    # Two rows of one client: one event, naming her; never one per row.
    assert [(e.action, e.user_id, e.client_id) for e in events] == [
        ("appointment.export", practice.clinician.id, practice.ada["id"])
    ]
    assert events[0].details["from"] == since
    assert events[0].details["to"] is None
    assert events[0].details["site_id"] is None


def test_an_export_of_n_clients_writes_n_events_each_naming_its_client(app, practice, client, monkeypatch):
    monkeypatch.setattr(export, "BATCH_ROWS", 2)  # several statements of events, several batches of rows
    others = [
        register(client, practice.headers, practice.site, first_name=f"Client{n}", last_name="Export",
                 date_of_birth="1990-01-01")
        for n in range(5)
    ]
    people = [practice.ada, practice.ben, *others]
    for n, person in enumerate(people):
        practice.booked_ok(starts_at=at(days=2, hours=n), client_id=person["id"], duration_minutes=30)
    practice.booked_ok(starts_at=at(days=4), client_id=practice.ben["id"], duration_minutes=30)
    rows = rows_of(practice.get(EXPORT))
    assert len(rows) == len(people) + 1
    # Read after the download, in a transaction of its own: the events were committed, not left in the stream's.
    events = _export_events(app)
    assert sorted(e.client_id for e in events) == sorted(p["id"] for p in people)
    assert {(e.action, e.resource, e.user_id, e.outcome.value) for e in events} == {
        ("appointment.export", "appointment", practice.clinician.id, "success")
    }
    assert all(e.details == {"from": None, "to": None, "site_id": None, "format": "csv"} for e in events)


def test_an_export_of_no_client_is_still_recorded(app, practice):
    assert rows_of(practice.get(EXPORT)) == []
    assert [(e.action, e.client_id) for e in _export_events(app)] == [("appointment.export", None)]


def test_a_row_of_a_client_not_audited_before_the_stream_is_not_sent(app, practice, monkeypatch):
    """An appointment moved into the range between the audit and the stream: its client was not audited."""
    ours = practice.booked_ok(starts_at=at(days=2))
    moved = practice.booked_ok(starts_at=at(days=20), client_id=practice.ben["id"])
    audit_clients = export._audit_clients

    def audit_then_move(scope, **kwargs):
        audited = audit_clients(scope, **kwargs)
        db.session.execute(
            update(Appointment).where(Appointment.id == moved["id"]).values(
                starts_at=at(days=3), ends_at=at(days=3, hours=1)
            )
        )
        return audited

    monkeypatch.setattr(export, "_audit_clients", audit_then_move)
    rows = rows_of(practice.get(EXPORT, to=at(days=10).isoformat()))
    assert [int(r["id"]) for r in rows] == [ours["id"]]
    assert [e.client_id for e in _export_events(app)] == [practice.ada["id"]]


def test_the_response_streams_in_batches(practice, monkeypatch):
    monkeypatch.setattr(export, "BATCH_ROWS", 2)
    booked = practice.booked_ok(starts_at=at(days=2), recurrence="FREQ=DAILY;COUNT=5")
    assert booked["series_id"] is not None
    response = practice.get(EXPORT)
    assert response.is_streamed
    chunks = list(response.response)
    # The header, then the five rows two at a time, each written as the cursor yields it.
    assert len(chunks) == 1 + 3
    assert sum(chunk.count(b"\r\n") for chunk in chunks) == 6


def test_the_number_of_queries_does_not_grow_with_the_rows(app, practice):
    practice.booked_ok(starts_at=at(days=2))
    with counting(app) as few:
        assert len(rows_of(practice.get(EXPORT))) == 1
    practice.booked_ok(starts_at=at(days=3), recurrence="FREQ=DAILY;COUNT=40", duration_minutes=30)
    with counting(app) as many:
        assert len(rows_of(practice.get(EXPORT))) == 41
    assert len(many) == len(few), many
