"""Schemas of doses, take-home eligibility and reviews, and the dispensing log."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from clinic.auth.directory import RowWallClockSchema
from clinic.clients.models import Client
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import EARLIEST_PAST_EVENT, LocalInstant, StrictSchema, id_field, text
from clinic.core.time import utcnow
from clinic.dosing.models import DoseKind
from clinic.dosing.operations import CRITERIA, FREE_TEXT_CRITERION
from clinic.plans.schemas import EnteredInErrorMarkSchema

_AMOUNT = validate.Range(min=0.001, max=10000, error="Must be between 0.001 and 10000 (mg, kept to 0.001).")
#: How far ahead of the server's clock a dose's time may be (a client's clock running fast).
_CLOCK_LEEWAY = timedelta(minutes=5)


def _not_future(value: datetime) -> None:
    if value < datetime.combine(EARLIEST_PAST_EVENT, time(), tzinfo=UTC):
        raise ValidationError(f"Must not be before {EARLIEST_PAST_EVENT.isoformat()}.")
    if value > utcnow() + _CLOCK_LEEWAY:
        raise ValidationError("Must not be in the future.")


class DoseCreateSchema(RowWallClockSchema):
    """A dose observed at the program, or a take-home supply; times without an offset are the site's."""

    row_model = Client
    row_argument = "client_id"

    medication_id = id_field(metadata={"description": "The order the dose is given under."})
    kind = fields.Enum(DoseKind, by_value=True, required=True)
    amount_mg = fields.Float(
        required=True,
        validate=_AMOUNT,
        metadata={"description": "One daily dose in mg (a split dose: this part); must match the day's order."},
    )
    administered_at = LocalInstant(validate=_not_future, description="Observed doses: when it was consumed.")
    dispensed_at = LocalInstant(validate=_not_future, description="Take-home supplies: when it was handed over.")
    take_home_days = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=90),
        metadata={
            "description": "Take-home supplies: the number of daily doses handed over (the days after the visit)."
        },
    )
    lot_number = text(max_length=64)
    split = fields.Boolean(
        load_default=False,
        metadata={"description": "Observed doses: one part of the day's dose; the parts may not exceed it."},
    )
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    strength = text(required=False, max_length=60, metadata={"description": "Default: the product's usual strength."})
    dosage_form = text(required=False, max_length=60, metadata={"description": "Default: the product's usual form."})

    @validates_schema
    def _fields_of_kind(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if data.get("kind") is DoseKind.OBSERVED:
            if "administered_at" not in data:
                errors["administered_at"] = ["Required for an observed dose."]
            for name in ("dispensed_at", "take_home_days"):
                if name in data:
                    errors[name] = ["Only for a take-home supply."]
        elif data.get("kind") is DoseKind.TAKE_HOME:
            for name in ("dispensed_at", "take_home_days"):
                if name not in data:
                    errors[name] = ["Required for a take-home supply."]
            if "administered_at" in data:
                errors["administered_at"] = ["Only for an observed dose."]
        if errors:
            raise ValidationError(errors)


class DoseQuerySchema(PageArgsSchema):
    from_ = fields.Date(data_key="from", metadata={"description": "First local day (included)."})
    to = fields.Date(metadata={"description": "Last local day (included)."})


class DoseSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    medication_id = fields.Integer(required=True)
    kind = fields.Enum(DoseKind, by_value=True, required=True)
    amount_mg = fields.Float(required=True, metadata={"description": "One daily dose (or a split dose's part), mg."})
    take_home_days = fields.Integer(required=True, metadata={"description": "0 for an observed dose."})
    administered_at = fields.DateTime(allow_none=True)
    dispensed_at = fields.DateTime(allow_none=True)
    given_on = fields.Date(required=True, metadata={"description": "The site's local day of the dose."})
    covered_from = fields.Date(required=True, metadata={"description": "First day the entry doses the client."})
    covered_until = fields.Date(required=True, metadata={"description": "Last day the entry doses the client."})
    split = fields.Boolean(required=True)
    lot_number = fields.String(required=True)
    substance = fields.String(required=True)
    strength = fields.String(required=True)
    dosage_form = fields.String(required=True)
    note = fields.String(allow_none=True)
    dispenser_id = fields.Integer(required=True)
    dispenser_initials = fields.String(required=True)
    entered_in_error = fields.Nested(EnteredInErrorMarkSchema, allow_none=True)
    created_at = fields.DateTime(required=True)


DosePageSchema = page_schema(DoseSchema, "DosePage")


def _criterion_error(name: str, value: Any) -> str | None:
    """What is wrong with one criterion's answer (None when nothing)."""
    if name not in CRITERIA:
        return "Unknown criterion; one of " + ", ".join(CRITERIA) + "."
    if value is None or isinstance(value, bool):
        return None
    if name == FREE_TEXT_CRITERION:
        if isinstance(value, str) and value.strip() and len(value) <= 2000:
            return None
        return "true, false, null, or the clinician's words (up to 2000 characters)."
    return "true, false or null."


class TakeHomeReviewSchema(StrictSchema):
    criteria = fields.Dict(
        keys=fields.String(validate=validate.Length(max=64)),
        values=fields.Raw(allow_none=True),
        required=True,
        metadata={
            "description": "Each criterion of 42 CFR 8.12(i)(2): true (met), false (not met: no take-homes), null "
            "(not assessed); other_considerations may also be the clinician's words."
        },
    )
    note = text(max_length=4000)

    @validates_schema
    def _known_criteria(self, data: dict[str, Any], **_: Any) -> None:
        errors = {
            f"criteria.{name}": [error]
            for name, value in data.get("criteria", {}).items()
            if (error := _criterion_error(name, value)) is not None
        }
        if errors:
            raise ValidationError(errors)


class EligibilitySchema(StrictSchema):
    client_id = fields.Integer(required=True)
    on = fields.Date(required=True, metadata={"description": "The site's local day the answer is for."})
    days_in_treatment = fields.Integer(
        allow_none=True, metadata={"description": "Days since the open episode's admission; null without one."}
    )
    max_take_home_days = fields.Integer(
        required=True, metadata={"description": "The most daily doses one take-home may hand over on that day."}
    )
    criteria = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), required=True)
    decided_by = fields.Integer(allow_none=True, metadata={"description": "The clinician of the latest review."})
    decided_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)
    review_valid_until = fields.Date(allow_none=True)
    eligible = fields.Boolean(required=True, metadata={"description": "Whether a take-home may be dispensed today."})
    reason = fields.String(allow_none=True, metadata={"description": "Why not, when not."})


