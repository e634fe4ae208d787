"""``Idempotency-Key``: a POST sent again with the same key creates nothing and gets the first answer.

A client that loses the connection after sending a POST cannot tell whether it was carried
out. With an ``Idempotency-Key`` header (1-255 visible ASCII characters) it can simply send
the same request again (API.md, "Robustness of every endpoint"):

- the first request's status, body and the headers worth repeating are stored for
  ``IDEMPOTENCY_KEY_HOURS`` (24) per (user, key, method, path);
- a repeat with the same body (and query string) answers them again, with
  ``Idempotent-Replayed: true``, and does nothing else;
- the same key with another body is a 422 naming ``Idempotency-Key``;
- a repeat while the first is still running is a 409 (PostgreSQL: the first holds a
  transaction-scoped advisory lock on the key; on SQLite, whose writers take turns, the
  second finds the stored answer or its commit conflicts with the first one's row: 409).

The stored answer is written in the request's own transaction, right before the unit of work
commits (``clinic.core.http``): it exists if and only if what the request did was committed.
So a retry after a connection dropped once the commit was made replays it, and a retry after
a failure (nothing committed, nothing stored) runs the request again. Requests that fail are
rolled back and store nothing, so only committed answers are ever replayed. Signed-out POSTs
(sign-in, provider webhooks) have no user to keep a key for: the header is ignored there.

Expired answers are purged by a periodic job in the one beat schedule (``clinic.core.tasks``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from flask_login import current_user
from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint, delete, select, text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core import unit_of_work
from clinic.core.errors import problem_response
from clinic.core.models import Base, UTCDateTime
from clinic.core.signals import request_replayed
from clinic.core.time import utcnow
from clinic.extensions import db

log = logging.getLogger(__name__)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: RFC 9110 visible characters (VCHAR): no spaces, no controls, nothing outside ASCII.
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: Headers of the first answer that a replay repeats; the rest are the request cycle's own.
_KEPT_HEADERS = ("Content-Type", "Location", "Content-Location", "ETag")
_PENDING = "_clinic_idempotency"
_NOT_REPLAYABLE = "_clinic_not_replayable"

F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyKey(Base):
    """The first answer to a POST sent with an ``Idempotency-Key``, kept to answer its repeats."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "request_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: SHA-256 (hex) of the method, path and key: what a repeat is found by (a path may be long).
    request_digest: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    #: SHA-256 (hex) of the query string and the body (JSON in a canonical form): a repeat must match.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int]
    #: The headers a replay repeats (``_KEPT_HEADERS`` that the first answer had).
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


@dataclass(frozen=True)
class _Pending:
    """A keyed request seen for the first time: its answer is stored if its work commits."""

    user_id: int
    request_digest: str
    key: str
    method: str
    path: str
    fingerprint: str


def not_replayable(view: F) -> F:
    """Declare that ``view``'s answer holds a secret shown only once (a new API token).

    Such an answer is never stored, so it cannot be replayed: the view refuses an
    ``Idempotency-Key`` (422) rather than let a repeat quietly run it a second time.
    """
    setattr(view, _NOT_REPLAYABLE, True)
    return view


def begin() -> Response | None:
    """Before the view: replay a stored answer, refuse a misused key, or note the key for :func:`keep`.

    Registered after authentication and the input checks (``clinic.core.http``).
    """
    key = _key_sent()
    if key is None:
        return None
    problem = _key_problem(key)
    if problem:
        return _refuse(422, problem)
    pending = _Pending(
        user_id=int(current_user.id),
        request_digest=key_digest(request.method, request.path, key),
        key=key,
        method=request.method,
        path=request.path,
        fingerprint=_fingerprint(),
    )
    if not _claim(pending):
        return _still_running()
    stored = _stored_answer(pending)
    if stored is None:
        setattr(g, _PENDING, pending)
        return None
    if stored.fingerprint != pending.fingerprint:
        reused = "Was used for a different request (another body or query); use a new key."
        return _refuse(422, reused, problem="idempotency-key-reused")
    request_replayed.send(stored, user_id=pending.user_id)
    return _replay(stored)


