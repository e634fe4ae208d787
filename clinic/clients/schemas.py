"""Schemas of clients, episodes of care, consents and the timeline."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from clinic.clients.models import Channel, ClientStatus, ConsentKind, SexAtBirth
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.phones import PhoneField
from clinic.core.schemas import StrictSchema, id_field, instant, language_tag, past_date, text
from clinic.core.time import today


class ClientFieldsSchema(StrictSchema):
    first_name = text(max_length=100)
    last_name = text(max_length=100)
    date_of_birth = past_date()
    sex_at_birth = fields.Enum(SexAtBirth, by_value=True, allow_none=True)
    phone = PhoneField(allow_none=True, metadata={"description": "Any common notation; stored E.164."})
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    preferred_language = fields.String(validate=[validate.Length(max=16), language_tag])
    primary_clinician_id = id_field(required=False, allow_none=True)


class ClientCreateSchema(ClientFieldsSchema):
    site_id = id_field()


class ClientPatchSchema(ClientFieldsSchema):
    first_name = text(max_length=100, required=False)
    last_name = text(max_length=100, required=False)
    date_of_birth = past_date(required=False)


class DuplicateArgsSchema(StrictSchema):
    allow_duplicate = fields.Boolean(load_default=False)


class ClientSchema(StrictSchema):
    id = fields.Integer(required=True)
    mrn = fields.String(
        required=True, metadata={"description": "Assigned by clinic; 8 digits, the last a check digit."}
    )
    site_id = fields.Integer(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    date_of_birth = fields.Date(required=True)
    sex_at_birth = fields.Enum(SexAtBirth, by_value=True, allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    preferred_language = fields.String(required=True)
    primary_clinician_id = fields.Integer(allow_none=True)
    status = fields.Enum(ClientStatus, by_value=True, required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    last_dose_on = fields.Date(
        allow_none=True,
        metadata={
            "description": "GET /clients/{id}, clinical roles: the last day an OTP dose covered (observed or "
            "take-home); null when never dosed."
        },
    )
    missed_dose_days = fields.Integer(
        allow_none=True,
        metadata={
            "description": "GET /clients/{id}, clinical roles: days in a row up to yesterday without a dose; "
            "null when no methadone or buprenorphine order is in force at an OTP."
        },
    )


ClientPageSchema = page_schema(ClientSchema, "ClientPage")


class ClientQuerySchema(PageArgsSchema):
    q = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Name prefix (case- and accent-insensitive), MRN or phone."},
    )
    site_id = id_field(required=False, strict=False)
    clinician_id = id_field(required=False, strict=False)
    status = fields.Enum(ClientStatus, by_value=True)


class CandidateSchema(StrictSchema):
    id = fields.Integer(required=True)
    mrn = fields.String(required=True)


class EpisodeCreateSchema(StrictSchema):
    admitted_on = past_date(earliest=date(1970, 1, 1))
    level_of_care = fields.String(
        validate=validate.Length(min=1, max=16),
        metadata={"description": 'ASAM level code, e.g. "1", "1-OTP", "2.1", "3.7-WM".'},
    )
    asam_edition = fields.String(validate=validate.OneOf(["3", "4"]), metadata={"description": "Default 3."})
    assessment_id = id_field(
        required=False,
        metadata={"description": "A signed ASAM assessment whose level of care (and edition) the episode takes."},
    )
    referral_source = text(required=False, allow_none=True)


class DischargeSchema(StrictSchema):
    discharged_on = past_date(earliest=date(1970, 1, 1))
    reason_code = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=7),
        metadata={
            "description": "TEDS reason: 1 completed, 2 dropped out, 3 terminated by "
            "facility, 4 transferred, 5 incarcerated, 6 death, 7 other."
        },
    )
    note = fields.String(allow_none=True, validate=validate.Length(max=5000))


class EpisodeSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    admitted_on = fields.Date(required=True)
    level_of_care = fields.String(required=True)
    asam_edition = fields.String(required=True)
    assessment_id = fields.Integer(allow_none=True)
    referral_source = fields.String(allow_none=True)
    discharged_on = fields.Date(allow_none=True)
    reason_code = fields.Integer(attribute="discharge_reason_code", allow_none=True)
    note = fields.String(attribute="discharge_note", allow_none=True)
    length_of_stay_days = fields.Integer(allow_none=True)
    is_open = fields.Boolean(required=True)


class EpisodeListSchema(StrictSchema):
    items = fields.List(fields.Nested(EpisodeSchema), required=True)


class ConsentCreateSchema(StrictSchema):
    kind = fields.Enum(ConsentKind, by_value=True, required=True)
    channel = fields.Enum(Channel, by_value=True)
    granted_on = past_date(required=False)
    evidence = text(required=False, max_length=2000)
    recipient = text(required=False)
    purpose = text(required=False, max_length=500)
    information_description = text(required=False, max_length=5000)
    disclosing_party = text(required=False)
    expires_on = fields.Date()
    expiry_event = text(required=False, max_length=500)
    signed_on = past_date(required=False)
    signature_name = text(required=False)
    revocation_acknowledged = fields.Boolean()

    @validates_schema
    def _expiry_after_signature(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("expires_on") and data.get("signed_on") and data["expires_on"] < data["signed_on"]:
            raise ValidationError("Must not be before signed_on.", field_name="expires_on")


class ConsentSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    kind = fields.Enum(ConsentKind, by_value=True, required=True)
    status = fields.Method("_status", required=True, metadata={"enum": ["active", "revoked", "expired", "pending"]})
    channel = fields.Enum(Channel, by_value=True, allow_none=True)
    granted_on = fields.Date(allow_none=True)
    evidence = fields.String(allow_none=True)
    patient_name = fields.String(allow_none=True)
    recipient = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)
    information_description = fields.String(allow_none=True)
    disclosing_party = fields.String(allow_none=True)
    expires_on = fields.Date(allow_none=True)
    expiry_event = fields.String(allow_none=True)
    signed_on = fields.Date(allow_none=True)
    signature_name = fields.String(allow_none=True)
    revocation_acknowledged = fields.Boolean(required=True)
    revoked_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)

    def _status(self, consent: Any) -> str:
        on = today()
        if consent.revoked_at is not None:
            return "revoked"
        if consent.expires_on is not None and consent.expires_on < on:
            return "expired"
        return "active" if consent.is_active_on(on) else "pending"


class ConsentListSchema(StrictSchema):
    items = fields.List(fields.Nested(ConsentSchema), required=True)


class DisclosureCreateSchema(StrictSchema):
    consent_id = id_field()
    recipient = text()
    description = text(max_length=5000)
    purpose = text(max_length=500)
    disclosed_at = instant()


class DisclosureSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    consent_id = fields.Integer(required=True)
    recipient = fields.String(required=True)
    description = fields.String(required=True)
    purpose = fields.String(required=True)
    disclosed_at = fields.DateTime(required=True)
    recorded_by_id = fields.Integer(allow_none=True)


class DisclosureListSchema(StrictSchema):
    items = fields.List(fields.Nested(DisclosureSchema), required=True)


class TimelineEntrySchema(StrictSchema):
    at = fields.DateTime(required=True)
    kind = fields.String(required=True)
    resource_id = fields.Integer(required=True)
    summary = fields.String(required=True)


class TimelineSchema(StrictSchema):
    items = fields.List(fields.Nested(TimelineEntrySchema), required=True)
