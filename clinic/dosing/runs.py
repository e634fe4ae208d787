"""Each order's dose coverage as runs (``dose_runs``), kept in step with the dosing record.

A run is a maximal stretch of days an order's counted entries (not voided) cover: their
``covered_from``..``covered_until`` merged where they overlap or touch. :func:`rebuild_runs`
recomputes the runs of some orders (or all) from ``doses`` in two statements — a delete and one
gaps-and-islands insert — on SQLite and PostgreSQL alike. Listeners call it for the orders whose
entries were written, in the same transaction, right after the write: an engine listener after
every INSERT into ``doses`` (by the ORM's flush or a bulk Core insert: the orders are in its
parameters), a session listener after every flush that changed or deleted entries (a void; both
orders of an entry moved to another). So every path that writes the record keeps the runs right
and a read later in the transaction sees them. A write the listeners cannot see — PostgreSQL COPY
(the demo loader), a bulk UPDATE or DELETE — must call ``rebuild_runs`` itself: the demo loader
rebuilds all runs once at the end.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Engine, Insert, Table, case, delete, event, func, insert, select
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import get_history

from clinic.core.sql import days_between
from clinic.dosing.models import Dose, DoseRun
from clinic.plans.models import Medication

_RUNS = cast(Table, DoseRun.__table__)
_DOSES = cast(Table, Dose.__table__)
_MEDICATIONS = cast(Table, Medication.__table__)


def _runs_select(medication_ids: Collection[int] | None) -> Any:
    """The runs of the given orders (all when None): (medication_id, first_dose_id, covered_from, covered_until).

    Entries are taken per order in (``covered_from``, id) order; one begins a run when it starts more
    than a day after the last day covered by the entries before it (one window pass), and a running
    count of those beginnings numbers the runs (a second one over the same ordering).
    """
    doses = _DOSES.c
    window: dict[str, Any] = {"partition_by": doses.medication_id, "order_by": (doses.covered_from, doses.id)}
    counted = select(
        doses.id,
        doses.medication_id,
        doses.covered_from,
        doses.covered_until,
        func.max(doses.covered_until).over(**window, rows=(None, -1)).label("prev_end"),
    ).where(doses.voided_at.is_(None))
    if medication_ids is not None:
        counted = counted.where(doses.medication_id.in_(sorted(medication_ids)))
    marked_in = counted.subquery()
    begins = case(
        (marked_in.c.prev_end.is_(None), 1),
        (days_between(marked_in.c.prev_end, marked_in.c.covered_from) > 1, 1),
        else_=0,
    )
    marked = select(
        marked_in,
        begins.label("begins"),
        func.sum(begins)
        .over(partition_by=marked_in.c.medication_id, order_by=(marked_in.c.covered_from, marked_in.c.id))
        .label("run_no"),
    ).subquery()
    return select(
        marked.c.medication_id,
        func.max(case((marked.c.begins == 1, marked.c.id))).label("first_dose_id"),
        func.min(marked.c.covered_from).label("covered_from"),
        func.max(marked.c.covered_until).label("covered_until"),
    ).group_by(marked.c.medication_id, marked.c.run_no)


def rebuild_runs(medication_ids: Collection[int] | None = None, *, connection: Connection | None = None) -> None:
    """Recompute the runs of ``medication_ids`` (every order when None) from the dosing record.

    Runs on ``connection`` when given, else on the session's connection; never commits.
    """
    if medication_ids is not None and not medication_ids:
        return
    if connection is None:
        from clinic.extensions import db

        connection = db.session.connection()
    delete_runs = delete(_RUNS)
    if medication_ids is not None:
        orders = sorted(medication_ids)
        # One rebuild of an order at a time (PostgreSQL): one that waited here then reads, in statements
        # begun after the other's commit, both its runs to delete and every entry committed.
        connection.execute(
            select(_MEDICATIONS.c.id)
            .where(_MEDICATIONS.c.id.in_(orders))
            .order_by(_MEDICATIONS.c.id)
            .with_for_update(key_share=True)
        )
        delete_runs = delete_runs.where(_RUNS.c.medication_id.in_(orders))
    connection.execute(delete_runs)
    connection.execute(
        insert(_RUNS).from_select(
            ["medication_id", "first_dose_id", "covered_from", "covered_until"], _runs_select(medication_ids)
        )
    )


def _touched_orders(session: Session) -> set[int]:
    """The orders of the entries this flush changed or deleted (both orders of an entry moved to another)."""
    touched: set[int] = set()
    for obj in (*session.dirty, *session.deleted):
        if not isinstance(obj, Dose):
            continue
        history = get_history(obj, "medication_id")
        touched.update(m for m in (*history.added, *history.unchanged, *history.deleted) if m is not None)
    return touched


@event.listens_for(Session, "after_flush")
def _keep_runs_in_step(session: Session, _flush: UOWTransaction) -> None:
    # New entries are seen as they are inserted (below), by the ORM or not; changes here.
    touched = _touched_orders(session)
    if touched:
        rebuild_runs(touched, connection=session.connection())


@event.listens_for(Engine, "after_execute")
def _runs_of_inserted_doses(
    connection: Connection,
    statement: Any,
    multiparams: Sequence[Any],
    params: Mapping[str, Any],
    _options: Any,
    _result: Any,
) -> None:
    """Rebuild the runs of the orders an INSERT into ``doses`` just wrote to: through the ORM or not."""
    if not isinstance(statement, Insert) or statement.table is not _DOSES:
        return
    rows = [row for row in (multiparams or [params]) if isinstance(row, Mapping)]
    orders: set[Any] = {row.get("medication_id") for row in rows}
    if statement.select is not None or not rows or None in orders:
        rebuild_runs(connection=connection)  # which orders is not known: all of them
    else:
        rebuild_runs({int(order) for order in orders}, connection=connection)
