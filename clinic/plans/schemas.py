"""Schemas of plans, reviews, medications, drug screens and contingency management."""

from __future__ import annotations

import enum
import re
from datetime import UTC, date, datetime, time
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from clinic.auth.directory import RowWallClockSchema
from clinic.core.schemas import EARLIEST_PAST_EVENT, LocalInstant, StrictSchema, id_field, instant, past_date, text
from clinic.plans.models import (
    CMSchedule,
    Medication,
    MedicationName,
    MedicationPhase,
    MedicationRule,
    Plan,
    PlanStatus,
    ReviewOutcome,
    ScreenResult,
    SignerRole,
)


class InterventionKind(enum.StrEnum):
    MAT = "mat"
    CBT = "cbt"
    CONTINGENCY_MANAGEMENT = "contingency_management"
    PEER_SUPPORT = "peer_support"
    SUPPORT_GROUP = "support_group"
    OTHER = "other"


class ObjectiveStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    ACHIEVED = "achieved"
    NOT_ACHIEVED = "not_achieved"
    DISCONTINUED = "discontinued"


_node_id = fields.String(
    validate=validate.Length(min=2, max=16),
    metadata={"description": "Keep an entry's id when editing; leave it out for a new entry."},
)


class PlanInterventionSchema(StrictSchema):
    id = fields.String(validate=validate.Length(min=2, max=16))
    kind = fields.Enum(InterventionKind, by_value=True, required=True)
    description = text(max_length=1000)
    frequency = fields.String(allow_none=True, validate=validate.Length(max=100))
    responsible_user_id = id_field(required=False, allow_none=True)


class PlanObjectiveSchema(StrictSchema):
    id = fields.String(validate=validate.Length(min=2, max=16))
    description = text(max_length=1000)
    target_date = fields.Date(allow_none=True)
    status = fields.Enum(ObjectiveStatus, by_value=True, load_default=ObjectiveStatus.NOT_STARTED)
    interventions = fields.List(
        fields.Nested(PlanInterventionSchema), load_default=list, validate=validate.Length(max=50)
    )


class PlanGoalSchema(StrictSchema):
    id = fields.String(validate=validate.Length(min=2, max=16))
    description = text(max_length=1000)
    client_words = fields.String(
        allow_none=True,
        validate=validate.Length(max=2000),
        metadata={"description": "The goal in the client's own words."},
    )
    objectives = fields.List(fields.Nested(PlanObjectiveSchema), load_default=list, validate=validate.Length(max=50))


class PlanProblemSchema(StrictSchema):
    id = fields.String(validate=validate.Length(min=2, max=16))
    description = text(max_length=1000)
    source_assessment_id = fields.Integer(
        allow_none=True, metadata={"description": "Set when suggested by an assessment."}
    )
    goals = fields.List(fields.Nested(PlanGoalSchema), load_default=list, validate=validate.Length(max=50))


class PlanCreateSchema(StrictSchema):
    episode_id = id_field(required=False, allow_none=True)
    review_interval_days = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=7, max=365))
    problems = fields.List(fields.Nested(PlanProblemSchema), load_default=list, validate=validate.Length(max=50))
    from_assessments = fields.Boolean(
        load_default=False,
        metadata={"description": "Start from problems suggested by the client's latest signed assessments."},
    )


class PlanPatchSchema(StrictSchema):
    episode_id = id_field(required=False, allow_none=True)
    review_interval_days = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=7, max=365))
    problems = fields.List(fields.Nested(PlanProblemSchema), validate=validate.Length(max=50))


class SignatureSchema(StrictSchema):
    role = fields.Enum(SignerRole, by_value=True, required=True)
    user_id = fields.Integer(allow_none=True)
    signer_name = fields.String(required=True)
    signed_at = fields.DateTime(required=True)
    revision = fields.Integer(required=True)


class PlanSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    episode_id = fields.Integer(allow_none=True)
    status = fields.Enum(PlanStatus, by_value=True, required=True)
    revision = fields.Integer(required=True)
    active_revision = fields.Integer(allow_none=True, metadata={"description": "The last fully signed revision."})
    problems = fields.List(fields.Dict(), attribute="content", required=True)
    review_interval_days = fields.Integer(allow_none=True)
    next_review_on = fields.Date(allow_none=True)
    last_reviewed_on = fields.Date(allow_none=True)
    signatures = fields.List(fields.Nested(SignatureSchema), required=True)
    required_signatures = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class PlanListSchema(StrictSchema):
    items = fields.List(fields.Nested(PlanSchema), required=True)


