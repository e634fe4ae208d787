"""The CSV export of appointments: every row of the caller's sites, streamed from the database.

The rows are read through a server-side cursor (``yield_per``: a named cursor on PostgreSQL)
and written out a batch at a time, so memory stays flat however many appointments there are.

The export is audited once per client whose appointments it holds, with its parameters. The
body streams after the request's unit of work has committed, so the events are written before:
the view asks which clients the rows belong to (their ids only), writes one event each, a
thousand per statement, and the request commits them before the first byte is sent. The stream
runs in a transaction of its own, which sees what committed since; a row of a client who was
not audited (booked in between) is left out, so no client's data leaves without an event.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select

from clinic.audit.operations import record, record_for_clients
from clinic.auth.models import User
from clinic.auth.permissions import require_site_in_scope, scoped_select
from clinic.core.spreadsheet import as_text
from clinic.extensions import db
from clinic.scheduling.models import Appointment

#: Rows fetched from the cursor, and written to the response, at a time.
BATCH_ROWS = 1000


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _free_text(value: str | None) -> str | None:
    """Text typed by staff, defused so that a spreadsheet shows it rather than evaluates it."""
    return as_text(value) if value else value


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _plain(value: Any) -> Any:
    return value


#: The columns of the export, in order, with how each value is written.
COLUMNS: tuple[tuple[str, Any, Callable[[Any], Any]], ...] = (
    ("id", Appointment.id, _plain),
    ("site_id", Appointment.site_id, _plain),
    ("series_id", Appointment.series_id, _plain),
    ("kind", Appointment.kind, _plain),
    ("is_group", Appointment.is_group, _boolean),
    ("clinician_id", Appointment.clinician_id, _plain),
    ("client_id", Appointment.client_id, _plain),
    ("starts_at", Appointment.starts_at, _instant),
    ("ends_at", Appointment.ends_at, _instant),
    ("timezone", Appointment.timezone, _plain),
    ("status", Appointment.status, _plain),
    ("capacity", Appointment.capacity, _plain),
    ("location", Appointment.location, _free_text),
    ("telehealth_url", Appointment.telehealth_url, _free_text),
    ("confirmed_at", Appointment.confirmed_at, _instant),
    ("checked_in_at", Appointment.checked_in_at, _instant),
    ("completed_at", Appointment.completed_at, _instant),
    ("cancelled_at", Appointment.cancelled_at, _instant),
    ("no_show_at", Appointment.no_show_at, _instant),
    ("cancel_reason", Appointment.cancel_reason, _free_text),
    ("created_at", Appointment.created_at, _instant),
    ("updated_at", Appointment.updated_at, _instant),
)


def export_csv(
    user: User,
    *,
    from_: datetime | None = None,
    to: datetime | None = None,
    site_id: int | None = None,
) -> Iterator[str]:
    """Audit the export, one event per client, now; return the CSV text (header, then rows in start order)."""
    if site_id is not None:
        require_site_in_scope(site_id, user)
    scope = scoped_select(Appointment, user)
    if from_ is not None:
        scope = scope.where(Appointment.starts_at >= from_)
    if to is not None:
        scope = scope.where(Appointment.starts_at < to)
    if site_id is not None:
        scope = scope.where(Appointment.site_id == site_id)
    audited = _audit_clients(
        scope, details={"from": _instant(from_), "to": _instant(to), "site_id": site_id, "format": "csv"}
    )
    stmt = (
        scope.with_only_columns(*(column for _name, column, _write in COLUMNS))
        .order_by(Appointment.starts_at, Appointment.id)
        .execution_options(yield_per=BATCH_ROWS)
    )
    writers = [write for _name, _column, write in COLUMNS]

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\r\n")
        out.writerow([name for name, _column, _write in COLUMNS])
        yield buffer.getvalue()
        result = db.session.execute(stmt)
        try:
            for batch in result.partitions():
                buffer.seek(0)
                buffer.truncate(0)
                out.writerows(
                    [write(value) for write, value in zip(writers, row, strict=True)]
                    for row in batch
                    if row[_CLIENT_ID] is None or row[_CLIENT_ID] in audited
                )
                yield buffer.getvalue()
        finally:
            result.close()

    return lines()


#: Position of ``client_id`` in a row of the export.
_CLIENT_ID = [name for name, _column, _write in COLUMNS].index("client_id")


def _audit_clients(scope: Select[Any], *, details: dict[str, Any]) -> set[int]:
    """Record ``appointment.export`` for each client with a row in ``scope``; their ids.

    Only the distinct ids are held (a few bytes per client), never the events, which are inserted
    a chunk at a time. An export holding no client's row is still recorded, once, with no client.
    """
    ids_stmt = (
        scope.with_only_columns(Appointment.client_id)
        .where(Appointment.client_id.is_not(None))
        .distinct()
        .execution_options(yield_per=BATCH_ROWS)
    )
    clients: set[int] = set(db.session.scalars(ids_stmt))
    if not clients:
        record("appointment.export", resource="appointment", details=details)
        return clients
    record_for_clients(
        "appointment.export", resource="appointment", client_ids=sorted(clients), details=details, chunk=BATCH_ROWS
    )
    return clients
