"""Report runs: a report computed on the worker and kept for download until it expires."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, UTCDateTime, enum_column
from clinic.core.time import utcnow


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ReportRun(Base):
    __tablename__ = "report_runs"
    __table_args__ = (Index("ix_report_runs_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    #: from, to, site_id as requested, and the scope (site ids, clinician) resolved at request time.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[RunStatus] = enum_column(RunStatus, name="report_run_status", length=16)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The JSON rendering of the report; CSV and SVG are rendered from it on download.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: After this instant the stored result is deleted.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