class SignSchema(StrictSchema):
    as_ = fields.Enum(SignerRole, by_value=True, required=True, data_key="as")
    signer_name = fields.String(allow_none=True, validate=validate.Length(max=200))


class RevisionSchema(StrictSchema):
    number = fields.Integer(required=True)
    status = fields.Enum(PlanStatus, by_value=True, required=True)
    problems = fields.List(fields.Dict(), attribute="content", required=True)
    review_interval_days = fields.Integer(allow_none=True)
    episode_id = fields.Integer(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    reason = fields.String(required=True)


class RevisionListSchema(StrictSchema):
    items = fields.List(fields.Nested(RevisionSchema), required=True)


class DiffQuerySchema(StrictSchema):
    from_ = fields.Integer(required=True, data_key="from", validate=validate.Range(min=1, max=2**31 - 1))
    to = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))


class ChangeSchema(StrictSchema):
    change = fields.String(required=True, metadata={"enum": ["added", "removed", "changed"]})
    level = fields.String(required=True)
    node_id = fields.String(required=True)
    path = fields.String(required=True)
    field = fields.String(allow_none=True)
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)
    description = fields.String(required=True)


class DiffSchema(StrictSchema):
    from_ = fields.Integer(required=True, data_key="from")
    to = fields.Integer(required=True)
    changes = fields.List(fields.Nested(ChangeSchema), required=True)


class ReviewCreateSchema(StrictSchema):
    note = text(max_length=5000)
    outcome = fields.Enum(ReviewOutcome, by_value=True, required=True)


class ReviewSchema(StrictSchema):
    id = fields.Integer(required=True)
    plan_id = fields.Integer(required=True)
    reviewed_on = fields.Date(required=True)
    note = fields.String(required=True)
    outcome = fields.Enum(ReviewOutcome, by_value=True, required=True)
    due_on = fields.Date(allow_none=True)
    was_overdue = fields.Boolean(required=True)
    reviewer_id = fields.Integer(allow_none=True)
    next_review_on = fields.Date(allow_none=True)


class DueQuerySchema(StrictSchema):
    site_id = id_field(required=False, strict=False)
    clinician_id = id_field(
        required=False,
        strict=False,
        metadata={
            "description": "Only the plans this clinician answers for (the client's primary clinician, "
            "else the plan's author)."
        },
    )
    before = fields.Date(metadata={"description": "Reviews due on or before this date (default today)."})


class DuePlanSchema(StrictSchema):
    plan_id = fields.Integer(attribute="id", required=True)
    client_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    status = fields.Enum(PlanStatus, by_value=True, required=True)
    next_review_on = fields.Date(required=True)
    last_reviewed_on = fields.Date(allow_none=True)


class DueListSchema(StrictSchema):
    items = fields.List(fields.Nested(DuePlanSchema), required=True)


_UNITS = ["mg", "mcg", "mL"]


#: Doses are kept to three decimals: a smaller one would be stored as 0.
#: The days an order, a change or a first dose may fall on: anything outside is a typing mistake
#: (and could not be counted from without leaving the calendar).
_ORDER_DAY = validate.Range(
    min=EARLIEST_PAST_EVENT, max=date(2999, 12, 31), error="Must be between 1900-01-01 and 2999-12-31."
)
_FIRST_DOSE = validate.Range(
    min=datetime.combine(EARLIEST_PAST_EVENT, time(), tzinfo=UTC),
    max=datetime(2999, 12, 31, tzinfo=UTC),
    error="Must be between 1900-01-01 and 2999-12-31.",
)
_DOSE = validate.Range(min=0.001, max=10000, error="Must be between 0.001 and 10000 (doses are kept to 0.001).")


_OVERRIDE_REASON = {
    "description": "Why the clinician overrides the overridable safety rules the request breaks "
    "(docs/medications.md); each one is then listed in the medication's overrides."
}


