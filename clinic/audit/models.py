"""The append-only, hash-chained audit log (HIPAA 164.312(b) and (c))."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, UTCDateTime, enum_column


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditEvent(Base):
    """One audited action. Rows are never deleted, and updated only once: when sealed into the chain."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_client_id_id", "client_id", "id"),
        Index("ix_audit_events_user_id_id", "user_id", "id"),
        Index("ix_audit_events_at", "at"),
        # The sealer's work list: unsealed rows only.
        Index(
            "ix_audit_events_unsealed",
            "id",
            sqlite_where=text("hash IS NULL"),
            postgresql_where=text("hash IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    #: Dotted verb, e.g. "auth.login", "client.read", "plan.update".
    action: Mapped[str] = mapped_column(String(64), index=True)
    #: Kind of record touched, e.g. "user", "client", "plan".
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    #: The client whose data was read or written, when there is one.
    client_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[Outcome] = enum_column(Outcome, name="outcome", length=16)
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Position in the hash chain, given by the sealer (1, 2, 3, ... without gaps); null until sealed.
    seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    #: Hash of the previous entry in the chain ("" for the first); null until sealed.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    #: HMAC-SHA-256 over ``prev_hash`` and this row's content under the key ``key_id``; null until sealed.
    hash: Mapped[str | None] = mapped_column(String(64))
    #: Id of the key that sealed the row (clinic.audit.keys); null until sealed, and on rows sealed
    #: before the chain was keyed, whose hash is a plain SHA-256.
    key_id: Mapped[str | None] = mapped_column(String(16))
