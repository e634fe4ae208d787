"""Time helpers: every instant clinic stores is timezone-aware UTC; wall clocks belong to a zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    return datetime.now(UTC)


def today() -> date:
    """The current date in UTC."""
    return utcnow().date()


def local_today(zone: str) -> date:
    """The calendar date now in ``zone`` (a site's "today")."""
    return to_local(utcnow(), zone).date()


def as_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_local(instant: datetime, zone: str) -> datetime:
    """``instant`` on the wall clock of ``zone``, as a naive local time."""
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def from_local(wall_time: datetime, zone: str) -> datetime:
    """The UTC instant of a naive wall-clock time in ``zone``.

    A wall time that does not exist (skipped when clocks go forward) is moved forward by the
    gap, 02:30 becoming 03:30; one that happens twice (clocks go back) is the first of the two.
    """
    aware = wall_time.replace(tzinfo=ZoneInfo(zone), fold=0)
    return aware.astimezone(UTC)


def shift_wall_clock(instant: datetime, delta: timedelta, zone: str) -> datetime:
    """Move ``instant`` by ``delta`` on the wall clock of ``zone`` (09:00 → 10:00 on any date)."""
    return from_local(to_local(instant, zone) + delta, zone)


def start_of_day(day: date, zone: str) -> datetime:
    """The instant a calendar day begins in ``zone``, in UTC."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(zone)).astimezone(UTC)
