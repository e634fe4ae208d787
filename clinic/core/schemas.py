"""Schema pieces shared by every domain: problem documents, strict strings, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import Schema, ValidationError, fields, validate

from clinic.core.time import today, utcnow


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


class Instant(fields.AwareDateTime):
    """An RFC 3339 date-time with an offset, loaded as the same instant in UTC.

    Every instant is stored and compared in UTC (``UTCDateTime``); one that UTC cannot
    represent (``0001-01-01T00:00:00+14:00``, ``9999-12-31T23:59:59-14:00``) is a validation
    error here rather than an overflow when it reaches the database.
    """

    default_error_messages = {"out_of_range": "Out of range: not representable in UTC."}  # noqa: RUF012 - marshmallow API

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        loaded = super()._deserialize(value, attr, data, **kwargs)
        try:
            return loaded.astimezone(UTC)
        except OverflowError as exc:
            raise self.make_error("out_of_range") from exc


class StrictSchema(Schema):
    """Unknown keys are refused (marshmallow's default, made explicit)."""

    class Meta:
        unknown = "raise"


#: The earliest date or instant a past event may have: anything before it is a typing mistake.
EARLIEST_PAST_EVENT = date(1900, 1, 1)
#: How far ahead of the server's clock a past event's instant may be (a client's clock running fast).
_CLOCK_LEEWAY = timedelta(minutes=5)


def _not_future(value: date) -> None:
    if value > today() + timedelta(days=1):
        raise ValidationError("Must not be in the future.")


def _not_future_instant(value: datetime) -> None:
    if value > utcnow() + _CLOCK_LEEWAY:
        raise ValidationError("Must not be in the future.")


def past_date(*, required: bool = True, earliest: date = EARLIEST_PAST_EVENT, **kwargs: Any) -> fields.Date:
    """A calendar date no later than today (one day of leeway for time zones ahead of UTC)."""
    return fields.Date(required=required, validate=[validate.Range(min=earliest), _not_future], **kwargs)


def instant(*, required: bool = True, **kwargs: Any) -> Instant:
    """An RFC 3339 timestamp with its offset, loaded in UTC; a naive timestamp is refused."""
    return Instant(required=required, **kwargs)


def past_instant(*, required: bool = True, earliest: date = EARLIEST_PAST_EVENT, **kwargs: Any) -> Instant:
    """The instant of something that has happened: the rule of :func:`past_date`, for instants.

    Not before ``earliest`` (midnight UTC), nor later than now (five minutes of leeway for clocks).
    """
    not_too_early = validate.Range(
        min=datetime.combine(earliest, time(), tzinfo=UTC), error=f"Must not be before {earliest.isoformat()}."
    )
    return Instant(required=required, validate=[not_too_early, _not_future_instant], **kwargs)


#: BCP 47 language tags such as "en", "es", "pt-BR", "zh-Hant".
language_tag = validate.Regexp(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", error="Not a language tag such as en or es.")


def id_field(*, required: bool = True, allow_none: bool = False, strict: bool = True, **kwargs: Any) -> fields.Integer:
    """A database id: a positive 32-bit integer (``strict=False`` for query strings, which are text)."""
    return fields.Integer(
        required=required, allow_none=allow_none, strict=strict, validate=validate.Range(min=1, max=2**31 - 1), **kwargs
    )
