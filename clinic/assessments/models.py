"""Assessments: one administration of an instrument to a client."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column


class AssessmentStatus(enum.StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


class Assessment(TimestampMixin, Base):
    __tablename__ = "assessments"
    __table_args__ = (
        Index("ix_assessments_client_instrument_administered", "client_id", "instrument", "administered_at", "id"),
        Index("ix_assessments_amends_id", "amends_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    #: Instrument code, e.g. "PHQ-9".
    instrument: Mapped[str] = mapped_column(String(32))
    #: Version of the instrument definition the answers were scored with.
    version: Mapped[str] = mapped_column(String(16))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Computed by clinic, never accepted from the caller; null for instruments without a total.
    total_score: Mapped[int | None] = mapped_column(Integer)
    severity: Mapped[str | None] = mapped_column(String(32))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[AssessmentStatus] = enum_column(AssessmentStatus, name="assessment_status", length=16)
    administered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    clinician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: 1 for an original; an amendment is the next revision of the one it amends.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    amends_id: Mapped[int | None] = mapped_column(ForeignKey("assessments.id", ondelete="RESTRICT"))
    amendment_reason: Mapped[str | None] = mapped_column(Text)
    #: Set on an assessment once an amendment of it exists.
    superseded_by_id: Mapped[int | None] = mapped_column(Integer)

    @property
    def level_of_care(self) -> str | None:
        """The clinician's chosen ASAM level (ASAM assessments only)."""
        value = self.answers.get("level_of_care") if self.instrument == "ASAM" else None
        return str(value) if value is not None else None

    @property
    def edition(self) -> str | None:
        """The edition of the ASAM Criteria the assessment used (ASAM assessments only)."""
        value = self.answers.get("edition") if self.instrument == "ASAM" else None
        return str(value) if value is not None else None
