"""Schemas of instruments and assessments."""

from __future__ import annotations

from marshmallow import fields, validate

from clinic.assessments.definitions import get_instrument
from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import StrictSchema, past_instant, text


class InstrumentItemSchema(StrictSchema):
    key = fields.String(required=True)
    text = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": ["integer", "boolean", "choice"]})
    allowed = fields.List(fields.Raw(), allow_none=True, required=True)
    allowed_by = fields.Dict(allow_none=True)
    text_by = fields.Dict(
        metadata={
            "description": "Wording that depends on another answer: {modifier, values: {answer: text}} "
            "(ASAM: each dimension as the chosen edition names it)"
        }
    )
    points = fields.Dict(keys=fields.String(), values=fields.Integer())
    labels = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "Each answer's words"})
    labels_by = fields.Dict(
        metadata={
            "description": "Answer words that depend on another answer: {modifier, values: {answer: {value: words}}}"
        }
    )
    modifier = fields.Boolean(required=True, metadata={"description": "Not scored; changes scoring, bands or meaning"})
    required = fields.Boolean(required=True)


class BandSchema(StrictSchema):
    label = fields.String(required=True)
    min = fields.Integer(required=True)
    max = fields.Integer(allow_none=True, required=True)


class FlagRuleSchema(StrictSchema):
    flag = fields.String(required=True)
    items = fields.List(fields.String(), required=True)
    op = fields.String(required=True)
    value = fields.Raw(required=True)


class InstrumentSchema(StrictSchema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    version = fields.String(required=True)
    source = fields.String(required=True)
    items = fields.List(fields.Nested(InstrumentItemSchema), required=True)
    scoring = fields.String(required=True)
    total_range = fields.List(fields.Integer(), allow_none=True, required=True)
    bands_by = fields.String(allow_none=True, required=True)
    bands = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Nested(BandSchema)),
        required=True,
        metadata={"description": 'Severity bands; keyed by the value of `bands_by`, or "" when none.'},
    )
    flags = fields.List(fields.Nested(FlagRuleSchema), required=True)


class AssessmentCreateSchema(StrictSchema):
    instrument = fields.String(required=True, validate=validate.Length(min=1, max=32))
    answers = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), required=True)
    administered_at = past_instant()


class AssessmentPatchSchema(StrictSchema):
    answers = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))
    administered_at = past_instant(required=False)


class AmendSchema(StrictSchema):
    answers = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), required=True)
    reason = text(max_length=2000)


class AssessmentSchema(StrictSchema):
    id = fields.Integer(required=True)
    client_id = fields.Integer(required=True)
    instrument = fields.String(required=True)
    version = fields.String(required=True, metadata={"description": "Version of the instrument definition"})
    answers = fields.Dict(required=True)
    total_score = fields.Integer(allow_none=True, required=True)
    severity = fields.String(allow_none=True, required=True)
    flags = fields.List(fields.String(), required=True)
    status = fields.Enum(AssessmentStatus, by_value=True, required=True)
    administered_at = fields.DateTime(required=True)
    clinician_id = fields.Integer(allow_none=True)
    signed_at = fields.DateTime(allow_none=True)
    signed_by_id = fields.Integer(allow_none=True)
    revision = fields.Integer(required=True)
    amends_id = fields.Integer(allow_none=True)
    amendment_reason = fields.String(allow_none=True)
    superseded_by_id = fields.Integer(allow_none=True)
    level_of_care = fields.String(allow_none=True)
    edition = fields.String(allow_none=True, metadata={"description": "ASAM: the edition of the criteria used"})
    item_labels = fields.Method(
        "_item_labels",
        metadata={
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Items worded by another answer, as this assessment's answers word them "
            "(ASAM: d1..d6 named as its own edition names them); {} for other instruments",
        },
    )

    def _item_labels(self, row: Assessment) -> dict[str, str]:
        definition = get_instrument(row.instrument)
        return definition.item_labels(row.answers) if definition is not None else {}


AssessmentPageSchema = page_schema(AssessmentSchema, "AssessmentPage")


class AssessmentQuerySchema(PageArgsSchema):
    instrument = fields.String(validate=validate.Length(min=1, max=32))


class TrendQuerySchema(StrictSchema):
    instrument = fields.String(required=True, validate=validate.Length(min=1, max=32))


class TrendPointSchema(StrictSchema):
    assessment_id = fields.Integer(required=True)
    administered_at = fields.DateTime(required=True)
    total_score = fields.Integer(required=True)
    severity = fields.String(allow_none=True, required=True)
    change_from_first = fields.Integer(required=True)


class TrendSchema(StrictSchema):
    instrument = fields.String(required=True)
    points = fields.List(fields.Nested(TrendPointSchema), required=True)
    first_score = fields.Integer(allow_none=True, required=True)
    latest_score = fields.Integer(allow_none=True, required=True)
    change_from_first = fields.Integer(allow_none=True, required=True)
