"""Dates and times on console pages: as people in the US write them, in the site's time zone.

``Mar 4, 2026``, ``2:30 PM``, ``Mar 4, 2026, 2:30 PM CST``; the zone is named whenever a time is shown
(the site's zone may differ from the reader's), and every value is converted from UTC here, in one place.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from flask import Flask

from clinic.core.time import as_utc

#: Parsed once: babel parses a locale given by name on every call, which doubles a format's cost.
LOCALE = Locale.parse("en_US")


def _local(value: datetime, zone: str | None) -> datetime:
    return as_utc(value).astimezone(ZoneInfo(zone or "UTC"))


def long_date(value: date | datetime | None, zone: str | None = None) -> str:
    """``Mar 4, 2026``; a datetime is first put on the site's calendar."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _local(value, zone).date()
    return format_date(value, "MMM d, y", locale=LOCALE)


def weekday_date(value: date | datetime | None, zone: str | None = None) -> str:
    """``Wed, Mar 4, 2026``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _local(value, zone).date()
    return format_date(value, "EEE, MMM d, y", locale=LOCALE)


def clock(value: datetime | None, zone: str | None = None, *, with_zone: bool = True) -> str:
    """``2:30 PM CST`` (the zone's abbreviation at that instant)."""
    if value is None:
        return ""
    local = _local(value, zone)
    text = format_time(local, "h:mm a", locale=LOCALE)
    return f"{text} {local.tzname()}" if with_zone else text


def date_time(value: datetime | None, zone: str | None = None) -> str:
    """``Mar 4, 2026, 2:30 PM CST``."""
    if value is None:
        return ""
    local = _local(value, zone)
    return f"{format_datetime(local, 'MMM d, y, h:mm a', locale=LOCALE)} {local.tzname()}"


def age(born: date | None, on: date) -> int | None:
    """Whole years between ``born`` and ``on``."""
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        long_date=long_date, weekday_date=weekday_date, clock=clock, date_time=date_time
    )
    app.jinja_env.globals["age"] = age