class MedicationCreateSchema(RowWallClockSchema):
    row_model = Plan
    row_argument = "plan_id"

    medication = fields.Enum(MedicationName, by_value=True, required=True)
    dose = fields.Float(required=True, validate=_DOSE)
    unit = fields.String(required=True, validate=validate.OneOf(_UNITS))
    frequency = text(max_length=64)
    phase = fields.Enum(MedicationPhase, by_value=True, required=True)
    prescriber_id = id_field()
    start_on = fields.Date(required=True, validate=_ORDER_DAY)
    end_on = fields.Date(allow_none=True, validate=_ORDER_DAY)
    override_reason = fields.String(allow_none=True, validate=validate.Length(max=2000), metadata=_OVERRIDE_REASON)
    first_dose_at = LocalInstant(
        allow_none=True,
        validate=_FIRST_DOSE,
        description="When the first dose is given (on start_on at the site); the COWS of a buprenorphine "
        "induction must be in the 24 hours before it. Default: now for an order starting today, else the "
        "end of start_on.",
    )
    transfer_from_medication_id = id_field(
        required=False,
        allow_none=True,
        metadata={"description": "A transfer: this order of the client ends the day before start_on."},
    )


class MedicationPatchSchema(RowWallClockSchema):
    row_model = Medication
    row_argument = "medication_id"

    dose = fields.Float(validate=_DOSE)
    unit = fields.String(validate=validate.OneOf(_UNITS))
    frequency = text(required=False, max_length=64)
    phase = fields.Enum(MedicationPhase, by_value=True)
    end_on = fields.Date(allow_none=True, validate=_ORDER_DAY)
    effective_on = fields.Date(
        validate=_ORDER_DAY,
        metadata={"description": "When the change takes effect (default the site's today); a later day schedules it."},
    )
    reason = fields.String(allow_none=True, validate=validate.Length(max=2000))
    override_reason = fields.String(allow_none=True, validate=validate.Length(max=2000), metadata=_OVERRIDE_REASON)
    first_dose_at = LocalInstant(
        allow_none=True, validate=_FIRST_DOSE, description="A change to phase induction: when its first dose is given."
    )


class EnteredInErrorSchema(StrictSchema):
    reason = text(max_length=2000)


class EnteredInErrorMarkSchema(StrictSchema):
    reason = fields.String(required=True)
    by_user_id = fields.Integer(allow_none=True)
    at = fields.DateTime(required=True)


class DoseChangeSchema(StrictSchema):
    id = fields.Integer(required=True)
    effective_on = fields.Date(required=True)
    dose = fields.Float(required=True)
    unit = fields.String(required=True)
    frequency = fields.String(required=True)
    phase = fields.Enum(MedicationPhase, by_value=True, required=True)
    reason = fields.String(allow_none=True)
    changed_by_id = fields.Integer(allow_none=True)
    changed_at = fields.DateTime(required=True)
    entered_in_error = fields.Nested(
        EnteredInErrorMarkSchema,
        allow_none=True,
        metadata={"description": "Set when the entry was marked entered in error: it no longer counts."},
    )


class MedicationOverrideSchema(StrictSchema):
    rule = fields.Enum(MedicationRule, by_value=True, required=True)
    reason = fields.String(required=True)
    by_user_id = fields.Integer(allow_none=True)
    at = fields.DateTime(required=True)


class MedicationSchema(StrictSchema):
    id = fields.Integer(required=True)
    plan_id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    medication = fields.Enum(MedicationName, by_value=True, required=True)
    dose = fields.Float(required=True, metadata={"description": "The dose in force today (at the site)."})
    unit = fields.String(required=True)
    frequency = fields.String(required=True)
    phase = fields.Enum(MedicationPhase, by_value=True, required=True)
    prescriber_id = fields.Integer(required=True)
    start_on = fields.Date(required=True, validate=_ORDER_DAY)
    end_on = fields.Date(allow_none=True, validate=_ORDER_DAY)
    override_reason = fields.String(allow_none=True)
    overrides = fields.List(fields.Nested(MedicationOverrideSchema))
    history = fields.List(fields.Nested(DoseChangeSchema))
    scheduled_changes = fields.List(
        fields.Nested(DoseChangeSchema), metadata={"description": "Dose changes dated after today, still to come."}
    )
    last_injection_on = fields.Date(allow_none=True)
    covered_until = fields.Date(
        allow_none=True, metadata={"description": "naltrexone_xr: the last day its latest injection covers."}
    )


class MedicationListSchema(StrictSchema):
    items = fields.List(fields.Nested(MedicationSchema), required=True)


_SUBSTANCE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _substance_key(value: str) -> None:
    if not _SUBSTANCE.match(value):
        raise ValidationError("Substance names are lower-case letters, digits, - and _, e.g. fentanyl.")


