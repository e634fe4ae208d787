"""Schema pieces shared by every domain: problem documents, strict strings, time zones."""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import Schema, ValidationError, fields, validate


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


def text(*, required: bool = True, max_length: int = 200, min_length: int = 1, **kwargs: Any) -> fields.String:
    """A string that must hold something other than white space."""

    def not_blank(value: str) -> None:
        if min_length and not value.strip():
            raise ValidationError("Must not be blank.")

    return fields.String(
        required=required,
        validate=[validate.Length(min=min_length, max=max_length), not_blank],
        **kwargs,
    )


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _zones():
        raise ValidationError("Not an IANA time zone, e.g. America/New_York.")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("Not an IANA time zone, e.g. America/New_York.") from exc


def timezone_field(*, required: bool = True) -> fields.String:
    return fields.String(required=required, validate=validate_timezone, metadata={"example": "America/New_York"})


class StrictSchema(Schema):
    """Unknown keys are refused (marshmallow's default, made explicit)."""

    class Meta:
        unknown = "raise"
