"""The client timeline: every domain contributes its events through a registered source."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    resource_id: int
    summary: str
    #: Clinical entries are shown only to roles that may read clinical data.
    clinical: bool


TimelineSource = Callable[[int], Iterable[TimelineEntry]]
_SOURCES: list[TimelineSource] = []


def timeline_source(func: TimelineSource) -> TimelineSource:
    """Register a function giving a client's entries of one kind."""
    _SOURCES.append(func)
    return func


def start_of_day(day: date, zone: str) -> datetime:
    """The instant a calendar day begins at a site, in UTC."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def build_timeline(client_id: int, *, include_clinical: bool) -> list[TimelineEntry]:
    entries = [entry for source in _SOURCES for entry in source(client_id) if include_clinical or not entry.clinical]
    return sorted(entries, key=lambda e: (e.at, e.kind, e.resource_id))
