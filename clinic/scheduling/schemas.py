"""Schemas of appointments, series edits and group attendance."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, validate, validates_schema

from clinic.auth.directory import RowWallClockSchema, SiteWallClockSchema
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import LocalInstant, StrictSchema, id_field, text, timezone_field
from clinic.scheduling.models import (
    MAX_APPOINTMENT_LENGTH,
    SEATED_ATTENDEE_STATUSES,
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AttendeeStatus,
)

MAX_DURATION_MINUTES = int(MAX_APPOINTMENT_LENGTH.total_seconds() // 60)
MAX_CAPACITY = 200
#: The longest range one availability request may cover.
MAX_AVAILABILITY_RANGE = timedelta(days=14)


def _duration(*, required: bool) -> fields.Integer:
    return fields.Integer(required=required, strict=True, validate=validate.Range(min=5, max=MAX_DURATION_MINUTES))


def _capacity() -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_CAPACITY),
        metadata={"description": "Seats of a group session."},
    )


class AppointmentCreateSchema(SiteWallClockSchema):
    site_id = id_field()
    kind = fields.Enum(AppointmentKind, by_value=True, required=True)
    clinician_id = id_field()
    client_id = id_field(required=False, metadata={"description": "The client of an individual appointment."})
    client_ids = fields.List(
        id_field(),
        validate=validate.Length(max=MAX_CAPACITY),
        metadata={"description": "The clients of a group session (kind group_therapy, or any kind given this)."},
    )
    starts_at = LocalInstant(required=True)
    duration_minutes = _duration(required=True)
    location = text(required=False, allow_none=True)
    telehealth_url = fields.Url(
        allow_none=True, schemes={"https"}, validate=validate.Length(max=500), metadata={"description": "https only."}
    )
    capacity = _capacity()
    recurrence = fields.String(
        validate=validate.Length(min=1, max=500),
        metadata={
            "description": "An RFC 5545 RRULE (FREQ DAILY|WEEKLY|MONTHLY, COUNT or UNTIL required), "
            "repeated on the wall clock of the appointment's zone: books a series.",
            "example": "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=8",
        },
    )
    timezone = timezone_field(required=False)

    @validates_schema
    def _one_client_form(self, data: dict[str, Any], **_: Any) -> None:
        if "client_id" in data and "client_ids" in data:
            raise ValidationError("Give client_id (individual) or client_ids (group), not both.",
                                  field_name="client_ids")


class AppointmentPatchSchema(RowWallClockSchema):
    row_model = Appointment
    row_argument = "appointment_id"

    starts_at = LocalInstant()
    duration_minutes = _duration(required=False)
    clinician_id = id_field(required=False)
    location = text(required=False, allow_none=True)
    telehealth_url = fields.Url(allow_none=True, schemes={"https"}, validate=validate.Length(max=500))
    capacity = _capacity()


class ScopeArgsSchema(StrictSchema):
    scope = fields.String(
        load_default="this",
        validate=validate.OneOf(["this", "following", "all"]),
        metadata={"description": "For an occurrence of a series: this one, this and the following, or all open ones."},
    )


def _late_entry_reason() -> fields.String:
    return text(
        required=False,
        max_length=500,
        metadata={
            "description": "Required once the appointment has ended: why its outcome is recorded late "
            "(e.g. the check-in was forgotten)."
        },
    )


class CancelSchema(StrictSchema):
    by = fields.String(required=True, validate=validate.OneOf(["client", "clinic"]))
    reason = text(required=False, allow_none=True, max_length=500)
    late_entry_reason = _late_entry_reason()


class LateEntrySchema(StrictSchema):
    """The body of /complete and /no-show: empty, or the reason for documenting an ended appointment."""

    late_entry_reason = _late_entry_reason()


class AttendeeCreateSchema(StrictSchema):
    client_id = id_field()


class AttendanceSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf([AttendeeStatus.ATTENDED, AttendeeStatus.NO_SHOW]))


class AppointmentQuerySchema(SiteWallClockSchema, PageArgsSchema):
    from_ = LocalInstant(data_key="from", description="Starting at or after.")
    to = LocalInstant(description="Starting before.")
    site_id = id_field(required=False, strict=False)
    clinician_id = id_field(required=False, strict=False)
    client_id = id_field(required=False, strict=False)
    series_id = id_field(required=False, strict=False)
    status = fields.Enum(AppointmentStatus, by_value=True)
    kind = fields.Enum(AppointmentKind, by_value=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("Must not be before from.", field_name="to")


class AppointmentExportQuerySchema(SiteWallClockSchema):
    from_ = LocalInstant(data_key="from", description="Starting at or after.")
    to = LocalInstant(description="Starting before.")
    site_id = id_field(required=False, strict=False, metadata={"description": "One of the caller's sites."})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("Must not be before from.", field_name="to")


class AttendeeSchema(StrictSchema):
    client_id = fields.Integer(required=True)
    status = fields.Enum(AttendeeStatus, by_value=True, required=True)
    confirmed_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    marked_at = fields.DateTime(allow_none=True)


class AttendeeListSchema(StrictSchema):
    items = fields.List(fields.Nested(AttendeeSchema), required=True)


class AppointmentSchema(StrictSchema):
    id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    series_id = fields.Integer(allow_none=True, required=True)
    recurrence = fields.Method("_recurrence", allow_none=True, metadata={"type": "string"})
    kind = fields.Enum(AppointmentKind, by_value=True, required=True)
    is_group = fields.Boolean(required=True)
    clinician_id = fields.Integer(required=True)
    client_id = fields.Integer(allow_none=True, required=True)
    client_ids = fields.Method(
        "_client_ids",
        required=True,
        metadata={"type": "array", "items": {"type": "integer"}, "description": "Clients holding a seat (groups)."},
    )
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)
    local_starts_at = fields.Method(
        "_local_starts_at", required=True, metadata={"type": "string", "description": "The start in `timezone`."}
    )
    duration_minutes = fields.Integer(required=True)
    timezone = fields.String(required=True)
    capacity = fields.Integer(allow_none=True)
    location = fields.String(allow_none=True)
    telehealth_url = fields.String(allow_none=True)
    status = fields.Enum(AppointmentStatus, by_value=True, required=True)
    confirmed_at = fields.DateTime(allow_none=True)
    checked_in_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    no_show_at = fields.DateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    late_entry = fields.Method(
        "_late_entry",
        required=True,
        allow_none=True,
        metadata={
            "type": "object",
            "properties": {
                "reason": {"type": "string"},
                "by_user_id": {"type": ["integer", "null"]},
                "at": {"type": "string", "format": "date-time"},
            },
            "required": ["reason", "by_user_id", "at"],
            "description": "Set when the outcome was recorded after the appointment had ended.",
        },
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)

    def _late_entry(self, appointment: Any) -> dict[str, Any] | None:
        if appointment.late_entry_at is None:
            return None
        return {
            "reason": appointment.late_entry_reason,
            "by_user_id": appointment.late_entry_by_id,
            "at": appointment.late_entry_at.isoformat(),
        }

    def _recurrence(self, appointment: Any) -> str | None:
        return appointment.series.recurrence if appointment.series is not None else None

    def _client_ids(self, appointment: Any) -> list[int]:
        return [a.client_id for a in appointment.attendees if a.status in SEATED_ATTENDEE_STATUSES]

    def _local_starts_at(self, appointment: Any) -> str:
        return str(appointment.starts_at.astimezone(ZoneInfo(appointment.timezone)).isoformat())


AppointmentPageSchema = page_schema(AppointmentSchema, "AppointmentPage")


# --- availability and working hours -----------------------------------------------------------------


_CLOCK_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


class ClockTime(fields.Time):
    """A time of day written HH:MM (24-hour), exactly."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or re.fullmatch(_CLOCK_PATTERN, value) is None:
            raise ValidationError("Not a time of day HH:MM (24-hour).")
        return super()._deserialize(value, attr, data, **kwargs)


