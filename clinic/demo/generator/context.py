"""What the row builders of every table share: the seeded random stream, the ids, the reference day."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
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


@dataclass(frozen=True)
class Rules:
    """The settings the generated records must respect, read from the application's configuration
    (``Rules.from_settings``), so that every row would have been accepted through the API."""

    #: (from day in treatment, most daily doses one take-home may hand over), ascending.
    take_home_limits: tuple[tuple[int, int], ...] = ((0, 7), (15, 14), (31, 28))
    take_home_review_valid_days: int = 90
    missed_dose_alert_days: int = 3
    escalate_hours: int = 4
    induction_min_cows: int = 8
    buprenorphine_usual_max_mg: int = 24
    buprenorphine_absolute_max_mg: int = 32
    naltrexone_xr_coverage_days: int = 28

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Rules:
        names = {
            "take_home_limits": "DOSING_TAKE_HOME_LIMITS",
            "take_home_review_valid_days": "DOSING_TAKE_HOME_REVIEW_VALID_DAYS",
            "missed_dose_alert_days": "DOSING_MISSED_DOSE_ALERT_DAYS",
            "escalate_hours": "SAFETY_ALERT_ESCALATE_HOURS",
            "induction_min_cows": "MED_INDUCTION_MIN_COWS",
            "buprenorphine_usual_max_mg": "MED_BUPRENORPHINE_USUAL_MAX_MG",
            "buprenorphine_absolute_max_mg": "MED_BUPRENORPHINE_ABSOLUTE_MAX_MG",
            "naltrexone_xr_coverage_days": "MED_NALTREXONE_XR_COVERAGE_DAYS",
        }
        found = {attr: settings[name] for attr, name in names.items() if name in settings}
        if "take_home_limits" in found:
            found["take_home_limits"] = tuple(sorted((int(a), int(b)) for a, b in found["take_home_limits"]))
        return cls(**found)

    def max_take_home_days(self, days_in_treatment: int) -> int:
        allowed = 0
        for from_day, doses in self.take_home_limits:
            if days_in_treatment >= from_day:
                allowed = doses
        return allowed


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
        rules: Rules | None = None,
    ) -> None:
        self.total = clients
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not a secret
        #: A second stream for the medication safety records, the dosing record, overdose prevention
        #: and safety alerts: drawing on it leaves the rest of a seed's data as it was without them.
        self.record_rng = random.Random(seed * 1_000_003 + 16)  # noqa: S311 - as above
        self.rules = rules or Rules()
        #: How many of each showcase (a rare case every demo should hold) were made so far.
        self.shown: Counter[str] = Counter()
        #: Each OTP's dispensing rota (clinic.demo.generator.dosing), made when first needed.
        self.dispensers: dict[int, Any] = {}
        self.seed = seed
        self.today = today
        self.now = datetime.combine(today, time(12, 0), tzinfo=UTC)
        self.sites = sites
        self.ids = Ids(dict(first_ids))
        self.taken_mrns = taken_mrns or set()
        self.with_appointments = "appointments" in tables
        self.with_dosing = "doses" in tables and "take_home_reviews" in tables
        self.with_overdose = "naloxone_dispenses" in tables and "overdose_events" in tables
        self.with_alerts = "staff_notifications" in tables
        self.with_overrides = "medication_overrides" in tables
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

    def showcase(self, name: str, *, first: int, rate: float, most: int | None = None) -> bool:
        """Whether to make one more of a rare case: at every chance until ``first`` are made, then at
        ``rate``, never more than ``most``.

        So a small demo always shows it, and a large one holds it at a realistic rate.
        """
        draw = self.record_rng.random()
        if most is not None and self.shown[name] >= most:
            return False
        if self.shown[name] < first or draw < rate:
            self.shown[name] += 1
            return True
        return False

    def add(self, chunk: Chunk, table: str, row: Row) -> Row:
        chunk.setdefault(table, []).append(row)
        return row

    def instant(self, day: date, hour: int, minute: int, site: SiteStaff) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.zones[site.site_id]).astimezone(UTC)
