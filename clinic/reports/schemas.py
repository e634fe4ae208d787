"""Schemas of reports and report runs."""

from __future__ import annotations

from datetime import date

from marshmallow import fields, validate

from clinic.core.schemas import EARLIEST_PAST_EVENT, StrictSchema, id_field


class ReportInfoSchema(StrictSchema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)


#: A report's days: anything outside is a typing mistake (and would leave the calendar when counted from).
_REPORT_DAY = validate.Range(
    min=EARLIEST_PAST_EVENT, max=date(2999, 12, 31), error="Must be between 1900-01-01 and 2999-12-31."
)


class ReportArgsSchema(StrictSchema):
    from_ = fields.Date(
        data_key="from", validate=_REPORT_DAY, metadata={"description": "First day (default: 90 days before `to`)."}
    )
    to = fields.Date(validate=_REPORT_DAY, metadata={"description": "Last day (default: today)."})
    site_id = id_field(required=False, strict=False)


class ReportQuerySchema(ReportArgsSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "svg"]))


class ReportColumnSchema(StrictSchema):
    key = fields.String(required=True)
    label = fields.String(required=True)
    unit = fields.String(required=True)


class ReportDocumentSchema(StrictSchema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    params = fields.Dict(required=True)
    generated_at = fields.DateTime(required=True)
    columns = fields.List(fields.Nested(ReportColumnSchema), required=True)
    rows = fields.List(fields.Dict(), required=True)
    summary = fields.Dict(required=True)


class ReportRunSchema(StrictSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["queued", "running", "done", "failed"]})
    params = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(required=True)
    download_url = fields.String(allow_none=True)
    error = fields.String(allow_none=True)


class RunCreatedSchema(StrictSchema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)


class DownloadQuerySchema(StrictSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "svg"]))
