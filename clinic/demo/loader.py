"""Bulk loading of generated demo rows: PostgreSQL COPY through psycopg 3, SQLite executemany.

Demo staff (sites and users) are made through the ORM, once; everything else is inserted in
bulk with explicit ids, parents before children, in one transaction. No audit events are
written for seeded rows: the audit trail records what people did, and nobody did this, so the
existing chain stays valid (``flask audit verify`` still passes).
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import Connection, Table, func, select, text

from clinic.auth.models import Role, Site, User
from clinic.auth.passwords import hash_password
from clinic.clients.models import Client
from clinic.core.models import Base
from clinic.demo.generator import (
    CLIENTS_PER_CLINICIAN,
    CLIENTS_PER_INTAKE,
    SITES,
    Chunk,
    Generator,
    Rules,
    SiteStaff,
    dumps,
    site_count,
)
from clinic.dosing.runs import rebuild_runs
from clinic.extensions import db

#: Printed by ``flask demo seed``; every demo account signs in with it.
DEMO_PASSWORD = "clinic-demo-passphrase"  # noqa: S105 - a published demo credential, not a secret
DEMO_EMAIL_DOMAIN = "demo.example.org"


class AlreadySeededError(RuntimeError):
    """The database already holds clients and seeding was not forced."""


@dataclass
class SeedReport:
    clients: int
    seed: int
    today: date
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    accounts: list[tuple[str, str, str]] = field(default_factory=list)


def _slug(name: str) -> str:
    return name.split(maxsplit=1)[0].lower()


def ensure_staff(clients: int) -> tuple[list[SiteStaff], list[tuple[str, str, str]]]:
    """The demo sites and their staff, created once and reused by later seeds (one password hash for all)."""
    password_hash: str | None = None
    demo_users = select(User).where(User.email.like(f"%@{DEMO_EMAIL_DOMAIN}"))
    existing_users = {u.email: u for u in db.session.scalars(demo_users)}
    accounts: list[tuple[str, str, str]] = []

    def user(email: str, name: str, role: Role, sites: list[Site], *, supervisor: bool = False) -> User:
        nonlocal password_hash
        found = existing_users.get(email)
        if found is None:
            password_hash = password_hash or hash_password(DEMO_PASSWORD)
            found = User(
                email=email,
                name=name,
                role=role,
                is_supervisor=supervisor,
                is_active=True,
                password_hash=password_hash,
                sites=list(sites),
            )
            db.session.add(found)
            existing_users[email] = found
        accounts.append((email, role.value + (" (supervisor)" if supervisor else ""), ", ".join(s.name for s in sites)))
        return found

    specs = SITES[: site_count(clients)]
    weights = sum(spec.weight for spec in specs)
    sites: list[tuple[Site, Any, list[User], list[User], User]] = []
    all_sites: list[Site] = []
    for spec in specs:
        site = db.session.scalars(select(Site).where(Site.name == spec.name)).first()
        if site is None:
            site = Site(
                name=spec.name,
                timezone=spec.timezone,
                display_name=spec.display_name,
                is_otp=spec.is_otp,
                requires_supervisor_signature=spec.requires_supervisor_signature,
            )
            db.session.add(site)
        all_sites.append(site)
    db.session.flush()
    user(f"admin@{DEMO_EMAIL_DOMAIN}", "Avery Admin", Role.ADMIN, [])
    for spec, site in zip(specs, all_sites, strict=True):
        share = clients * spec.weight / weights
        slug = _slug(spec.name)
        n_clinicians = max(2, round(share / CLIENTS_PER_CLINICIAN))
        n_intake = max(1, round(share / CLIENTS_PER_INTAKE))
        clinicians = [
            user(
                f"clinician{i}.{slug}@{DEMO_EMAIL_DOMAIN}",
                f"Clinician {i} ({spec.display_name})",
                Role.CLINICIAN,
                [site],
                supervisor=i == 1,
            )
            for i in range(1, n_clinicians + 1)
        ]
        intake = [
            user(f"intake{i}.{slug}@{DEMO_EMAIL_DOMAIN}", f"Intake {i} ({spec.display_name})", Role.INTAKE, [site])
            for i in range(1, n_intake + 1)
        ]
        sites.append((site, spec, clinicians, intake, clinicians[0]))
    db.session.flush()
    staff = [
        SiteStaff(
            site_id=site.id,
            spec=spec,
            clinician_ids=tuple(u.id for u in clinicians),
            intake_ids=tuple(u.id for u in intake),
            supervisor_id=supervisor.id,
            clinician_names=tuple(u.name for u in clinicians),
        )
        for site, spec, clinicians, intake, supervisor in sites
    ]
    # Show the admin and the first clinician and intake coordinator of each site, not hundreds.
    brief = [a for a in accounts if a[0].startswith(("admin@", "clinician1.", "intake1."))]
    return staff, brief


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)


def _first_ids(connection: Connection, tables: list[Table]) -> dict[str, int]:
    first: dict[str, int] = {}
    for table in tables:
        if "id" in table.c and table.c.id.type.python_type is int:  # not tokens (fhir_exports.id)
            first[table.name] = int(connection.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1
    return first


@dataclass(frozen=True)
class _Shape:
    """How to turn a generated row into a full row of one table."""

    names: tuple[str, ...]
    defaults: tuple[Callable[[dict[str, Any]], Any], ...]
    json: frozenset[str]


def _default_for(column: Any, now: datetime) -> Callable[[dict[str, Any]], Any]:
    default = column.default
    if default is None:
        return lambda _row: None
    if default.is_scalar:
        value = default.arg
        return lambda _row: value
    # Callable defaults are clock readings (utcnow) or list(): use the row's own time, or the reference.
    arg = default.arg
    if column.name.endswith("_at"):
        return lambda row: row.get("created_at", now)
    return lambda _row: arg({})


def _shape(table: Table, now: datetime) -> _Shape:
    from sqlalchemy import JSON

    names = tuple(c.name for c in table.columns)
    return _Shape(
        names=names,
        defaults=tuple(_default_for(c, now) for c in table.columns),
        json=frozenset(c.name for c in table.columns if isinstance(c.type, JSON)),
    )


def _full_rows(shape: _Shape, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pairs = tuple(zip(shape.names, shape.defaults, strict=True))
    return [{name: row[name] if name in row else default(row) for name, default in pairs} for row in rows]


def _copy(connection: Connection, table: Table, shape: _Shape, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: stream the rows with COPY (one round trip per chunk and table)."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("no open database connection")
    columns = ", ".join(f'"{name}"' for name in shape.names)
    json_names = shape.json
    pairs = tuple(zip(shape.names, shape.defaults, strict=True))
    with driver.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            values = []
            for name, default in pairs:
                value = row[name] if name in row else default(row)
                if name in json_names and value is not None:
                    value = dumps(value)
                values.append(value)
            copy.write_row(values)


def load_chunk(connection: Connection, chunk: Chunk, shapes: dict[str, _Shape], tables: list[Table]) -> None:
    """Insert one chunk, parents first."""
    postgres = connection.dialect.name == "postgresql"
    for table in tables:
        rows = chunk.get(table.name)
        if not rows:
            continue
        if postgres:
            _copy(connection, table, shapes[table.name], rows)
        else:
            connection.execute(table.insert(), _full_rows(shapes[table.name], rows))


def _reset_sequences(connection: Connection, tables: list[Table]) -> None:
    for table in tables:
        if "id" not in table.c or table.c.id.autoincrement is False or table.c.id.type.python_type is not int:
            continue
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608 - table names from metadata
                f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table.name}"), false) '
                f"WHERE pg_get_serial_sequence('{table.name}', 'id') IS NOT NULL"
            )
        )


def _reserve_existing_bookings(connection: Connection, generator: Generator, staff: list[SiteStaff]) -> None:
    """A forced seed books around the demo clinicians' existing appointments."""
    from clinic.scheduling.models import RELEASED_STATUSES, Appointment

    clinicians = [i for site in staff for i in site.clinician_ids]
    rows = connection.execute(
        select(Appointment.clinician_id, Appointment.starts_at, Appointment.ends_at).where(
            Appointment.clinician_id.in_(clinicians), Appointment.status.not_in(RELEASED_STATUSES)
        )
    )
    for clinician_id, starts_at, ends_at in rows:
        generator.reserve(clinician_id, starts_at, ends_at)


