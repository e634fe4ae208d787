"""Anchors: the chain's head (sequence, hash, time) written where the database cannot rewrite it.

Keying the chain stops whoever can write the database from recomputing it; it cannot stop them
from cutting entries off its end, which leaves a shorter chain that verifies. An anchor can:
``flask audit anchor`` (and the daily beat job) writes the head of the sealed chain to
``AUDIT_ANCHOR_TARGET`` — a file of JSON lines, only ever appended to, or the log — and
``flask audit verify`` checks the chain against every anchor it is given.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import Connection, select

from clinic.audit.models import AuditEvent
from clinic.core.time import utcnow
from clinic.extensions import db

log = logging.getLogger("clinic.audit.anchor")

#: Marks an anchor in the log, so anchors can be picked out of it (``grep 'audit anchor'``).
LOG_MARKER = "audit anchor"


@dataclass(frozen=True)
class Anchor:
    #: Sequence number of the anchored entry: the head of the chain when it was anchored.
    seq: int
    #: That entry's hash.
    hash: str
    #: When the anchor was taken.
    anchored_at: datetime
    #: The key that sealed the entry (None: sealed before the chain was keyed).
    key_id: str | None
    #: The database whose chain it anchors (its name, or an SQLite file's path): one target may
    #: collect the anchors of several databases (a development checkout and a benchmark's).
    database: str | None

    def as_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "hash": self.hash,
                "anchored_at": self.anchored_at.isoformat(),
                "key_id": self.key_id,
                "database": self.database,
            },
            sort_keys=True,
        )


class AnchorError(ValueError):
    """An anchor source that cannot be read: a line that is not an anchor, or a missing file."""


def file_target() -> Path | None:
    """The anchor file ``AUDIT_ANCHOR_TARGET`` names; None when anchors go to the log."""
    target = str(current_app.config["AUDIT_ANCHOR_TARGET"])
    return Path(target.removeprefix("file:")) if target.startswith("file:") else None


def database_name() -> str:
    """The name of the database this application uses (an SQLite file's path), from its URL."""
    bind = db.session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind  # the tests bind a Connection
    return str(engine.url.database or "")


def of_this_database(anchors: list[Anchor]) -> tuple[list[Anchor], int]:
    """The anchors of this application's database, and how many belong to others."""
    name = database_name()
    mine = [anchor for anchor in anchors if anchor.database in (None, name)]
    return mine, len(anchors) - len(mine)


def anchor_for(seq: int, hash_: str, key_id: str | None) -> Anchor:
    """An anchor, taken now, of the entry ``seq`` of this database's chain (0 and "": the empty chain)."""
    return Anchor(seq=seq, hash=hash_, anchored_at=utcnow(), key_id=key_id, database=database_name())


def head() -> Anchor | None:
    """An anchor of the newest sealed entry; None while nothing is sealed."""
    row = db.session.execute(
        select(AuditEvent.seq, AuditEvent.hash, AuditEvent.key_id)
        .where(AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    if row is None or row.seq is None or row.hash is None:
        return None
    return anchor_for(row.seq, row.hash, row.key_id)


def write_anchor(anchor: Anchor) -> str:
    """Append ``anchor`` to the configured target and return where it went."""
    path = file_target()
    if path is None:
        # WARNING, not INFO: an anchor must survive the default log levels of gunicorn and Celery.
        log.warning("%s %s", LOG_MARKER, anchor.as_json())
        return "the log"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, (anchor.as_json() + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return str(path)


def anchor_head() -> Anchor | None:
    """Write the head of the sealed chain to the anchor target; None when nothing is sealed yet."""
    anchor = head()
    if anchor is not None:
        write_anchor(anchor)
    return anchor


def read(path: Path) -> list[Anchor]:
    """The anchors in a file of anchors, or in a log's lines that hold one (its other lines are skipped).

    A line that starts like an anchor but is not one is an error, never skipped.
    """
    if not path.exists():
        raise AnchorError(f"{path} does not exist")
    anchors: list[Anchor] = []
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.startswith("{"):  # a line of an anchor file
                start = 0
            elif (marker := line.find(LOG_MARKER + " {")) >= 0:  # a log line holding an anchor
                start = marker + len(LOG_MARKER) + 1
            else:  # a blank line, or another line of a log
                continue
            try:
                value, _end = decoder.raw_decode(line, start)
                anchors.append(
                    Anchor(
                        seq=int(value["seq"]),
                        hash=str(value["hash"]),
                        anchored_at=datetime.fromisoformat(value["anchored_at"]),
                        key_id=value.get("key_id"),
                        database=value.get("database"),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise AnchorError(f"{path}, line {number}: not an anchor ({exc})") from exc
    return anchors


def configured() -> list[Anchor]:
    """The anchors of the configured file; none when anchors go to the log or none was written yet."""
    path = file_target()
    if path is None or not path.exists():
        return []
    return read(path)
