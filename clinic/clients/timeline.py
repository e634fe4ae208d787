"""The client timeline: every domain contributes its entries through the ``timeline_entries`` signal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from clinic.core.signals import timeline_entries, values_from


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    resource_id: int
    summary: str
    #: Clinical entries are shown only to roles that may read clinical data.
    clinical: bool


def build_timeline(client_id: int, *, include_clinical: bool) -> list[TimelineEntry]:
    contributions: list[Iterable[TimelineEntry]] = values_from(timeline_entries, client_id)
    entries = [entry for entries in contributions for entry in entries if include_clinical or not entry.clinical]
    return sorted(entries, key=lambda e: (e.at, e.kind, e.resource_id))