def seed(
    *, clients: int, seed: int, today: date, force: bool = False, progress: Callable[[str], None] | None = None
) -> SeedReport:
    """Generate and load the demo; flushes and leaves the commit to the caller."""
    started = clock.perf_counter()
    existing = db.session.scalar(select(func.count()).select_from(Client)) or 0
    if existing and not force:
        raise AlreadySeededError(f"the database already holds {existing} clients")
    staff, accounts = ensure_staff(clients)
    connection = db.session.connection()
    tables = _tables()
    taken = set(connection.execute(select(Client.mrn)).scalars()) if existing else set()
    generator = Generator(
        clients=clients,
        seed=seed,
        today=today,
        sites=staff,
        first_ids=_first_ids(connection, tables),
        taken_mrns=taken,
        tables={t.name for t in tables},
        rules=Rules.from_settings(current_app.config),
    )
    if existing and generator.with_appointments:
        _reserve_existing_bookings(connection, generator, staff)
    shapes = {t.name: _shape(t, generator.now) for t in tables}
    report = SeedReport(clients=clients, seed=seed, today=today, accounts=accounts)
    done = 0
    for chunk in generator.chunks():
        load_chunk(connection, chunk, shapes, tables)
        for name, rows in chunk.items():
            report.rows[name] = report.rows.get(name, 0) + len(rows)
        done += len(chunk.get("clients", ()))
        if progress is not None:
            progress(
                f"{done}/{clients} clients, {sum(report.rows.values())} rows, {clock.perf_counter() - started:.0f} s"
            )
    if connection.dialect.name == "postgresql":
        _reset_sequences(connection, tables)
    # The doses went in without the ORM, so the session kept no runs in step: all are rebuilt once.
    rebuild_runs(connection=connection)
    report.seconds = clock.perf_counter() - started
    return report


def analyze(connection: Connection) -> None:
    """Fresh planner statistics after a bulk load (PostgreSQL ANALYZE, SQLite ANALYZE)."""
    connection.execute(text("ANALYZE"))