def _clock() -> ClockTime:
    return ClockTime(
        format="%H:%M",
        required=True,
        metadata={"pattern": _CLOCK_PATTERN, "example": "09:00", "description": "HH:MM, 24-hour."},
    )


class StretchSchema(StrictSchema):
    weekday = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=6), metadata={"description": "0 = Monday."}
    )
    start = _clock()
    end = _clock()
    site_id = id_field()

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start") is not None and data.get("end") is not None and data["end"] <= data["start"]:
            raise ValidationError("Must be after start (a stretch ends the day it starts).", field_name="end")


class WorkingHoursUpdateSchema(StrictSchema):
    timezone = timezone_field(required=False)
    weekly = fields.List(fields.Nested(StretchSchema), required=True, validate=validate.Length(min=1, max=70))


class WorkingHoursSchema(StrictSchema):
    user_id = fields.Integer(required=True)
    timezone = fields.String(
        required=True, allow_none=True, metadata={"description": "The zone of every stretch; null: each site's zone."}
    )
    weekly = fields.List(fields.Nested(StretchSchema), required=True)
    is_default = fields.Boolean(
        required=True, metadata={"description": "No hours were set: Monday to Friday, 09:00-17:00 at each site."}
    )


class AvailabilityQuerySchema(SiteWallClockSchema):
    site_id = id_field(strict=False)
    clinician_id = id_field(required=False, strict=False, metadata={"description": "Default: every clinician."})
    from_ = LocalInstant(data_key="from", required=True, description="Slots starting at or after.")
    to = LocalInstant(required=True, description="Slots ending at or before (at most 14 days after from).")
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=MAX_DURATION_MINUTES))
    kind = fields.Enum(
        AppointmentKind,
        by_value=True,
        metadata={"description": "The kind to book: checked against the caller's rights."},
    )
    step_minutes = fields.Integer(
        load_default=15,
        validate=validate.Range(min=5, max=240),
        metadata={"description": "Minutes between offered starts, counted from the start of working hours."},
    )

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") is None or data.get("to") is None:
            return
        if data["to"] <= data["from_"]:
            raise ValidationError("Must be after from.", field_name="to")
        if data["to"] - data["from_"] > MAX_AVAILABILITY_RANGE:
            raise ValidationError("At most 14 days after from.", field_name="to")


class FreeSlotSchema(StrictSchema):
    clinician_id = fields.Integer(required=True)
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)


class AvailabilitySchema(StrictSchema):
    slots = fields.List(fields.Nested(FreeSlotSchema), required=True)
