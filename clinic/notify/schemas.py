"""Schemas of staff notifications."""

from __future__ import annotations

from marshmallow import fields

from clinic.core.pagination import PageArgsSchema, page_schema
from clinic.core.schemas import StrictSchema
from clinic.notify.models import EmailStatus, StaffNotificationKind


class StaffNotificationSchema(StrictSchema):
    id = fields.Integer(required=True)
    kind = fields.Enum(StaffNotificationKind, by_value=True, required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    client_id = fields.Integer(allow_none=True)
    resource = fields.String(allow_none=True)
    resource_id = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    read_at = fields.DateTime(allow_none=True)
    email_status = fields.Enum(EmailStatus, by_value=True, required=True)


StaffNotificationPageSchema = page_schema(StaffNotificationSchema, "StaffNotificationPage")


class StaffNotificationQuerySchema(PageArgsSchema):
    unread = fields.Boolean()
