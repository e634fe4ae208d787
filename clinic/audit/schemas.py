"""Schemas of the audit trail API."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from clinic.audit.models import Outcome
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import Instant, StrictSchema


class AuditEventSchema(StrictSchema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    user_id = fields.Integer(allow_none=True, required=True)
    action = fields.String(required=True)
    resource = fields.String(required=True)
    resource_id = fields.String(allow_none=True, required=True)
    client_id = fields.Integer(allow_none=True, required=True)
    outcome = fields.Enum(Outcome, by_value=True, required=True)
    ip = fields.String(allow_none=True, required=True)
    details = fields.Dict(allow_none=True)


AuditEventPageSchema = page_schema(AuditEventSchema, "AuditEventPage")


class AuditQuerySchema(PageArgsSchema):
    user_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    client_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    action = fields.String(validate=validate.Length(min=1, max=64))
    outcome = fields.Enum(Outcome, by_value=True)
    from_ = Instant(data_key="from")
    to = Instant()

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("Must not be before from.", field_name="to")
