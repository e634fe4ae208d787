"""Staff notifications (alerts to clinic staff, also emailed) and client reminders (an outbox)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column
from clinic.core.time import utcnow


class StaffNotificationKind(enum.StrEnum):
    SAFETY_FLAG = "safety_flag"
    REVIEW_OVERDUE = "review_overdue"
    CLIENT_REPLY = "client_reply"
    OVERDOSE = "overdose"
    MISSED_DOSES = "missed_doses"


#: Alerts about a client's safety: routed so that someone always gets them, and escalated when
#: nobody acknowledges them in time (``send_safety_alert``).
SAFETY_KINDS = frozenset(
    {StaffNotificationKind.SAFETY_FLAG, StaffNotificationKind.OVERDOSE, StaffNotificationKind.MISSED_DOSES}
)


class EmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    #: The user has no email address, or the notification is not emailed.
    SKIPPED = "skipped"
    #: No mail server is configured (``MAIL_SERVER`` unset): no email was sent.
    NOT_CONFIGURED = "not_configured"


class StaffNotification(Base):
    __tablename__ = "staff_notifications"
    __table_args__ = (
        Index("ix_staff_notifications_user_id_id", "user_id", "id"),
        Index("ix_staff_notifications_email_status", "email_status", "created_at"),
        Index("ix_staff_notifications_alert_key", "alert_key"),
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
    #: When the user said it was dealt with (it stays in their list to acknowledge until then).
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: What the user wrote when acknowledging, if anything.
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)
    email_status: Mapped[EmailStatus] = enum_column(EmailStatus, name="staff_email_status", length=16)
    email_attempts: Mapped[int] = mapped_column(Integer, default=0)
    email_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_last_error: Mapped[str | None] = mapped_column(String(500))
    #: A safety alert's own key, shared by every copy of it (each recipient's, and the escalated
    #: ones): an acknowledgement of any first copy stops its escalation. Null for other notifications.
    alert_key: Mapped[str | None] = mapped_column(String(160))
    #: This copy was sent because nobody acknowledged the alert in time (``escalate_safety_alerts``).
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: On a first copy: when its alert was escalated. Claimed with a conditional UPDATE, so that an
    #: alert is escalated once however many workers look at it at the same time.
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- client reminders ----------------------------------------------------------------------


class ReminderChannel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class ReminderStatus(enum.StrEnum):
    PENDING = "pending"
    #: Claimed by the dispatcher and handed to a send task (shown as ``pending`` by the API).
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Not sent on purpose: the appointment began, consent or opt-out, no address, quiet hours.
    SUPPRESSED = "suppressed"


class NotificationPreference(Base):
    """How a client wants to be reminded; without a row the defaults apply."""

    __tablename__ = "notification_preferences"
    __audit_resource__ = "notification_preferences"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"), index=True)
    #: Channels the client wants, ["sms", "email"]; each is used only with an active consent.
    channels: Mapped[list[str]] = mapped_column(JSON)
    #: Minutes before the start at which reminders go out, e.g. [2880, 120].
    lead_times_minutes: Mapped[list[int]] = mapped_column(JSON)
    #: Local "HH:MM" in the client's zone; no message is sent from start (inclusive) to end.
    quiet_start: Mapped[str] = mapped_column(String(5))
    quiet_end: Mapped[str] = mapped_column(String(5))
    #: Language of messages: one of the shipped template languages.
    language: Mapped[str] = mapped_column(String(16))
    #: The client's IANA zone for times in messages and quiet hours; null: the site's.
    timezone: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Reminder(TimestampMixin, Base):
    """The reminder outbox: one row per appointment, client, channel and lead time."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("appointment_id", "client_id", "channel", "lead_time_minutes"),
        Index("ix_reminders_status_available_at", "status", "available_at"),
        Index("ix_reminders_client_id", "client_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    channel: Mapped[ReminderChannel] = enum_column(ReminderChannel, name="reminder_channel", length=8)
    lead_time_minutes: Mapped[int] = mapped_column(Integer)
    #: When it is due: the start minus the lead time, moved before the client's quiet hours.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Not claimed before this instant: the due time, or later after a failed attempt (backoff).
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The appointment start this reminder announces; a new start makes it due again.
    for_starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[ReminderStatus] = enum_column(ReminderStatus, name="reminder_status", length=16)
    #: Send attempts begun (a claim that never reached a worker is not an attempt).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Set by the dispatcher's claim; a send task acts only while its token is still the row's.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the current attempt began talking to the provider.
    attempt_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Why it was cancelled, suppressed or failed, or what the last attempt met (never content).
    detail: Mapped[str | None] = mapped_column(String(500))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))


class LogDirection(enum.StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class LogStatus(enum.StrEnum):
    SENT = "sent"
    #: A transient failure; another attempt follows.
    RETRYING = "retrying"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    #: An inbound message (a reply, STOP, YES).
    RECEIVED = "received"


class NotificationLogEntry(Base):
    """The delivery log: every outcome of a send attempt and every inbound message."""

    __tablename__ = "notification_log"
    __table_args__ = (
        Index("ix_notification_log_site_id_at", "site_id", "at", "id"),
        Index("ix_notification_log_client_id_at", "client_id", "at"),
        Index("ix_notification_log_reminder_id", "reminder_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    direction: Mapped[LogDirection] = enum_column(LogDirection, name="log_direction", length=8)
    channel: Mapped[ReminderChannel] = enum_column(ReminderChannel, name="log_channel", length=8)
    status: Mapped[LogStatus] = enum_column(LogStatus, name="log_status", length=16)
    #: Null for an inbound message from a number no client has.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id", ondelete="CASCADE"))
    attempt: Mapped[int | None] = mapped_column(Integer)
    #: The address, masked ("•••-•••-1234", "j•••@example.org").
    destination: Mapped[str | None] = mapped_column(String(100))
    #: What happened, in words; for inbound messages the keyword or "reply" (never the text).
    detail: Mapped[str | None] = mapped_column(String(500))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))


class OptOut(Base):
    """An address that asked not to be messaged (STOP by SMS, the link in an email)."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[ReminderChannel] = enum_column(ReminderChannel, name="opt_out_channel", length=8)
    #: E.164 phone number or lower-cased email address.
    address: Mapped[str] = mapped_column(String(254))
    #: How: "sms_keyword" (STOP), "link" (the signed link in a message).
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
