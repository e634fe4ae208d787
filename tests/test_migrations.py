"""The Alembic migrations: one head, a clean round trip, no drift from the models, audit guards.

Every database test here gets a throw-away database of its own (never the shared ``app``
fixture's), because it downgrades it. PostgreSQL runs under the same rules as conftest: with
``TEST_DATABASE_URL`` or ``CLINIC_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from clinic.extensions import db
from config import BASE_DIR
from tests.conftest import TempPostgres, make_test_app, postgres_base_url

MIGRATIONS_DIR: Path = BASE_DIR / "migrations"


def _model_tables() -> frozenset[str]:
    """Every table the models declare; create_app (run by the fixture) has imported them all."""
    return frozenset(db.metadata.tables)


def _backends() -> list[Any]:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=pytest.mark.skipif(
                postgres_base_url() is None,
                reason="PostgreSQL tests need TEST_DATABASE_URL or CLINIC_REQUIRE_SERVICES=1",
            ),
        ),
    ]


@pytest.fixture(params=_backends())
def empty_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The application on an empty database of its own (no migration applied yet)."""
    temp: TempPostgres | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        base = postgres_base_url()
        assert base is not None
        temp = TempPostgres(base)
        temp.create()
        url = temp.url
    application = make_test_app(url)
    try:
        with application.app_context():
            yield application
            db.session.remove()
            db.engine.dispose()
    finally:
        if temp is not None:
            temp.drop()


def _script() -> ScriptDirectory:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def _current_revision() -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrations_have_exactly_one_head() -> None:
    heads = _script().get_heads()
    assert len(heads) == 1, f"the migrations branch: heads {heads}; merge them (flask db merge)"


def test_upgrade_downgrade_upgrade_round_trip(empty_app: Flask) -> None:
    head = _script().get_current_head()
    model_tables = _model_tables()

    upgrade()
    assert _current_revision() == head
    missing = model_tables - _tables()
    assert not missing, f"no migration creates these tables: {sorted(missing)}"

    downgrade(revision="base")
    assert _current_revision() is None
    leftovers = _tables() & model_tables
    assert not leftovers, f"downgrade to base left tables behind: {sorted(leftovers)}"

    # Upgrading again proves the downgrade removed everything the upgrade makes
    # (tables, indexes, trigger functions): a leftover would make it fail.
    upgrade()
    assert _current_revision() == head
    assert not model_tables - _tables()


def test_migrating_in_process_leaves_the_apps_loggers_enabled(empty_app: Flask) -> None:
    # env.py's fileConfig disabled every existing logger, so after the first in-process
    # upgrade (conftest's) "Unhandled error" and every other clinic log line went nowhere.
    loggers = [logging.getLogger(name) for name in ("clinic.core.errors", "clinic.core.http")]
    upgrade()
    assert not [log.name for log in loggers if log.disabled]


def _differences(connection: Connection) -> list[Any]:
    """What autogenerate would write for ``connection``'s schema, configured as env.py does.

    ``compare_type=True`` needs no special case for :class:`clinic.core.models.UTCDateTime`:
    Alembic compares a TypeDecorator through its dialect implementation (DateTime with time
    zone), and the test below proves a time-zone mismatch on such a column is still reported.
    """
    options = {
        **current_app.extensions["migrate"].configure_args,  # render_as_batch, as env.py uses
        "compare_type": True,
    }
    context = MigrationContext.configure(connection, opts=options)
    differences: list[Any] = compare_metadata(context, db.metadata)
    return differences


def _type_changes(differences: list[Any]) -> set[tuple[str, str]]:
    changes: set[tuple[str, str]] = set()
    for diff in differences:
        for op in diff if isinstance(diff, list) else [diff]:
            if op[0] == "modify_type":
                changes.add((op[2], op[3]))
    return changes


def test_models_and_migrations_do_not_drift(empty_app: Flask) -> None:
    upgrade()
    with db.engine.connect() as connection:
        differences = _differences(connection)
    assert differences == [], (
        "the models differ from the migrated schema; add a migration (flask db migrate):\n"
        + "\n".join(map(repr, differences))
    )


def test_drift_check_sees_changed_column_types(empty_app: Flask) -> None:
    """The drift check is not vacuous: a column typed unlike its model is reported."""
    upgrade()
    expected = {("worker_heartbeats", "hostname")}
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE worker_heartbeats ALTER COLUMN hostname TYPE VARCHAR(100)"))
            # UTCDateTime stores DateTime(timezone=True): losing the time zone is drift.
            connection.execute(
                text("ALTER TABLE worker_heartbeats ALTER COLUMN beat_at TYPE TIMESTAMP WITHOUT TIME ZONE")
            )
            expected.add(("worker_heartbeats", "beat_at"))
        else:  # SQLite cannot alter a column's type: make the table again
            connection.execute(text("DROP TABLE worker_heartbeats"))
            connection.execute(
                text(
                    "CREATE TABLE worker_heartbeats (name VARCHAR(64) NOT NULL, beat_at DATETIME NOT NULL, "
                    "hostname VARCHAR(100) NOT NULL, CONSTRAINT pk_worker_heartbeats PRIMARY KEY (name))"
                )
            )
    with db.engine.connect() as connection:
        differences = _differences(connection)
    assert _type_changes(differences) == expected, differences


def _insert_audit_event(connection: Connection) -> int:
    at = "2026-01-01 00:00:00" if connection.dialect.name == "sqlite" else "2026-01-01T00:00:00+00:00"
    connection.execute(
        text(
            "INSERT INTO audit_events (at, action, resource, outcome, prev_hash, hash) "
            "VALUES (:at, 'test.event', 'test', 'success', '', :hash)"
        ),
        {"at": at, "hash": "0" * 64},
    )
    value = connection.execute(text("SELECT max(id) FROM audit_events")).scalar_one()
    return int(value)


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE audit_events SET action = 'tampered' WHERE id = :id", id="update"),
        pytest.param("DELETE FROM audit_events WHERE id = :id", id="delete"),
    ],
)
def test_audit_events_are_append_only(empty_app: Flask, statement: str) -> None:
    upgrade()
    with db.engine.begin() as connection:
        event_id = _insert_audit_event(connection)

    with db.engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"), connection.begin():
        connection.execute(text(statement), {"id": event_id})

    with db.engine.connect() as connection:
        row = connection.execute(text("SELECT action FROM audit_events WHERE id = :id"), {"id": event_id}).one()
    assert row.action == "test.event"


@pytest.mark.parametrize("empty_app", [p for p in _backends() if p.id == "postgresql"], indirect=True)
def test_audit_events_refuse_truncate_on_postgresql(empty_app: Flask) -> None:
    """PostgreSQL's TRUNCATE fires no row trigger; a statement trigger refuses it too."""
    upgrade()
    with db.engine.begin() as connection:
        _insert_audit_event(connection)
    with db.engine.connect() as connection:
        with pytest.raises(DBAPIError, match="append-only"), connection.begin():
            connection.execute(text("TRUNCATE audit_events"))
        assert connection.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 1
