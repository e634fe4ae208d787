"""Recording audit events, sealing them into the hash chain, and verifying the chain.

Events are queued during a unit of work and inserted right before it commits, without any lock,
so concurrent requests never wait on one another. A sealer (a periodic task, or ``flask audit
seal``) then takes the chain lock and chains every committed, unsealed event in turn: it gives
each the next sequence number, the previous event's hash and its own hash: an HMAC under a key
that is not in the database (clinic.audit.keys), so that whoever can write the database cannot
recompute the chain after changing an entry, with the id of that key. The database lets a row be
updated only that once, and only in those columns. Anchors (clinic.audit.anchors) copy the head
of the chain out of the database, so that cutting entries off its end is detected too. Failures
and denials survive a rolled-back request: they are written in a transaction of their own.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, cast

from flask import g, has_request_context, request
from sqlalchemy import Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from clinic.audit.anchors import Anchor, anchor_for, write_anchor
from clinic.audit.keys import Keyring, chain_hash, keyring
from clinic.audit.models import AuditEvent, Outcome
from clinic.core import unit_of_work
from clinic.core.pagination import Page, keyset_page
from clinic.core.signals import request_replayed
from clinic.core.time import utcnow
from clinic.extensions import db

#: Key of the PostgreSQL advisory lock that serialises writers of the chain.
_CHAIN_LOCK_KEY = 7_306_001


@dataclass
class PendingEvent:
    action: str
    resource: str
    resource_id: str | None
    client_id: int | None
    outcome: Outcome
    user_id: int | None
    ip: str | None
    details: dict[str, Any] | None
    at: datetime = field(default_factory=utcnow)
    #: Written even when the unit of work rolls back (a read shown in a refusal's answer).
    kept_on_rollback: bool = False

    @property
    def survives_rollback(self) -> bool:
        """Failures and denials are kept through a rollback, and so is what was marked to be."""
        return self.kept_on_rollback or self.outcome is not Outcome.SUCCESS


def record(
    action: str,
    *,
    resource: str,
    resource_id: object | None = None,
    client_id: int | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    user_id: int | None = None,
    details: dict[str, Any] | None = None,
    even_if_rolled_back: bool = False,
) -> None:
    """Queue an audit event for the current unit of work; it is written when that commits.

    ``user_id`` defaults to the signed-in user; the address is taken from the request. Failures
    and denials are written even when the unit of work rolls back; so is a successful event with
    ``even_if_rolled_back`` (client data shown in the answer to a refused request was still read).
    """
    pending = PendingEvent(
        action=action,
        resource=resource,
        resource_id=None if resource_id is None else str(resource_id),
        client_id=client_id,
        outcome=outcome,
        user_id=_signed_in_user_id() if user_id is None else user_id,
        ip=request.remote_addr if has_request_context() else None,
        details=details,
        kept_on_rollback=even_if_rolled_back,
    )
    _EVENTS.add(pending)


def record_for_clients(
    action: str,
    *,
    resource: str,
    client_ids: Iterable[int],
    details: dict[str, Any] | None = None,
    chunk: int = 1000,
    user_id: int | None = None,
) -> int:
    """One ``action`` event per client, inserted now, ``chunk`` events per statement; returns how many.

    For an act on many clients at once (an export): the events are never all held in memory, as
    queued ones would be. They belong to the current transaction and commit (or roll back) with it.
    """
    user_id = _signed_in_user_id() if user_id is None else user_id
    ip = request.remote_addr if has_request_context() else None
    session = db.session()
    written = 0
    ids = iter(client_ids)
    while batch := list(islice(ids, chunk)):
        _write_events(
            session,
            [
                PendingEvent(
                    action=action,
                    resource=resource,
                    resource_id=None,
                    client_id=client_id,
                    outcome=Outcome.SUCCESS,
                    user_id=user_id,
                    ip=ip,
                    details=details,
                )
                for client_id in batch
            ],
        )
        written += len(batch)
    return written


def _signed_in_user_id() -> int | None:
    if not has_request_context():
        return None
    user = g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        return int(user.id)
    return None


def audit(
    verb: str,
    obj: Any,
    *,
    details: dict[str, Any] | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    user_id: int | None = None,
    even_if_rolled_back: bool = False,
) -> None:
    """Record ``<resource>.<verb>`` on a row: resource, id and client come from the row itself.

    One event per client the row concerns (a group session: each seated client; none: one event
    without a client), so a client's trail is complete whatever kind of row was touched.
    ``even_if_rolled_back`` as for :func:`record`.
    """
    resource = resource_name(type(obj))
    for client_id in concerned_clients(obj):
        record(
            f"{resource}.{verb}",
            resource=resource,
            resource_id=getattr(obj, "id", None),
            client_id=client_id,
            details=details,
            outcome=outcome,
            user_id=user_id,
            even_if_rolled_back=even_if_rolled_back,
        )


@request_replayed.connect
def _record_replay(stored: Any, *, user_id: int, **_: Any) -> None:
    """A replayed answer hands its stored content to the user again: a read like any other."""
    view_args = request.view_args or {} if has_request_context() else {}
    client_id = view_args.get("client_id")
    record(
        "request.replay",
        resource="endpoint",
        resource_id=request.endpoint if has_request_context() else None,
        client_id=client_id if isinstance(client_id, int) else None,
        user_id=user_id,
        details={"method": stored.method, "path": stored.path, "status": stored.status},
    )


def resource_name(model: type[Any]) -> str:
    """The audit trail's name of a kind of row: singular and independent of the table's name.

    A model may set ``__audit_resource__``; otherwise its table's name in the singular
    (``clients`` -> ``client``, ``drug_screens`` -> ``drug_screen``).
    """
    declared = getattr(model, "__audit_resource__", None)
    if declared:
        return str(declared)
    table = str(model.__tablename__)
    return table[:-1] if table.endswith("s") else table


def concerned_clients(obj: Any) -> tuple[int | None, ...]:
    """The clients whose record ``obj`` is part of; ``(None,)`` for a row of no client."""
    if hasattr(obj, "audit_client_ids"):
        return tuple(obj.audit_client_ids()) or (None,)
    client_id = getattr(obj, "client_id", None)
    if client_id is None and resource_name(type(obj)) == "client":
        client_id = obj.id
    return (client_id,)


def content_hash(row: AuditEvent | PendingEvent, prev_hash: str, key: bytes | None) -> str:
    """HMAC-SHA-256 under ``key`` over the previous hash and a canonical form of the row's content.

    ``key`` None gives the plain SHA-256 with which entries were sealed before the chain was keyed.
    """
    payload = {
        "at": row.at.isoformat(timespec="microseconds"),
        "user_id": row.user_id,
        "action": row.action,
        "resource": row.resource,
        "resource_id": row.resource_id,
        "client_id": row.client_id,
        "outcome": Outcome(row.outcome).value,
        "ip": row.ip,
        "details": row.details,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return chain_hash(prev_hash, canonical, key)


def _write_events(session: Session, events: list[PendingEvent]) -> None:
    """Insert the events, unsealed, in one statement (no lock: the sealer chains them)."""
    if not events:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One fixed statement whatever the number of events: they travel as one JSON array that
        # the server turns back into rows. Driver and server parse and plan it once per connection,
        # where a multi-row VALUES list is a new, long statement for every number of rows.
        payload = [
            {
                "at": pending.at.isoformat(),
                "user_id": pending.user_id,
                "action": pending.action,
                "resource": pending.resource,
                "resource_id": pending.resource_id,
                "client_id": pending.client_id,
                "outcome": Outcome(pending.outcome).value,
                "ip": pending.ip,
                "details": pending.details,
            }
            for pending in events
        ]
        connection.execute(_INSERT_FROM_JSON, {"events": json.dumps(payload)})
        return
    rows = [
        {
            "at": pending.at,
            "user_id": pending.user_id,
            "action": pending.action,
            "resource": pending.resource,
            "resource_id": pending.resource_id,
            "client_id": pending.client_id,
            "outcome": pending.outcome,
            "ip": pending.ip,
            "details": pending.details,
        }
        for pending in events
    ]
    # RETURNING makes SQLAlchemy batch the rows into INSERT ... VALUES (...), (...) statements
    # ("insertmanyvalues"): one statement where a plain executemany would be one per event.
    table = cast(Table, AuditEvent.__table__)
    connection.execute(insert(table).returning(table.c.id), rows)


#: PostgreSQL: a unit of work's events as one JSON array of objects (see _write_events).
_EVENT_COLUMNS = (
    "at timestamptz, user_id integer, action varchar, resource varchar, resource_id varchar, client_id integer, "
    "outcome varchar, ip varchar, details json"
)
_EVENT_NAMES = ", ".join(column.split()[0] for column in _EVENT_COLUMNS.split(", "))
_INSERT_FROM_JSON = text(
    f"INSERT INTO audit_events ({_EVENT_NAMES}) SELECT {_EVENT_NAMES} "  # noqa: S608 - constant text only
    f"FROM json_to_recordset(CAST(:events AS json)) AS e({_EVENT_COLUMNS})"
)


#: A unit of work's events, written right before it commits; failures and denials survive a rollback.
_EVENTS: unit_of_work.Queue[PendingEvent] = unit_of_work.Queue(
    "audit", write=_write_events, survives_rollback=lambda pending: pending.survives_rollback
)


def seal_pending(*, batch: int = 500) -> int:
    """Chain committed, unsealed events in id order; returns how many were sealed.

    Each is sealed with the current key (``AUDIT_CHAIN_KEY``), whose id it records. Runs under
    the chain lock (a PostgreSQL advisory lock; on SQLite the write lock), so two sealers never
    hand out the same sequence number. Commits its own work.
    """
    keys = keyring()
    sealed = 0
    while True:
        session = db.session()
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
        last = session.execute(
            select(AuditEvent.seq, AuditEvent.hash, AuditEvent.key_id)
            .where(AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        seq: int = last[0] if last is not None and last[0] is not None else 0
        prev_hash: str = (last[1] or "") if last is not None else ""
        pending = session.scalars(
            select(AuditEvent).where(AuditEvent.hash.is_(None)).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not pending:
            session.commit()
            return sealed
        if last is None or last[2] is None:
            # The first keyed entry: anchor the chain as it is (empty, or its entries sealed before
            # keying), so that no one can later pass keyed entries off as unkeyed ones.
            write_anchor(anchor_for(seq, prev_hash, None))
        updates = []
        for row in pending:
            seq += 1
            row_hash = content_hash(row, prev_hash or "", keys.current)
            updates.append(
                {"id": row.id, "seq": seq, "prev_hash": prev_hash or "", "hash": row_hash, "key_id": keys.current_id}
            )
            prev_hash = row_hash
        session.expunge_all()
        session.execute(update(AuditEvent), updates)
        session.commit()
        sealed += len(updates)
        if len(pending) < batch:
            return sealed


@dataclass(frozen=True)
class ChainBreak:
    id: int | None
    reason: str


@dataclass(frozen=True)
class Verification:
    checked: int
    unsealed: int
    broken: ChainBreak | None
    #: Entries sealed before the chain was keyed (plain SHA-256), all at its start.
    unkeyed: int = 0
    #: Anchors the chain was checked against.
    anchors: int = 0


def iter_sealed(batch: int = 2000) -> Iterator[AuditEvent]:
    last_seq = 0
    while True:
        rows = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq or last_seq
        db.session.expunge_all()


def verify_chain(*, anchors: Sequence[Anchor] = ()) -> Verification:
    """Walk the sealed log in sequence order; report the first altered, removed or reordered entry.

    Each entry's hash is checked under the key it names; entries sealed before keying (no key id)
    are accepted only at the start of the chain, and never after an anchor, since every anchor was
    taken by a version that keys. Each anchor's entry must still have the anchored hash, and the
    chain must reach the newest anchor: a shorter one lost its tail.
    """
    walk = _ChainWalk(keyring(), anchors)
    for row in iter_sealed():
        reason = walk.problem(row)
        if reason is not None:
            return walk.result(ChainBreak(row.id, reason))
    reason = walk.problem_at_end()
    return walk.result(None if reason is None else ChainBreak(None, reason))


class _ChainWalk:
    """What a walk along the chain has seen so far, and the checks of each next entry."""

    def __init__(self, keys: Keyring, anchors: Sequence[Anchor]) -> None:
        self.keys = keys
        self.anchors = len(anchors)
        self.anchored: dict[int, list[Anchor]] = {}
        for anchor in anchors:
            self.anchored.setdefault(anchor.seq, []).append(anchor)
        # Every anchor was written by a version that seals with a key: nothing after one is unkeyed.
        self.unkeyed_until = min(self.anchored) if self.anchored else None
        self.prev_hash = ""
        self.checked = 0
        self.unkeyed = 0
        self.keyed_seen = False

    def result(self, broken: ChainBreak | None) -> Verification:
        return Verification(self.checked, _unsealed(), broken, self.unkeyed, self.anchors)

    def problem(self, row: AuditEvent) -> str | None:
        """Why ``row`` breaks the chain, if it does; otherwise it becomes the previous entry."""
        self.checked += 1
        reason = self._link_problem(row) or self._hash_problem(row) or self._anchor_problem(row)
        self.prev_hash = row.hash or ""
        return reason

    def _link_problem(self, row: AuditEvent) -> str | None:
        if row.seq != self.checked:
            return f"sequence {self.checked} is missing before it (an entry was removed)"
        if row.prev_hash != self.prev_hash:
            return "its link to the previous entry is broken (an entry was removed or reordered)"
        return None

    def _hash_problem(self, row: AuditEvent) -> str | None:
        key: bytes | None = None
        if row.key_id is None:
            if self.keyed_seen or (self.unkeyed_until is not None and self.checked > self.unkeyed_until):
                return "it is sealed without a key after keyed or anchored entries (it was rewritten)"
            self.unkeyed += 1
        elif row.key_id not in self.keys.keys:
            return f"it is sealed with key {row.key_id}, which is not configured (add it to AUDIT_CHAIN_KEYS)"
        else:
            self.keyed_seen = True
            key = self.keys.keys[row.key_id]
        if not hmac.compare_digest(content_hash(row, self.prev_hash, key), row.hash or ""):
            return "its content does not match its hash (the entry was altered)"
        return None

    def _anchor_problem(self, row: AuditEvent) -> str | None:
        for anchor in self.anchored.get(self.checked, ()):
            if anchor.hash != row.hash:
                return (
                    f"its hash differs from the one anchored at {anchor.anchored_at.isoformat()} "
                    "(the chain was rewritten up to it)"
                )
        return None

    def problem_at_end(self) -> str | None:
        last = max(self.anchored, default=0)
        if last <= self.checked:
            return None
        when = self.anchored[last][0].anchored_at.isoformat()
        return (
            f"the chain ends at sequence {self.checked}, but sequence {last} was anchored at {when} "
            "(entries were removed from its end)"
        )


def _unsealed() -> int:
    return int(db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.hash.is_(None))) or 0)


def search_events(
    *,
    limit: int,
    cursor: str | None,
    user_id: int | None = None,
    client_id: int | None = None,
    action: str | None = None,
    outcome: Outcome | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
) -> Page[AuditEvent]:
    """Audit events, newest first; reading the trail is itself audited."""
    stmt = select(AuditEvent)
    if user_id is not None:
        stmt = stmt.where(AuditEvent.user_id == user_id)
    if client_id is not None:
        stmt = stmt.where(AuditEvent.client_id == client_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if outcome is not None:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    if from_ is not None:
        stmt = stmt.where(AuditEvent.at >= from_)
    if to is not None:
        stmt = stmt.where(AuditEvent.at <= to)
    page = keyset_page(stmt, keys=[AuditEvent.id], limit=limit, cursor=cursor, descending=True)
    filters = {k: v for k, v in {"user_id": user_id, "client_id": client_id, "action": action}.items() if v is not None}
    record("audit.read", resource="audit_event", details=filters or None)
    return page
