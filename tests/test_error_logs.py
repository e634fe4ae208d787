"""An unexpected database error is logged without the client data its message may carry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from clinic.auth.models import Role, Site, User
from clinic.clients import operations as client_ops
from clinic.extensions import db

SECRET = "Rosalind-Marquez-555-0142"


def _failing_statement(backend: str) -> Callable[..., Any]:
    """An operation whose statement fails with the secret as a parameter (and, on PostgreSQL, in the message)."""

    def register_client(**_: Any) -> Any:
        if backend == "postgresql":
            # PostgreSQL quotes the value it could not convert in its own message.
            db.session.execute(text("SELECT CAST(:value AS integer)"), {"value": SECRET})
        # Both refuse a site without a zone; PostgreSQL's message quotes the failing row.
        db.session.execute(text("INSERT INTO sites (name) VALUES (:value)"), {"value": SECRET})
        raise AssertionError("the statement above fails")

    return register_client


def test_a_database_error_is_logged_without_values(
    app: Flask,
    client: FlaskClient,
    backend: str,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = make_site()
    headers = bearer(make_user(Role.INTAKE, sites=[site]))
    monkeypatch.setattr(client_ops, "register_client", _failing_statement(backend))
    with caplog.at_level(logging.DEBUG):
        response = client.post("/api/v1/clients", headers=headers, json={
            "site_id": site.id, "first_name": "Rosalind", "last_name": "Marquez", "date_of_birth": "1980-01-01",
        })
    assert response.status_code == 500
    assert SECRET not in response.get_data(as_text=True)
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "Unhandled database error on POST /api/v1/clients" in logged  # it was logged...
    assert SECRET not in logged  # ...without the value
    assert "register_client" in logged  # with the frames that show where


def test_statement_parameters_are_hidden_from_error_messages(app: Flask) -> None:
    """Whoever logs a database error (a task, a command), its message holds no parameter."""
    with app.app_context(), pytest.raises(DBAPIError) as raised:
        db.session.execute(text("INSERT INTO sites (name) VALUES (:value)"), {"value": SECRET})
    assert "parameters hidden" in str(raised.value)
    assert f"'{SECRET}'" not in str(raised.value).split("[SQL:")[-1]
