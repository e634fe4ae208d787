"""Staff notifications (alerts to clinic staff, also emailed)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, UTCDateTime, enum_column
from clinic.core.time import utcnow


class StaffNotificationKind(enum.StrEnum):
    SAFETY_FLAG = "safety_flag"
    REVIEW_OVERDUE = "review_overdue"
    CLIENT_REPLY = "client_reply"


class EmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    #: The user has no email address, or the notification is not emailed.
    SKIPPED = "skipped"


class StaffNotification(Base):
    __tablename__ = "staff_notifications"
    __table_args__ = (
        Index("ix_staff_notifications_user_id_id", "user_id", "id"),
        Index("ix_staff_notifications_email_status", "email_status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[StaffNotificationKind] = enum_column(StaffNotificationKind, name="staff_notification_kind")
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    resource: Mapped[str | None] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    #: Makes creation idempotent: one notification per key (e.g. one per plan per day).
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_status: Mapped[EmailStatus] = enum_column(EmailStatus, name="staff_email_status", length=16)
    email_attempts: Mapped[int] = mapped_column(Integer, default=0)
    email_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_last_error: Mapped[str | None] = mapped_column(String(500))
