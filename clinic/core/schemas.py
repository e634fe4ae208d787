"""Schema pieces shared by every domain: problem documents, strict strings, time zones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from clinic.core.time import today, utcnow


class DuplicateCandidateSchema(Schema):
    """A registered client who may be the one being registered again."""

    id = fields.Integer(required=True)
    mrn = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    date_of_birth = fields.Date(required=True)
    site_id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "The client's status."})


class ClashSchema(Schema):
    """A booking that a requested time would double-book."""

    party = fields.String(required=True, metadata={"description": "Who is double-booked: clinician or client."})
    party_id = fields.Integer(metadata={"description": "The double-booked clinician's or client's id."})
    appointment_id = fields.Integer(
        allow_none=True, metadata={"description": "The booked appointment; null when it is at a site not yours."}
    )
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    requested_starts_at = fields.DateTime(
        allow_none=True, metadata={"description": "The occurrence of a series that clashes; null for one booking."}
    )


class BrokenRuleSchema(Schema):
    rule = fields.String(required=True, metadata={"description": "The rule's code (docs/medications.md)."})
    field = fields.String(required=True, metadata={"description": "The request field the rule names."})
    detail = fields.String(required=True)
    overridable = fields.Boolean(
        required=True, metadata={"description": "Whether an override_reason in the request lets the rule pass."}
    )


class ProblemSchema(Schema):
    """RFC 9457 problem details, and the extension members some problems carry.

    Every problem has the standard members; an extension member appears only on the problems
    named in its description. A member not listed here is never sent (the fuzz tests check
    every response against this schema).
    """

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    detail = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Messages per field path (422, and 409s caused by one field)."},
    )
    candidates = fields.List(
        fields.Nested(DuplicateCandidateSchema),
        metadata={"description": "409 likely-duplicate: the matching clients of the caller's sites."},
    )
    client_id = fields.Integer(
        metadata={"description": "409 already-converted or already-linked: the client the intake call belongs to."}
    )
    open_episode_id = fields.Integer(metadata={"description": "409 episode-open: the client's open episode."})
    amendment_id = fields.Integer(metadata={"description": "409 amendment-pending: the amendment still in draft."})
    current_etag = fields.String(metadata={"description": "412 stale-plan: the plan's current ETag."})
    clashes = fields.List(
        fields.Nested(ClashSchema), metadata={"description": "409 double-booking: up to ten clashing bookings."}
    )
    appointment_status = fields.String(
        metadata={"description": "409 illegal-transition: the appointment's status."}
    )
    allowed = fields.List(
        fields.String(),
        metadata={"description": "409 illegal-transition: the statuses the appointment may move to from there."},
    )
    rules = fields.List(
        fields.Nested(BrokenRuleSchema),
        metadata={"description": "422 medication-safety: each medication safety rule the request breaks."},
    )


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


# --- wall-clock times of a site ------------------------------------------------------------------

#: What a LocalInstant accepts, for the spec: an RFC 3339 date-time whose offset may be left out.
_LOCAL_INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}:\d{2})?$"


class NonexistentWallTimeError(ValueError):
    """A wall-clock time the zone skips (the hour lost when clocks go forward)."""


def wall_clock_to_utc(wall_time: datetime, zone: str) -> datetime:
    """The UTC instant of a naive wall-clock time in ``zone``; NonexistentWallTimeError if the zone skips it.

    A time that happens twice (clocks go back) is the first of the two, the one still on summer
    time, as everywhere else in clinic (``core.time.from_local``); an offset picks the other.
    """
    tz = ZoneInfo(zone)
    instant = wall_time.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall_time.replace(fold=0):
        raise NonexistentWallTimeError(f"{wall_time:%Y-%m-%d %H:%M} does not exist in {zone}")
    return instant


class LocalInstant(fields.Field[datetime]):
    """An instant with an offset, or, in a :class:`WallClockSchema`, a wall-clock time of the site.

    Loaded in UTC like :class:`Instant`. An offset-less value reaches this field only when the
    request named no site to read it in (the schema reads the others first): then it is refused.
    """

    default_error_messages = {  # noqa: RUF012 - marshmallow API
        "invalid": "Not a valid date-time (RFC 3339, e.g. 2026-03-09T09:30:00-04:00).",
        "no_zone": "Give an offset (e.g. 2026-03-09T09:30:00-04:00), or name one of your sites to read it "
        "as that site's local time.",
        "out_of_range": "Out of range: not representable in UTC.",
    }

    def __init__(self, *, description: str = "", **kwargs: Any) -> None:
        metadata = {
            "type": "string",
            "pattern": _LOCAL_INSTANT_PATTERN,
            "description": (description + " " if description else "")
            + "RFC 3339; the offset may be left out when the request names a site (or a record that "
            "has one): the time is then the site's local time.",
            "example": "2026-03-09T09:30:00-04:00",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed = value if isinstance(value, datetime) else _parse_date_time(value)
        if parsed is None:
            raise self.make_error("invalid")
        if parsed.utcoffset() is None:
            raise self.make_error("no_zone")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise self.make_error("out_of_range") from exc

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else value.isoformat()


def _parse_date_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class WallClockSchema(StrictSchema):
    """A request whose :class:`LocalInstant` fields may leave out the offset when it names a site.

    Before the fields are read, an offset-less value is read as wall-clock time in the zone that
    :meth:`wall_clock_zone` finds for the request (a subclass says how: a ``site_id`` in the body
    or query, the record in the path); a time that zone skips is a 422 naming the field.
    """

    def wall_clock_zone(self, data: Mapping[str, Any]) -> str | None:
        """The IANA zone the request's offset-less times are in; None when it names no site."""
        return None

    @pre_load
    def _read_wall_clock_times(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        naive: dict[str, datetime] = {}
        for name, field in self.load_fields.items():
            if isinstance(field, LocalInstant):
                key = field.data_key or name
                parsed = _parse_date_time(data.get(key))
                if parsed is not None and parsed.utcoffset() is None:
                    naive[key] = parsed
        if not naive:
            return data
        zone = self.wall_clock_zone(data)
        if zone is None:
            return data  # the field refuses the value, saying an offset or a site is needed
        placed = {key: data[key] for key in data}  # a copy: a query string's proxy is read-only
        errors: dict[str, list[str]] = {}
        for key, wall_time in naive.items():
            try:
                placed[key] = wall_clock_to_utc(wall_time, zone)
            except NonexistentWallTimeError:
                errors[key] = [
                    f"{wall_time:%Y-%m-%d %H:%M} does not exist in {zone}: the clocks skip that hour "
                    "(daylight saving). Give the time after the change, or an offset."
                ]
            except OverflowError:
                errors[key] = ["Out of range: not representable in UTC."]
        if errors:
            raise ValidationError(errors)
        return placed
