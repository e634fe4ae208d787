"""Bulk export jobs (FHIR ``$export``): what an administrator asked for, how far the worker got, its files."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, UTCDateTime, enum_column
from clinic.core.time import utcnow


class ExportStatus(enum.StrEnum):
    #: Stored; the worker has not begun.
    ACCEPTED = "accepted"
    RUNNING = "running"
    #: The files are written and may be downloaded until ``expires_at``.
    COMPLETED = "completed"
    FAILED = "failed"
    #: Cancelled by its requester (``DELETE`` on the status URL); its files are deleted.
    CANCELLED = "cancelled"


class FhirExport(Base):
    __tablename__ = "fhir_exports"
    __table_args__ = (
        Index("ix_fhir_exports_expires_at", "expires_at"),
        Index("ix_fhir_exports_requested_by_id", "requested_by_id"),
    )

    #: A random token, the export's name in every URL (never a number one could count through).
    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: The one site exported; None: every site.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    #: The FHIR resource types asked for (``_type``), or every type clinic exports.
    types: Mapped[list[str]] = mapped_column(JSON)
    #: ``_since``: only what changed at or after this instant.
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The kick-off request's URL, echoed in the manifest (``request``).
    request_url: Mapped[str] = mapped_column(Text)
    status: Mapped[ExportStatus] = enum_column(ExportStatus, name="fhir_export_status", length=16)
    #: The manifest's ``transactionTime``: the export reads the database as it was at this instant.
    transaction_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The number of resources written (set when the export completes; the worker's running count is
    #: in the export's folder, docs/fhir.md).
    resource_count: Mapped[int | None] = mapped_column()
    #: Why the export failed (the error's kind only: no client data).
    error: Mapped[str | None] = mapped_column(Text)
    #: One entry per NDJSON file: ``{"id", "type", "name", "count", "bytes"}`` (``name`` under the
    #: export's folder; ``type`` OperationOutcome for the file of resources that failed validation).
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: After this instant the files are deleted and the URLs answer 404.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