class DispensingLogQuerySchema(StrictSchema):
    date = fields.Date(required=True, metadata={"description": "The site's local day."})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class LogEntrySchema(StrictSchema):
    dose_id = fields.Integer(required=True)
    date = fields.Date(required=True)
    time = fields.String(required=True, metadata={"description": "Local time, HH:MM."})
    substance = fields.String(required=True)
    strength = fields.String(required=True)
    dosage_form = fields.String(required=True)
    client_id = fields.Integer(required=True)
    client_name = fields.String(required=True, metadata={"description": "Last name, first name."})
    mrn = fields.String(required=True)
    kind = fields.String(required=True, metadata={"enum": [kind.value for kind in DoseKind]})
    split = fields.Boolean(required=True)
    amount_consumed_mg = fields.Float(required=True, metadata={"description": "Consumed at the program."})
    amount_taken_home_mg = fields.Float(required=True, metadata={"description": "Daily dose x take_home_days."})
    take_home_days = fields.Integer(required=True)
    take_home_form = fields.String(allow_none=True, metadata={"description": "Dosage form taken home."})
    dispenser_initials = fields.String(required=True)
    lot_number = fields.String(required=True)
    voided = fields.Boolean(required=True)
    void_reason = fields.String(allow_none=True)
    voided_at = fields.DateTime(allow_none=True)


class LogTotalsSchema(StrictSchema):
    amount_consumed_mg = fields.Float(required=True)
    amount_taken_home_mg = fields.Float(required=True)


class DispensingLogSchema(StrictSchema):
    site_id = fields.Integer(required=True)
    date = fields.Date(required=True)
    items = fields.List(fields.Nested(LogEntrySchema), required=True)
    totals = fields.Nested(LogTotalsSchema, required=True, metadata={"description": "Entries not voided."})