def _key_sent() -> str | None:
    """The key of a signed-in caller's POST, if it sent one."""
    if request.method != "POST" or request.routing_exception is not None or not current_user.is_authenticated:
        return None
    return request.headers.get(KEY_HEADER)


def _key_problem(key: str) -> str | None:
    if not _VALID_KEY.fullmatch(key):
        return "Must be 1 to 255 visible ASCII characters (no spaces)."
    if getattr(current_app.view_functions.get(request.endpoint or ""), _NOT_REPLAYABLE, False):
        return "Not taken here: this answer holds a secret shown once, so it is never stored or replayed."
    return None


def _stored_answer(pending: _Pending) -> IdempotencyKey | None:
    """The answer stored for this key, unless its time is up (then it is deleted at once)."""
    stored = db.session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == pending.user_id, IdempotencyKey.request_digest == pending.request_digest
        )
    ).first()
    if stored is not None and stored.expires_at <= utcnow():
        # By statement, not through the session: the new answer reuses its (user, digest).
        db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == stored.id))
        return None
    return stored


def keep(response: Response) -> None:
    """Store the answer of a keyed request in its transaction, right before the unit of work commits.

    ``clinic.core.http`` calls it only when the request is about to commit: a failed request
    stores nothing and may be sent again.
    """
    pending: _Pending | None = g.pop(_PENDING, None)
    if pending is None:
        return
    if response.is_streamed:
        log.warning("not keeping the streamed answer of %s %s for its Idempotency-Key", pending.method, pending.path)
        return
    now = utcnow()
    db.session.add(
        IdempotencyKey(
            user_id=pending.user_id,
            request_digest=pending.request_digest,
            key=pending.key,
            method=pending.method,
            path=pending.path,
            fingerprint=pending.fingerprint,
            status=response.status_code,
            headers={name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers},
            body=response.get_data(),
            created_at=now,
            expires_at=now + timedelta(hours=int(current_app.config["IDEMPOTENCY_KEY_HOURS"])),
        )
    )


def purge_expired(*, now: datetime | None = None) -> int:
    """Delete the stored answers whose time is up; return how many."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow())))
    return int(getattr(result, "rowcount", 0) or 0)


def lock_id(user_id: int, request_digest: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit number) held while a keyed request runs."""
    digest = hashlib.sha256(f"idempotency:{user_id}:{request_digest}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _claim(pending: _Pending) -> bool:
    """Hold the key for this transaction; False when a request with the same key still runs.

    PostgreSQL: a transaction-scoped advisory lock, released by the commit or rollback. SQLite
    runs one writer at a time; there the unique (user, digest) of the stored answer decides.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return True
    claimed = db.session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:lock)"), {"lock": lock_id(pending.user_id, pending.request_digest)}
    )
    return bool(claimed)


def key_digest(method: str, path: str, key: str) -> str:
    """What a keyed request is stored and found by, with its user."""
    return hashlib.sha256("\x00".join((method, path, key)).encode("utf-8", "surrogatepass")).hexdigest()


def _fingerprint() -> str:
    """What a repeat must send again: the query string and the body (JSON compared by content)."""
    body = request.get_data(cache=True)
    if request.is_json:
        with suppress(ValueError, RecursionError):  # else compared byte for byte (the view refuses it anyway)
            body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    hashed = hashlib.sha256(request.query_string)
    hashed.update(b"\x00")
    hashed.update(body)
    return hashed.hexdigest()


def _replay(stored: IdempotencyKey) -> Response:
    response = Response(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _refuse(status: int, message: str, *, problem: str | None = None) -> Response:
    unit_of_work.fail()
    return problem_response(
        status, detail=f"Invalid {KEY_HEADER} header.", errors={KEY_HEADER: [message]}, problem=problem
    )


def _still_running() -> Response:
    unit_of_work.fail()
    return problem_response(
        409,
        detail=f"A request with this {KEY_HEADER} is still being processed; send it again once it has finished.",
        problem="idempotency-key-in-use",
        headers={"Retry-After": "1"},
    )
