"""List endpoints run a fixed number of SQL statements, however many rows they return (no N+1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from clinic.auth.models import User
from clinic.demo.loader import seed
from clinic.extensions import db

TODAY = date(2026, 3, 2)
SINCE = f"{(TODAY - timedelta(days=400)).isoformat()}T00:00:00Z"
UNTIL = f"{(TODAY + timedelta(days=60)).isoformat()}T00:00:00Z"


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block."""
    connection: Any = db._app_engines[app][None]  # the test's connection (conftest)
    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", listener)


def _user(app: Flask, email: str) -> User:
    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        db.session.expunge(user)
        return user


def _busiest(app: Flask, model: Any, column: Any, *where: Any) -> int:
    with app.app_context():
        return int(
            db.session.execute(
                select(column, func.count()).where(*where).group_by(column).order_by(func.count().desc(), column)
            ).first()[0]  # type: ignore[index]
        )


def _paths(app: Flask, clinician: User) -> dict[str, str]:
    from clinic.assessments.models import Assessment

    appointment_model = pytest.importorskip("clinic.scheduling.models").Appointment
    client_id = _busiest(app, Assessment, Assessment.client_id, Assessment.site_id.in_(clinician.site_ids))
    with app.app_context():
        appointment_id = db.session.scalars(
            select(appointment_model.id)
            .where(appointment_model.client_id == client_id)
            .order_by(appointment_model.starts_at.desc())
        ).first()
    return {
        "clients": "/api/v1/clients?limit=200",
        "clients by name": "/api/v1/clients?q=a&limit=200",
        "intake calls": "/api/v1/intake-calls?limit=200",
        "appointments": f"/api/v1/appointments?clinician_id={clinician.id}&from={SINCE}&to={UNTIL}&limit=200",
        "episodes": f"/api/v1/clients/{client_id}/episodes",
        "assessments": f"/api/v1/clients/{client_id}/assessments",
        "plans": f"/api/v1/clients/{client_id}/plans",
        "medications": f"/api/v1/clients/{client_id}/medications",
        "drug screens": f"/api/v1/clients/{client_id}/drug-screens",
        "consents": f"/api/v1/clients/{client_id}/consents",
        "timeline": f"/api/v1/clients/{client_id}/timeline",
        "reminders": f"/api/v1/appointments/{appointment_id}/reminders",
        "notifications": f"/api/v1/notifications?client_id={client_id}",
    }


ADMIN_PATHS = {"users": "/api/v1/users", "sites": "/api/v1/sites", "audit events": "/api/v1/audit-events?limit=200"}


def _measure(app: Flask, bearer: Callable[[User], dict[str, str]]) -> dict[str, tuple[int, int]]:
    """Statements and items of each list endpoint, for the busiest client of the first demo clinician."""
    clinician = _user(app, "clinician1.riverside@demo.example.org")
    admin = _user(app, "admin@demo.example.org")
    http = app.test_client()
    found: dict[str, tuple[int, int]] = {}
    for user, paths in ((clinician, _paths(app, clinician)), (admin, ADMIN_PATHS)):
        headers = bearer(user)
        for name, path in paths.items():
            http.get(path, headers=headers)  # warm caches (instrument definitions, token lookups)
            with counting(app) as statements:
                response = http.get(path, headers=headers)
            assert response.status_code == 200, (name, response.get_json())
            body = response.get_json()
            items = body["items"] if isinstance(body, dict) and "items" in body else body
            found[name] = (len(statements), len(items) if isinstance(items, list) else 1)
    return found


def test_list_endpoints_do_not_query_per_row(app: Flask, bearer: Callable[[User], dict[str, str]]) -> None:
    with app.app_context():
        seed(clients=3, seed=11, today=TODAY)
        db.session.commit()
    few = _measure(app, bearer)
    with app.app_context():
        seed(clients=40, seed=12, today=TODAY, force=True)
        db.session.commit()
    many = _measure(app, bearer)
    grew = {name: (few[name], many[name]) for name in few if many[name][0] > few[name][0]}
    assert not grew, f"statements grew with rows (statements, items): {grew}"
    # The comparison means something only where the larger data set returned more rows.
    more_rows = [name for name in few if many[name][1] > few[name][1]]
    assert {"clients", "intake calls", "appointments", "audit events"} <= set(more_rows), (few, many)