class DrugScreenCreateSchema(StrictSchema):
    collected_at = instant()
    observed = fields.Boolean(load_default=False)
    missed = fields.Boolean(load_default=False)
    results = fields.Dict(
        keys=fields.String(validate=_substance_key),
        values=fields.Enum(ScreenResult, by_value=True),
        load_default=dict,
        validate=validate.Length(max=40),
    )


class DrugScreenPatchSchema(StrictSchema):
    collected_at = instant(required=False)
    observed = fields.Boolean()
    missed = fields.Boolean()
    results = fields.Dict(
        keys=fields.String(validate=_substance_key),
        values=fields.Enum(ScreenResult, by_value=True),
        validate=validate.Length(max=40),
    )


class DrugScreenSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    collected_at = fields.DateTime(required=True)
    observed = fields.Boolean(required=True)
    missed = fields.Boolean(required=True)
    results = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    recorded_by_id = fields.Integer(allow_none=True)
    entered_in_error = fields.Nested(
        EnteredInErrorMarkSchema,
        allow_none=True,
        metadata={"description": "Set when the screen was marked entered in error: it no longer counts."},
    )


class DrugScreenListSchema(StrictSchema):
    items = fields.List(fields.Nested(DrugScreenSchema), required=True)


class CMParamsSchema(StrictSchema):
    start_cents = fields.Integer(strict=True, validate=validate.Range(min=0, max=100_000))
    increment_cents = fields.Integer(strict=True, validate=validate.Range(min=0, max=100_000))
    bonus_cents = fields.Integer(strict=True, validate=validate.Range(min=0, max=100_000))
    bonus_every = fields.Integer(strict=True, validate=validate.Range(min=1, max=100))
    max_draws = fields.Integer(strict=True, validate=validate.Range(min=1, max=100))


class CMProgramCreateSchema(StrictSchema):
    target_substances = fields.List(
        fields.String(validate=_substance_key), required=True, validate=validate.Length(min=1, max=20)
    )
    schedule = fields.Enum(CMSchedule, by_value=True, required=True)
    params = fields.Nested(CMParamsSchema)
    annual_cap_cents = fields.Integer(strict=True, validate=validate.Range(min=0, max=10_000_000))
    starts_on = fields.Date()
    ends_on = fields.Date(allow_none=True)

    @validates_schema
    def _dates(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("starts_on") and data.get("ends_on") and data["ends_on"] < data["starts_on"]:
            raise ValidationError("Must not be before starts_on.", field_name="ends_on")


class CMProgramSchema(StrictSchema):
    id = fields.Integer(required=True)
    plan_id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    target_substances = fields.List(fields.String(), required=True)
    schedule = fields.Enum(CMSchedule, by_value=True, required=True)
    params = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    annual_cap_cents = fields.Integer(required=True)
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(allow_none=True)


class CMProgramEndSchema(StrictSchema):
    ends_on = fields.Date(
        metadata={
            "description": "The program's last day (default today, UTC): screens after it earn nothing in it. "
            "Not before its start, nor before a sample it already counted."
        }
    )


class PrizeCreateSchema(StrictSchema):
    prize_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100_000))


class PrizeSchema(StrictSchema):
    id = fields.Integer(required=True)
    program_id = fields.Integer(required=True)
    prize_cents = fields.Integer(required=True)
    drawn_at = fields.DateTime(required=True)


class LedgerEntrySchema(StrictSchema):
    at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"enum": ["voucher", "draws", "prize"]})
    amount_cents = fields.Integer(required=True)
    draws = fields.Integer(allow_none=True)
    drug_screen_id = fields.Integer(allow_none=True)
    capped = fields.Boolean(required=True, metadata={"description": "Cut by the annual cap"})
    kept = fields.Boolean(
        required=True,
        metadata={
            "description": "What a screen later entered in error had earned, kept: it was handed to the client. "
            "It counts in the total and against the cap, and in no streak."
        },
    )
    earned_before_cap_cents = fields.Integer(required=True)


class LedgerSchema(StrictSchema):
    program_id = fields.Integer(required=True)
    entries = fields.List(fields.Nested(LedgerEntrySchema), required=True)
    total_cents = fields.Integer(required=True)
    cap_remaining_cents = fields.Integer(required=True)


del _node_id, past_date
