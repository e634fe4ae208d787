"""Schemas of appointments, series edits and group attendance."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, validate, validates_schema

from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import Instant, StrictSchema, id_field, instant, text, timezone_field
from clinic.scheduling.models import (
    MAX_APPOINTMENT_LENGTH,
    SEATED_ATTENDEE_STATUSES,
    AppointmentKind,
    AppointmentStatus,
    AttendeeStatus,
)

MAX_DURATION_MINUTES = int(MAX_APPOINTMENT_LENGTH.total_seconds() // 60)
MAX_CAPACITY = 200



def _duration(*, required: bool) -> fields.Integer:
    return fields.Integer(required=required, strict=True, validate=validate.Range(min=5, max=MAX_DURATION_MINUTES))


def _capacity() -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_CAPACITY),
        metadata={"description": "Seats of a group session."},
    )


class AppointmentCreateSchema(StrictSchema):
    site_id = id_field()
    kind = fields.Enum(AppointmentKind, by_value=True, required=True)
    clinician_id = id_field()
    client_id = id_field(required=False, metadata={"description": "The client of an individual appointment."})
    client_ids = fields.List(
        id_field(),
        validate=validate.Length(max=MAX_CAPACITY),
        metadata={"description": "The clients of a group session (kind group_therapy, or any kind given this)."},
    )
    starts_at = instant()
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


class AppointmentPatchSchema(StrictSchema):
    starts_at = instant(required=False)
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


class CancelSchema(StrictSchema):
    by = fields.String(required=True, validate=validate.OneOf(["client", "clinic"]))
    reason = text(required=False, allow_none=True, max_length=500)


class AttendeeCreateSchema(StrictSchema):
    client_id = id_field()


class AttendanceSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf([AttendeeStatus.ATTENDED, AttendeeStatus.NO_SHOW]))


class AppointmentQuerySchema(PageArgsSchema):
    from_ = Instant(data_key="from", metadata={"description": "Starting at or after."})
    to = Instant(metadata={"description": "Starting before."})
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


class AppointmentExportQuerySchema(StrictSchema):
    from_ = Instant(data_key="from", metadata={"description": "Starting at or after."})
    to = Instant(metadata={"description": "Starting before."})
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
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)

    def _recurrence(self, appointment: Any) -> str | None:
        return appointment.series.recurrence if appointment.series is not None else None

    def _client_ids(self, appointment: Any) -> list[int]:
        return [a.client_id for a in appointment.attendees if a.status in SEATED_ATTENDEE_STATUSES]

    def _local_starts_at(self, appointment: Any) -> str:
        return str(appointment.starts_at.astimezone(ZoneInfo(appointment.timezone)).isoformat())


AppointmentPageSchema = page_schema(AppointmentSchema, "AppointmentPage")
