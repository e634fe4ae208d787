"""Schemas of naloxone dispenses and overdose events."""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate

from clinic.core.schemas import StrictSchema, past_date, text
from clinic.overdose.models import NaloxoneFormulation, OverdoseSource

_SUBSTANCE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _substance_name(value: str) -> None:
    if not _SUBSTANCE.fullmatch(value):  # fullmatch: "$" alone would let a trailing line feed through
        raise ValidationError("Substance names are lower-case letters, digits, - and _, e.g. fentanyl.")


class NaloxoneCreateSchema(StrictSchema):
    dispensed_on = past_date()
    formulation = fields.Enum(NaloxoneFormulation, by_value=True, required=True)
    quantity = fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1),
        metadata={"description": "Units handed over (sprays or syringes); at most NALOXONE_MAX_QUANTITY."},
    )
    education_given = fields.Boolean(
        required=True, metadata={"description": "Overdose recognition and response were taught."}
    )


class NaloxoneSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    dispensed_on = fields.Date(required=True)
    formulation = fields.Enum(NaloxoneFormulation, by_value=True, required=True)
    quantity = fields.Integer(required=True)
    education_given = fields.Boolean(required=True)
    recorded_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)


class NaloxoneListSchema(StrictSchema):
    items = fields.List(fields.Nested(NaloxoneSchema), required=True)


class OverdoseEventCreateSchema(StrictSchema):
    occurred_on = past_date()
    fatal = fields.Boolean(required=True)
    naloxone_used = fields.Boolean(
        required=True, allow_none=True, metadata={"description": "null when whoever reported it did not know."}
    )
    substances = fields.List(fields.String(validate=_substance_name), required=True, validate=validate.Length(max=20))
    setting = text(required=False, allow_none=True, max_length=120)
    source = fields.Enum(OverdoseSource, by_value=True, required=True)
    note = text(required=False, allow_none=True, max_length=4000)


class DischargePromptSchema(StrictSchema):
    """A fatal event's request to close the client's open episode with TEDS reason 6 (death)."""

    episode_id = fields.Integer(required=True, metadata={"description": "The client's open episode."})
    reason_code = fields.Integer(required=True, metadata={"description": "TEDS reason for discharge: 6, death."})
    discharged_on = fields.Date(required=True, metadata={"description": "The day of the overdose."})
    confirm_path = fields.String(
        required=True, metadata={"description": "POST here (a clinician) to confirm the death and discharge."}
    )


class OverdoseEventSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    occurred_on = fields.Date(required=True)
    fatal = fields.Boolean(required=True)
    naloxone_used = fields.Boolean(allow_none=True)
    substances = fields.List(fields.String(), required=True)
    setting = fields.String(allow_none=True)
    source = fields.Enum(OverdoseSource, by_value=True, required=True)
    note = fields.String(allow_none=True)
    recorded_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    death_confirmed_at = fields.DateTime(allow_none=True)
    death_confirmed_by_id = fields.Integer(allow_none=True)
    discharged_episode_id = fields.Integer(
        allow_none=True, metadata={"description": "The episode the confirmation of death discharged."}
    )
    discharge = fields.Nested(
        DischargePromptSchema,
        allow_none=True,
        metadata={"description": "A fatal event not yet confirmed while the client has an open episode; else null."},
    )


class OverdoseEventListSchema(StrictSchema):
    items = fields.List(fields.Nested(OverdoseEventSchema), required=True)


class ConfirmDeathSchema(StrictSchema):
    note = text(required=False, allow_none=True, max_length=2000)
