"""Seeded generation of demo rows, as plain dicts keyed by column name, table by table.

Pure: the rows depend only on the number of clients, the seed, the reference day and the staff
it is given (no database access, no clock). One ``random.Random(seed)`` drives everything, in a
fixed order, so the same inputs always give the same data. Every row respects the models'
invariants: one open episode per client, discharge after admission, Damm-checked MRNs,
normalised search keys, E.164 phones, plan trees with node ids, scored assessments, no double
booking of a clinician or a client.

The rows are built by domain: ``intake`` (calls, clients, consents), ``care`` (episodes) and
``assessments``, ``plans`` (plans, drug screens, contingency management), ``medications`` (orders,
dose history, overrides), ``dosing`` (the OTP dosing record and take-home reviews), ``overdose``
(naloxone, overdose events), ``alerts`` (safety alerts and their escalation) and ``scheduling``
(appointments, reminders, the notification log), all drawing on one ``Context``; ``sites`` and
``people`` hold the sites and their staffing, and names, phones and MRNs. The records added with
medication safety, dosing and overdose prevention draw on a second stream (``Context.record_rng``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from clinic.demo.generator.care import DISCHARGE_REASONS
from clinic.demo.generator.context import Chunk, Context, Ids, Row, Rules
from clinic.demo.generator.dosing import DOSING_HISTORY_DAYS
from clinic.demo.generator.intake import HISTORY_DAYS, RISK_FLAGS, SUBSTANCES, UNCONVERTED_OUTCOMES, add_client
from clinic.demo.generator.people import AREA_CODES, FIRST_NAMES, LAST_NAMES, REFERRAL_SOURCES, mrn_for
from clinic.demo.generator.plans import PANEL
from clinic.demo.generator.scheduling import (
    BOOKED_AHEAD_DAYS,
    DURATIONS,
    FIRST_SLOT_HOUR,
    PAST_STATUSES,
    REMINDER_HISTORY_DAYS,
    SLOTS_PER_DAY,
    reserve_slots,
)
from clinic.demo.generator.sites import (
    CLIENTS_PER_CLINICIAN,
    CLIENTS_PER_INTAKE,
    SITES,
    SiteSpec,
    SiteStaff,
    site_count,
)

__all__ = [
    "AREA_CODES",
    "BOOKED_AHEAD_DAYS",
    "CHUNK_CLIENTS",
    "CLIENTS_PER_CLINICIAN",
    "CLIENTS_PER_INTAKE",
    "DISCHARGE_REASONS",
    "DOSING_HISTORY_DAYS",
    "DURATIONS",
    "FIRST_NAMES",
    "FIRST_SLOT_HOUR",
    "HISTORY_DAYS",
    "LAST_NAMES",
    "PANEL",
    "PAST_STATUSES",
    "REFERRAL_SOURCES",
    "REMINDER_HISTORY_DAYS",
    "RISK_FLAGS",
    "SITES",
    "SLOTS_PER_DAY",
    "SUBSTANCES",
    "UNCONVERTED_OUTCOMES",
    "Chunk",
    "Generator",
    "Ids",
    "Row",
    "Rules",
    "SiteSpec",
    "SiteStaff",
    "dumps",
    "json_default",
    "mrn_for",
    "site_count",
]

#: Clients generated (and loaded) together; bounds memory whatever the total.
CHUNK_CLIENTS = 2000


class Generator(Context):
    """Generates the demo rows for ``clients`` clients across the given sites, chunk by chunk."""

    def chunks(self) -> Iterator[Chunk]:
        """The rows of every table, CHUNK_CLIENTS clients at a time."""
        done = 0
        while done < self.total:
            size = min(CHUNK_CLIENTS, self.total - done)
            chunk: Chunk = {}
            for _ in range(size):
                add_client(self, chunk)
            done += size
            yield chunk

    def reserve(self, clinician_id: int, starts_at: datetime, ends_at: datetime) -> None:
        """Mark the slots an existing booking of the clinician overlaps, so no demo booking clashes with it."""
        reserve_slots(self, clinician_id, starts_at, ends_at)


def json_default(value: Any) -> Any:
    """JSON columns hold only plain values; dates never reach here, but keep the dump strict."""
    raise TypeError(f"not JSON serialisable: {value!r}")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=json_default)
