from __future__ import annotations

from marshmallow import fields

from clinic.core.schemas import StrictSchema


class HealthSchema(StrictSchema):
    status = fields.String(required=True)


class HeartbeatSchema(StrictSchema):
    last_beat_at = fields.DateTime(allow_none=True, required=True)
    age_seconds = fields.Float(allow_none=True, required=True)
    status = fields.String(required=True, metadata={"description": "ok, stale or never"})


class ReadinessSchema(StrictSchema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    worker_heartbeat = fields.Nested(HeartbeatSchema, required=True)
