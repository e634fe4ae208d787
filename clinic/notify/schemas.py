"""Schemas of staff notifications, reminder preferences, reminders and the delivery log."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import Instant, StrictSchema, id_field, text, timezone_field
from clinic.notify.messages import SHIPPED_LANGUAGES
from clinic.notify.models import (
    SAFETY_KINDS,
    EmailStatus,
    LogDirection,
    LogStatus,
    ReminderChannel,
    ReminderStatus,
    StaffNotificationKind,
)


class StaffNotificationSchema(StrictSchema):
    id = fields.Integer(required=True)
    kind = fields.Enum(StaffNotificationKind, by_value=True, required=True)
    #: Safety alerts (routed so someone always gets them, escalated when not acknowledged in time).
    is_safety_alert = fields.Method(
        "_is_safety", required=True, metadata={"type": "boolean", "description": "kind is a safety alert kind"}
    )
    title = fields.String(required=True)
    body = fields.String(required=True)
    client_id = fields.Integer(allow_none=True)
    resource = fields.String(allow_none=True)
    resource_id = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    read_at = fields.DateTime(allow_none=True)
    acknowledged_at = fields.DateTime(allow_none=True)
    acknowledgement_note = fields.String(allow_none=True)
    escalated = fields.Boolean(
        required=True,
        metadata={
            "description": "Sent because nobody acknowledged the safety alert in time (SAFETY_ALERT_ESCALATE_HOURS)"
        },
    )
    escalated_at = fields.DateTime(
        allow_none=True,
        required=True,
        metadata={"description": "On a first copy of a safety alert: when it was sent once more to others"},
    )
    email_status = fields.Enum(EmailStatus, by_value=True, required=True)

    def _is_safety(self, row: Any) -> bool:
        return row.kind in SAFETY_KINDS


StaffNotificationPageSchema = page_schema(StaffNotificationSchema, "StaffNotificationPage")


class StaffNotificationQuerySchema(PageArgsSchema):
    unread = fields.Boolean()
    acknowledged = fields.Boolean(metadata={"description": "false: those still to acknowledge"})


class AcknowledgeSchema(StrictSchema):
    """The body of /acknowledge: empty, or a note of what was done."""

    note = text(required=False, max_length=1000, metadata={"description": "What was done (optional)."})


# --- client reminders ----------------------------------------------------------------------

_CLOCK = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="Not a time of day HH:MM (24-hour).")


class QuietHoursSchema(StrictSchema):
    start = fields.String(required=True, validate=_CLOCK, metadata={"example": "21:00"})
    end = fields.String(required=True, validate=_CLOCK, metadata={"example": "08:00"})


class PreferencesInputSchema(StrictSchema):
    channels = fields.List(
        fields.Enum(ReminderChannel, by_value=True),
        required=True,
        validate=validate.Length(max=len(ReminderChannel)),
        metadata={"description": "Each used only with an active communication consent for it."},
    )
    lead_times_minutes = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, max=20160)),
        required=True,
        validate=validate.Length(max=5),
        metadata={"description": "Minutes before the start; default [2880, 120]."},
    )
    quiet_hours = fields.Nested(
        QuietHoursSchema, metadata={"description": "No message from start to end, in the client's zone."}
    )
    language = fields.String(validate=validate.OneOf(SHIPPED_LANGUAGES))
    timezone = timezone_field(required=False)

    @validates("channels")
    def _unique_channels(self, value: list[ReminderChannel], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("A channel is listed twice.")

    @validates("lead_times_minutes")
    def _unique_leads(self, value: list[int], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("A lead time is listed twice.")


def _channel_list(description: str | None = None) -> fields.List[Any]:
    metadata = {"description": description} if description else {}
    return fields.List(
        fields.String(metadata={"enum": [c.value for c in ReminderChannel]}), required=True, metadata=metadata
    )


class PreferencesSchema(StrictSchema):
    channels = _channel_list()
    lead_times_minutes = fields.List(fields.Integer(), required=True)
    quiet_hours = fields.Nested(QuietHoursSchema, required=True)
    language = fields.String(required=True)
    timezone = fields.String(allow_none=True, required=True, metadata={"description": "null: the site's zone"})
    effective_timezone = fields.String(required=True)
    is_default = fields.Boolean(required=True, metadata={"description": "No preferences saved: the defaults"})
    active_channels = _channel_list(
        "Channels reminders go out on now: wanted, consented, with an address, not opted out"
    )
    consented_channels = fields.List(fields.String(), required=True)
    opted_out_channels = _channel_list("Channels whose address (the phone, the email) asked for no more messages")


class ReminderSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    channel = fields.Enum(ReminderChannel, by_value=True, required=True)
    lead_time_minutes = fields.Integer(required=True)
    due_at = fields.DateTime(required=True)
    status = fields.Method(
        "_status",
        required=True,
        metadata={"enum": ["pending", "sent", "failed", "cancelled", "suppressed"], "type": "string"},
    )
    attempts = fields.Integer(required=True)
    sent_at = fields.DateTime(allow_none=True, required=True)
    next_attempt_at = fields.Method(
        "_next_attempt", allow_none=True, metadata={"type": "string", "format": "date-time"}
    )
    detail = fields.String(allow_none=True)

    def _status(self, row: Any) -> str:
        # "sending" (claimed, in a worker's hands) is not sent yet: the contract calls it pending.
        return "pending" if row.status is ReminderStatus.SENDING else str(row.status.value)

    def _next_attempt(self, row: Any) -> str | None:
        if row.status is ReminderStatus.PENDING and row.attempts > 0:
            return str(row.available_at.isoformat())
        return None


class NotificationQuerySchema(PageArgsSchema):
    client_id = id_field(required=False, strict=False)
    site_id = id_field(required=False, strict=False)
    status = fields.Enum(LogStatus, by_value=True)
    channel = fields.Enum(ReminderChannel, by_value=True)
    from_ = Instant(data_key="from")
    to = Instant()

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("Must not be before from.", field_name="to")


class NotificationLogSchema(StrictSchema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    direction = fields.Enum(LogDirection, by_value=True, required=True)
    channel = fields.Enum(ReminderChannel, by_value=True, required=True)
    status = fields.Enum(LogStatus, by_value=True, required=True)
    site_id = fields.Integer(allow_none=True, required=True)
    client_id = fields.Integer(allow_none=True, required=True)
    appointment_id = fields.Integer(allow_none=True, required=True)
    reminder_id = fields.Integer(allow_none=True, required=True)
    attempt = fields.Integer(allow_none=True, required=True)
    destination = fields.String(allow_none=True, required=True)
    detail = fields.String(allow_none=True, required=True)
    provider_message_id = fields.String(allow_none=True, required=True)


NotificationLogPageSchema = page_schema(NotificationLogSchema, "NotificationLogPage")


class InboundSmsSchema(Schema):
    """The fields of a Twilio-style webhook clinic reads; the provider sends many more."""

    class Meta:
        unknown = EXCLUDE

    From = fields.String(required=True, validate=validate.Length(min=1, max=40))
    Body = fields.String(load_default="", validate=validate.Length(max=2000))
    MessageSid = fields.String(validate=validate.Length(max=100))
