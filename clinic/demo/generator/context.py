"""What the row builders of every table share: the seeded random stream, the ids, the reference day."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from clinic.assessments.definitions import Instrument, get_instrument
from clinic.demo.generator.people import MrnSequence
from clinic.demo.generator.sites import SiteStaff

Row = dict[str, Any]
Chunk = dict[str, list[Row]]


def weighted(rng: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    """One of the values, drawn with its relative weight."""
    total = sum(w for _, w in pairs)
    pick = rng.random() * total
    for value, weight in pairs:
        pick -= weight
        if pick < 0:
            return value
    return pairs[-1][0]


@dataclass
class Ids:
    """The next id of each table: rows are inserted with explicit ids so children can refer to them."""

    next: dict[str, int] = field(default_factory=dict)

    def take(self, table: str) -> int:
        value = self.next.get(table, 1)
        self.next[table] = value + 1
        return value


class Context:
    """The state of one generation run, drawn on in a fixed order by the row builders."""

    def __init__(
        self,
        *,
        clients: int,
        seed: int,
        today: date,
        sites: list[SiteStaff],
        first_ids: dict[str, int],
        taken_mrns: set[str] | None = None,
        tables: set[str],
    ) -> None:
        self.total = clients
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not a secret
        self.seed = seed
        self.today = today
        self.now = datetime.combine(today, time(12, 0), tzinfo=UTC)
        self.sites = sites
        self.ids = Ids(dict(first_ids))
        self.taken_mrns = taken_mrns or set()
        self.with_appointments = "appointments" in tables
        self.with_reminders = self.with_appointments and "reminders" in tables
        self.zones = {s.site_id: ZoneInfo(s.spec.timezone) for s in sites}
        #: Booked (day ordinal * SLOTS_PER_DAY + slot) of each clinician.
        self.booked: dict[int, set[int]] = {}
        self.instruments: dict[str, Instrument] = {}
        for code in ("DSM5-OUD", "COWS", "PHQ-9", "GAD-7", "ASAM", "DAST-10"):
            found = get_instrument(code)
            if found is None:
                raise LookupError(f"instrument {code} is not defined")
            self.instruments[code] = found
        self.mrns = MrnSequence(self.rng.randrange(9_000_000), self.taken_mrns)
        self.site_pairs = tuple((s, s.spec.weight) for s in sites)

    def add(self, chunk: Chunk, table: str, row: Row) -> Row:
        chunk.setdefault(table, []).append(row)
        return row

    def instant(self, day: date, hour: int, minute: int, site: SiteStaff) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.zones[site.site_id]).astimezone(UTC)
