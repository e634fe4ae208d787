"""Inquiry calls logged by intake coordinators."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallerRelation(enum.StrEnum):
    SELF = "self"
    FAMILY = "family"
    FRIEND = "friend"
    PROVIDER = "provider"
    COURT = "court"
    OTHER = "other"


class CallOutcome(enum.StrEnum):
    ASSESSMENT_SCHEDULED = "assessment_scheduled"
    WAITLISTED = "waitlisted"
    REFERRED_OUT = "referred_out"
    INFO_ONLY = "info_only"
    CALLBACK_REQUESTED = "callback_requested"
    NO_ANSWER = "no_answer"


class RiskFlag(enum.StrEnum):
    RECENT_OVERDOSE = "recent_overdose"
    INJECTION_USE = "injection_use"
    PREGNANT = "pregnant"
    SUICIDAL_IDEATION = "suicidal_ideation"
    WITHDRAWAL_NOW = "withdrawal_now"


class IntakeCall(TimestampMixin, Base):
    __tablename__ = "intake_calls"
    __table_args__ = (
        # The call log's order: risk first, then newest.
        Index("ix_intake_calls_site_risk_occurred", "site_id", "has_risk_flags", "occurred_at", "id"),
        Index("ix_intake_calls_follow_up", "follow_up_at"),
        CheckConstraint("client_id IS NULL OR linked_client_id IS NULL", name="converted_or_linked"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    direction: Mapped[Direction] = enum_column(Direction, name="call_direction", length=16)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    caller_name: Mapped[str] = mapped_column(String(200))
    caller_relation: Mapped[CallerRelation] = enum_column(CallerRelation, name="caller_relation", length=16)
    #: E.164.
    callback_phone: Mapped[str] = mapped_column(String(20))
    referral_source: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    #: Substances the caller reports, as free-text names ("fentanyl", "heroin", ...).
    substances: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Values of :class:`RiskFlag`.
    risk_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Whether any risk flag is set; calls with risk sort first.
    has_risk_flags: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[CallOutcome] = enum_column(CallOutcome, name="call_outcome", length=32)
    follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text)
    #: The client this call was converted into (once).
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), unique=True)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The existing client a repeat call came from, attached afterwards (a call is converted or linked, not both).
    linked_client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    def audit_client_ids(self) -> tuple[int, ...]:
        """The client whose record this call is part of: the one it became, or the one it was linked to."""
        return tuple(c for c in (self.client_id, self.linked_client_id) if c is not None)
