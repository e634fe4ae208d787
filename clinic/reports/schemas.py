"""Schemas of reports and report runs."""

from __future__ import annotations

from marshmallow import fields, validate

from clinic.core.schemas import StrictSchema, id_field


class ReportInfoSchema(StrictSchema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)


class ReportArgsSchema(StrictSchema):
    from_ = fields.Date(data_key="from", metadata={"description": "First day (default: 90 days before `to`)."})
    to = fields.Date(metadata={"description": "Last day (default: today)."})
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
