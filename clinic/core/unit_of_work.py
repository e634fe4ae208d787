"""The unit of work: one transaction per request, task or command, and what must follow it.

Every entry point — an API request, a console page, a Celery task, a CLI command — runs its
work in one transaction that this module commits once (or rolls back on any exception). Work
that must follow the transaction is registered here during it and handled by listeners on the
session, never by hand:

- **Queues** (:class:`Queue`) hold rows written right before the commit, in one statement per
  queue (the audit trail). A queue may keep some items through a rollback: a refused action is
  still written, in a transaction of its own.
- **After-commit callbacks** (:func:`after_commit`) run once the transaction has committed
  (Celery tasks are handed to the broker there); a rollback drops them.
- **Redo-on-rollback callbacks** (:func:`redo_if_rolled_back`) record something the outside
  world has already seen (a reminder the provider accepted): if the transaction rolls back,
  the callback runs again and is committed on its own. A commit clears them.

The HTTP integration (``clinic.core.http``) commits when the view returned normally and calls
:func:`rollback` when the request failed; Celery tasks and CLI commands use :func:`unit_of_work`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import g, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from clinic.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")

_STATE = "clinic.unit_of_work"


@dataclass
class _Pending:
    """What the current transaction of one session has registered to follow it."""

    queued: dict[str, list[Any]] = field(default_factory=dict)
    after_commit: list[Callable[[], object]] = field(default_factory=list)
    redo_if_rolled_back: list[Callable[[], object]] = field(default_factory=list)


def _pending(session: Session) -> _Pending:
    state = session.info.get(_STATE)
    if state is None:
        state = session.info[_STATE] = _Pending()
    if not session.in_transaction():
        # What is registered belongs to a transaction, so that its rollback (whoever calls it) ends it
        # too. Beginning takes no connection yet: the first statement does.
        session.begin()
    return state


_QUEUES: dict[str, Queue[Any]] = {}


class Queue(Generic[T]):
    """Items of one kind written in one batch right before the unit of work commits.

    ``write`` receives the session and every item queued in the transaction. Items for which
    ``survives_rollback`` is true are written even when the unit of work fails (in a transaction
    of their own, by :func:`rollback`).
    """

    def __init__(
        self,
        name: str,
        *,
        write: Callable[[Session, list[T]], None],
        survives_rollback: Callable[[T], bool] = lambda _item: False,
    ) -> None:
        if name in _QUEUES:
            raise ValueError(f"a unit-of-work queue named {name!r} exists already")
        self.name = name
        self.write = write
        self.survives_rollback = survives_rollback
        _QUEUES[name] = self

    def add(self, item: T) -> None:
        """Queue ``item`` in the current transaction."""
        _pending(db.session()).queued.setdefault(self.name, []).append(item)


def after_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current transaction commits; never when it rolls back."""
    _pending(db.session()).after_commit.append(callback)


def redo_if_rolled_back(callback: Callable[[], object]) -> None:
    """If the current transaction rolls back, run ``callback`` again and commit it on its own.

    For a change that records what the outside world already saw (a message handed to a
    provider): it must not be lost with the rest of a failed transaction.
    """
    _pending(db.session()).redo_if_rolled_back.append(callback)


def commit() -> None:
    """Commit the unit of work: queued rows are written first, after-commit work follows."""
    db.session.commit()


def rollback() -> None:
    """Roll the unit of work back, then write what must survive it in a transaction of its own."""
    session = db.session()
    state = _pending(session)
    kept = {
        name: [item for item in items if _QUEUES[name].survives_rollback(item)]
        for name, items in state.queued.items()
    }
    redo = list(state.redo_if_rolled_back)
    session.rollback()  # the listener below forgets everything the transaction had registered
    kept = {name: items for name, items in kept.items() if items}
    if not kept and not redo:
        return
    try:
        survivors = _pending(session)
        for name, items in kept.items():
            survivors.queued[name] = items
        for callback in redo:
            callback()
        session.commit()
    except Exception:  # the original failure is the one to report; this one goes to the log
        log.exception("could not record what a failed unit of work had to keep")
        session.rollback()


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Run the block as one unit of work: commit once at the end, roll back on any exception."""
    try:
        yield
    except BaseException:
        rollback()
        raise
    commit()


@contextmanager
def savepoint() -> Iterator[None]:
    """Run the block in a savepoint of the unit of work: if it raises, only the block is undone.

    Its writes are rolled back to the savepoint, and what it registered is forgotten — its queued
    items but those that survive a rollback (a refusal's audit event), its after-commit work — while
    the unit of work goes on and commits the rest. A console form uses it to show a refused
    change's errors on a page whose own reads are audited and committed like any page view's.
    """
    session = db.session()
    state = _pending(session)
    marks = {name: len(items) for name, items in state.queued.items()}
    after = len(state.after_commit)
    nested = session.begin_nested()
    try:
        yield
    except BaseException:
        if nested.is_active:
            nested.rollback()
        for name, items in state.queued.items():
            start = marks.get(name, 0)
            survivors = [item for item in items[start:] if _QUEUES[name].survives_rollback(item)]
            state.queued[name] = items[:start] + survivors
        del state.after_commit[after:]
        raise
    if nested.is_active:
        nested.commit()


_FAILED = "_clinic_unit_failed"


def fail() -> None:
    """Mark the current request's unit of work failed: it is rolled back instead of committed."""
    if has_app_context():
        setattr(g, _FAILED, True)


def failed() -> bool:
    """Whether the current request's unit of work was marked failed."""
    return has_app_context() and bool(g.get(_FAILED))


@event.listens_for(Session, "before_commit")
def _write_queues(session: Session) -> None:
    state: _Pending | None = session.info.get(_STATE)
    if state is None or not state.queued:
        return
    queued, state.queued = state.queued, {}
    for name, items in queued.items():
        if items:
            _QUEUES[name].write(session, items)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    state: _Pending | None = session.info.pop(_STATE, None)
    if state is None:
        return
    for callback in state.after_commit:
        try:
            callback()
        except Exception:  # the commit stands; the callback's owner has a sweep to catch up
            log.exception("after-commit work failed")


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: SessionTransaction) -> None:
    # A rolled-back savepoint leaves the unit of work going on; the outermost rollback ends it.
    if previous_transaction.nested or previous_transaction.parent is not None:
        return
    session.info.pop(_STATE, None)
