"""Schemas of the intake call log."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from clinic.auth.directory import RowWallClockSchema, SiteWallClockSchema
from clinic.clients.schemas import ClientFieldsSchema
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.phones import PhoneField
from clinic.core.schemas import LocalInstant, StrictSchema, id_field, text
from clinic.intake.models import CallerRelation, CallOutcome, Direction, IntakeCall, RiskFlag


class IntakeCallFieldsSchema(StrictSchema):
    direction = fields.Enum(Direction, by_value=True, required=True)
    occurred_at = LocalInstant(required=True)
    caller_name = text()
    caller_relation = fields.Enum(CallerRelation, by_value=True, required=True)
    callback_phone = PhoneField(required=True, metadata={"description": "Any common notation; stored E.164."})
    referral_source = text()
    reason = text(max_length=5000)
    substances = fields.List(text(max_length=50), validate=validate.Length(max=20), load_default=list)
    risk_flags = fields.List(
        fields.Enum(RiskFlag, by_value=True), validate=validate.Length(max=len(RiskFlag)), load_default=list
    )
    outcome = fields.Enum(CallOutcome, by_value=True, required=True)
    follow_up_at = LocalInstant(allow_none=True)
    notes = fields.String(allow_none=True, validate=validate.Length(max=10000))


class IntakeCallCreateSchema(SiteWallClockSchema, IntakeCallFieldsSchema):
    site_id = id_field()


class IntakeCallPatchSchema(RowWallClockSchema):
    row_model = IntakeCall
    row_argument = "call_id"

    direction = fields.Enum(Direction, by_value=True)
    occurred_at = LocalInstant()
    caller_name = text(required=False)
    caller_relation = fields.Enum(CallerRelation, by_value=True)
    callback_phone = PhoneField()
    referral_source = text(required=False)
    reason = text(required=False, max_length=5000)
    substances = fields.List(text(max_length=50), validate=validate.Length(max=20))
    risk_flags = fields.List(fields.Enum(RiskFlag, by_value=True), validate=validate.Length(max=len(RiskFlag)))
    outcome = fields.Enum(CallOutcome, by_value=True)
    follow_up_at = LocalInstant(allow_none=True)
    notes = fields.String(allow_none=True, validate=validate.Length(max=10000))


class IntakeCallSchema(StrictSchema):
    id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    direction = fields.Enum(Direction, by_value=True, required=True)
    occurred_at = fields.DateTime(required=True)
    caller_name = fields.String(required=True)
    caller_relation = fields.Enum(CallerRelation, by_value=True, required=True)
    callback_phone = fields.String(required=True)
    referral_source = fields.String(required=True)
    reason = fields.String(required=True)
    substances = fields.List(fields.String(), required=True)
    risk_flags = fields.List(fields.String(validate=validate.OneOf([f.value for f in RiskFlag])), required=True)
    outcome = fields.Enum(CallOutcome, by_value=True, required=True)
    follow_up_at = fields.DateTime(allow_none=True)
    notes = fields.String(allow_none=True)
    client_id = fields.Integer(allow_none=True, metadata={"description": "The client this call was converted into."})
    converted_at = fields.DateTime(allow_none=True)
    linked_client_id = fields.Integer(
        allow_none=True, metadata={"description": "The existing client this (repeat) call was linked to."}
    )
    linked_at = fields.DateTime(allow_none=True)
    linked_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)


IntakeCallPageSchema = page_schema(IntakeCallSchema, "IntakeCallPage")


class IntakeCallQuerySchema(SiteWallClockSchema, PageArgsSchema):
    site_id = id_field(required=False, strict=False)
    outcome = fields.Enum(CallOutcome, by_value=True)
    from_ = LocalInstant(data_key="from")
    to = LocalInstant()
    follow_up_due = fields.Boolean(metadata={"description": "true: follow-up time passed and not converted"})

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("Must not be before from.", field_name="to")


class ConvertSchema(ClientFieldsSchema):
    """The client fields for the caller; the site is the call's."""


class LinkSchema(StrictSchema):
    client_id = id_field(metadata={"description": "An existing client of the call's site."})
