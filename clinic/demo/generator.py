# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Seeded generation of demo rows, as plain dicts keyed by column name, table by table.

Pure: the rows depend only on the number of clients, the seed, the reference day and the staff
it is given (no database access, no clock). One ``random.Random(seed)`` drives everything, in a
fixed order, so the same inputs always give the same data. Every row respects the models'
invariants: one open episode per client, discharge after admission, Damm-checked MRNs,
normalised search keys, E.164 phones, plan trees with node ids, scored assessments, no double
booking of a clinician or a client.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from stdnum import damm

from clinic.assessments.definitions import Instrument, get_instrument
from clinic.clients.names import search_key

Row = dict[str, Any]
Chunk = dict[str, list[Row]]

#: Years of history before the reference day.
HISTORY_DAYS = 3 * 365
#: Open episodes have appointments booked this far ahead.
BOOKED_AHEAD_DAYS = 28
#: Reminders exist for appointments from this many days before the reference day onwards.
REMINDER_HISTORY_DAYS = 60
#: Appointment slots per clinician and working day (hourly from 9:00 local).
SLOTS_PER_DAY = 8
FIRST_SLOT_HOUR = 9
#: Clients per clinician and per intake coordinator, for sizing the staff of a site.
CLIENTS_PER_CLINICIAN = 400
CLIENTS_PER_INTAKE = 3000
#: Clients generated (and loaded) together; bounds memory whatever the total.
CHUNK_CLIENTS = 2000


@dataclass(frozen=True)
class SiteSpec:
    name: str
    display_name: str
    timezone: str
    is_otp: bool
    requires_supervisor_signature: bool
    #: Relative share of the clients.
    weight: int


SITES = (
    SiteSpec("Riverside Recovery Center", "Riverside Health", "America/New_York", True, False, 5),
    SiteSpec("Lakeview Outpatient Clinic", "Lakeview Health", "America/Chicago", False, True, 3),
    SiteSpec("Mesa Treatment Services", "Mesa Wellness", "America/Denver", True, False, 3),
    SiteSpec("Harbor Counseling", "Harbor Health Partners", "America/Los_Angeles", False, False, 2),
    SiteSpec("Pinecrest Medical Group", "Pinecrest Medical", "America/Phoenix", True, True, 2),
)


def site_count(clients: int) -> int:
    """Two sites for a small demo, one per 20,000 clients up to all five."""
    return max(2, min(len(SITES), -(-clients // 20_000)))


@dataclass(frozen=True)
class SiteStaff:
    """A seeded site and the ids of its staff, as the loader created them."""

    site_id: int
    spec: SiteSpec
    clinician_ids: tuple[int, ...]
    intake_ids: tuple[int, ...]
    supervisor_id: int


FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Christopher", "Karen",
    "Charles", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Ashley",
    "José", "María", "Luis", "Sofía", "Andrés", "Lucía", "Zoë", "Renée", "Chloé", "André",
    "Tyler", "Brittany", "Kyle", "Amber", "Cody", "Crystal", "Dustin", "Heather", "Travis", "Tiffany",
    "DeShawn", "Aaliyah", "Malik", "Imani", "Jamal", "Keisha", "Nguyen", "Mai", "Wei", "Aiyana",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramírez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Núñez", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "O'Brien", "McCarthy", "Kowalski", "Nguyen", "Tran", "Yazzie", "Begay", "Müller", "Dubois", "Van der Berg",
)
#: Area codes per site time zone, so a client's number looks local.
AREA_CODES = {
    "America/New_York": (212, 646, 718, 617, 215),
    "America/Chicago": (312, 773, 214, 612, 414),
    "America/Denver": (303, 720, 505, 801, 406),
    "America/Los_Angeles": (213, 415, 206, 503, 619),
    "America/Phoenix": (602, 480, 520, 623, 928),
}
REFERRAL_SOURCES = ("self", "emergency department", "primary care", "drug court", "family", "hospital", "peer recovery")
SUBSTANCES = ("fentanyl", "heroin", "oxycodone", "methamphetamine", "cocaine", "alcohol", "benzodiazepines")
PANEL = ("fentanyl", "opiates", "cocaine", "methamphetamine")
RISK_FLAGS = ("recent_overdose", "injection_use", "pregnant", "suicidal_ideation", "withdrawal_now")
UNCONVERTED_OUTCOMES = ("waitlisted", "referred_out", "info_only", "callback_requested", "no_answer")
#: TEDS reasons 1..7 with their weights among discharges.
DISCHARGE_REASONS = ((1, 24), (2, 42), (3, 8), (4, 10), (5, 5), (6, 2), (7, 9))
#: Outcomes of past appointments: kept about 74%, no-show about 15%.
PAST_STATUSES = (("completed", 72), ("no_show", 15), ("cancelled_by_client", 8), ("cancelled_by_clinic", 5))
DURATIONS = {
    "intake_assessment": 60,
    "individual_therapy": 50,
    "group_therapy": 60,
    "medication_visit": 20,
    "peer_support": 45,
    "drug_screen": 15,
    "plan_review": 30,
}


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, int], ...]) -> Any:
    total = sum(w for _, w in pairs)
    pick = rng.random() * total
    for value, weight in pairs:
        pick -= weight
        if pick < 0:
            return value
    return pairs[-1][0]


def mrn_for(body: int) -> str:
    """An MRN from its 7-digit body: the body and its Damm check digit."""
    text = str(body)
    return text + damm.calc_check_digit(text)


#: A stride coprime with 9,000,000, so ``i * stride mod 9e6`` visits every 7-digit body once.
_MRN_STRIDE = 7_368_787


@dataclass
class Ids:
    """The next id of each table: rows are inserted with explicit ids so children can refer to them."""

    next: dict[str, int] = field(default_factory=dict)

    def take(self, table: str) -> int:
        value = self.next.get(table, 1)
        self.next[table] = value + 1
        return value


class Generator:
    """Generates the demo rows for ``clients`` clients across the given sites, chunk by chunk."""

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
        self._mrn_offset = self.rng.randrange(9_000_000)
        self._mrn_index = 0
        self._site_pairs = tuple((s, s.spec.weight) for s in sites)

    # --- driving ----------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """The rows of every table, CHUNK_CLIENTS clients at a time."""
        done = 0
        while done < self.total:
            size = min(CHUNK_CLIENTS, self.total - done)
            chunk: Chunk = {}
            for _ in range(size):
                self._client(chunk)
            done += size
            yield chunk

    def _add(self, chunk: Chunk, table: str, row: Row) -> Row:
        chunk.setdefault(table, []).append(row)
        return row

    # --- people -----------------------------------------------------------------------------

    def _new_mrn(self) -> str:
        while True:
            body = 1_000_000 + (self._mrn_offset + self._mrn_index * _MRN_STRIDE) % 9_000_000
            self._mrn_index += 1
            mrn = mrn_for(body)
            if mrn not in self.taken_mrns:
                return mrn

    def _phone(self, site: SiteStaff) -> str:
        rng = self.rng
        area = rng.choice(AREA_CODES.get(site.spec.timezone, (212,)))
        exchange = rng.randrange(201, 999)
        if exchange % 100 == 11 or exchange == 555:
            exchange += 1
        return f"+1{area}{exchange:03d}{rng.randrange(10_000):04d}"

    def _instant(self, day: date, hour: int, minute: int, site: SiteStaff) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.zones[site.site_id]).astimezone(UTC)

    def _client(self, chunk: Chunk) -> None:
        rng = self.rng
        site: SiteStaff = _weighted(rng, self._site_pairs)
        client_id = self.ids.take("clients")
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        call_day = self.today - timedelta(days=rng.randrange(3, HISTORY_DAYS))
        clinician_id = rng.choice(site.clinician_ids)
        intake_id = rng.choice(site.intake_ids)
        created_at = self._instant(call_day, rng.randrange(8, 18), rng.randrange(60), site)
        phone = self._phone(site) if rng.random() < 0.9 else None
        email = None
        if rng.random() < 0.45:
            local = search_key(f"{first}.{last}").replace(" ", "").replace("'", "")
            email = f"{local}{rng.randrange(1, 100)}@example.org"
        client = self._add(
            chunk,
            "clients",
            {
                "id": client_id,
                "site_id": site.site_id,
                "mrn": self._new_mrn(),
                "first_name": first,
                "last_name": last,
                "search_first": search_key(first),
                "search_last": search_key(last),
                "date_of_birth": date(rng.randrange(1958, 2005), rng.randrange(1, 13), rng.randrange(1, 29)),
                "sex_at_birth": _weighted(rng, (("male", 60), ("female", 38), ("intersex", 1), ("unknown", 1))),
                "phone": phone,
                "email": email,
                "preferred_language": "es" if first in {"José", "María", "Luis", "Sofía", "Andrés", "Lucía"} else "en",
                "primary_clinician_id": clinician_id,
                "status": "prospective",
                "created_by_id": intake_id,
                "created_at": created_at,
                "updated_at": created_at,
            },
        )
        self._calls(chunk, site, client, call_day, created_at, intake_id)
        self._consents(chunk, site, client, call_day, clinician_id)
        intake_day = call_day + timedelta(days=rng.randrange(1, 10))
        admitted = rng.random() < 0.85 and intake_day < self.today
        if self.with_appointments:
            status = "completed" if admitted else _weighted(rng, (("no_show", 60), ("cancelled_by_client", 40)))
            if intake_day >= self.today:
                status = "scheduled"
            self._appointment(chunk, site, client_id, clinician_id, "intake_assessment", intake_day, status)
        if not admitted:
            return
        start = intake_day + timedelta(days=rng.randrange(0, 8))
        start = min(start, self.today)
        while start <= self.today:
            end = self._episode(chunk, site, client, start, clinician_id)
            if end is None or rng.random() > 0.2:
                break
            start = end + timedelta(days=rng.randrange(30, 240))

    def _calls(
        self, chunk: Chunk, site: SiteStaff, client: Row, call_day: date, at: datetime, intake_id: int
    ) -> None:
        rng = self.rng
        substances = sorted(rng.sample(SUBSTANCES, rng.choice((1, 1, 2, 3))))
        if "fentanyl" not in substances and rng.random() < 0.6:
            substances = sorted([*substances, "fentanyl"])
        # Callers who never became clients: about one for every three who did.
        for _ in range(1 if rng.random() < 0.35 else 0):
            other_day = self.today - timedelta(days=rng.randrange(1, HISTORY_DAYS))
            self._call(chunk, site, other_day, intake_id, client_id=None, outcome=rng.choice(UNCONVERTED_OUTCOMES))
        self._call(
            chunk, site, call_day, intake_id, client_id=client["id"], outcome="assessment_scheduled",
            at=at, substances=substances, caller=f"{client['first_name']} {client['last_name']}",
            phone=client["phone"],
        )

    def _call(
        self,
        chunk: Chunk,
        site: SiteStaff,
        day: date,
        intake_id: int,
        *,
        client_id: int | None,
        outcome: str,
        at: datetime | None = None,
        substances: list[str] | None = None,
        caller: str | None = None,
        phone: str | None = None,
    ) -> None:
        rng = self.rng
        at = at or self._instant(day, rng.randrange(8, 18), rng.randrange(60), site)
        flags = sorted(rng.sample(RISK_FLAGS, 1)) if rng.random() < 0.3 else []
        relation = "self" if rng.random() < 0.7 else rng.choice(("family", "friend", "provider", "court", "other"))
        follow_up = None
        if outcome in {"callback_requested", "waitlisted"}:
            follow_up = at + timedelta(days=rng.randrange(1, 8))
        self._add(
            chunk,
            "intake_calls",
            {
                "id": self.ids.take("intake_calls"),
                "site_id": site.site_id,
                "direction": "inbound" if rng.random() < 0.85 else "outbound",
                "occurred_at": at,
                "caller_name": caller or f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                "caller_relation": relation,
                "callback_phone": phone or self._phone(site),
                "referral_source": rng.choice(REFERRAL_SOURCES),
                "reason": "Seeking treatment for opioid use" if relation == "self" else "Calling about a relative",
                "substances": substances or sorted(rng.sample(SUBSTANCES, 1)),
                "risk_flags": flags,
                "has_risk_flags": bool(flags),
                "outcome": outcome,
                "follow_up_at": follow_up,
                "notes": None,
                "client_id": client_id,
                "converted_at": at + timedelta(minutes=15) if client_id else None,
                "created_by_id": intake_id,
                "created_at": at,
                "updated_at": at,
            },
        )

    def _consents(self, chunk: Chunk, site: SiteStaff, client: Row, day: date, staff_id: int) -> None:
        rng = self.rng
        channels = []
        if client["phone"] and rng.random() < 0.85:
            channels.append("sms")
        if client["email"] and rng.random() < 0.7:
            channels.append("email")
        client["_channels"] = channels
        at = client["created_at"]
        for channel in channels:
            self._add(
                chunk,
                "consents",
                {
                    "id": self.ids.take("consents"),
                    "client_id": client["id"],
                    "site_id": site.site_id,
                    "kind": "communication",
                    "channel": channel,
                    "granted_on": day,
                    "evidence": "signed intake form scanned to chart",
                    "revocation_acknowledged": False,
                    "created_by_id": staff_id,
                    "created_at": at,
                    "updated_at": at,
                },
            )
        if rng.random() < 0.12:
            self._add(
                chunk,
                "consents",
                {
                    "id": self.ids.take("consents"),
                    "client_id": client["id"],
                    "site_id": site.site_id,
                    "kind": "disclosure",
                    "patient_name": f"{client['first_name']} {client['last_name']}",
                    "recipient": rng.choice(("County Drug Court", "Dr. A. Primary, MD", "Community Health Plan")),
                    "purpose": "coordination of care",
                    "information_description": "attendance, medication and drug screen results",
                    "disclosing_party": site.spec.name,
                    "expires_on": day + timedelta(days=365),
                    "signed_on": day,
                    "signature_name": f"{client['first_name']} {client['last_name']}",
                    "revocation_acknowledged": True,
                    "created_by_id": staff_id,
                    "created_at": at,
                    "updated_at": at,
                },
            )

    # --- episodes ---------------------------------------------------------------------------

    def _episode(self, chunk: Chunk, site: SiteStaff, client: Row, admitted_on: date, clinician_id: int) -> date | None:
        """An episode from ``admitted_on`` with everything in it; returns its discharge day (None: open)."""
        rng = self.rng
        # Length of stay: a third leave early, the rest stay months to years.
        stay = int(rng.expovariate(1 / 40)) if rng.random() < 0.35 else int(rng.expovariate(1 / 320))
        discharged_on: date | None = admitted_on + timedelta(days=stay)
        if discharged_on >= self.today:  # type: ignore[operator]
            discharged_on = None
        reason = _weighted(rng, DISCHARGE_REASONS) if discharged_on else None
        levels = (("1-OTP", 70), ("1", 15), ("2.1", 15)) if site.spec.is_otp else (("1", 55), ("2.1", 35), ("2.5", 10))
        level = _weighted(rng, levels)
        episode_id = self.ids.take("episodes")
        asam_id = self._assessments(chunk, site, client["id"], clinician_id, admitted_on, discharged_on, level)
        admitted_at = self._instant(admitted_on, 10, 0, site)
        self._add(
            chunk,
            "episodes",
            {
                "id": episode_id,
                "client_id": client["id"],
                "site_id": site.site_id,
                "admitted_on": admitted_on,
                "level_of_care": level,
                "asam_edition": "3",
                "referral_source": rng.choice(REFERRAL_SOURCES),
                "assessment_id": asam_id,
                "discharged_on": discharged_on,
                "discharge_reason_code": reason,
                "discharge_note": None,
                "admitted_by_id": clinician_id,
                "discharged_by_id": clinician_id if discharged_on else None,
                "created_at": admitted_at,
                "updated_at": admitted_at,
            },
        )
        client["status"] = "active" if discharged_on is None else "discharged"
        last_day = discharged_on or self.today
        plan_id = self._plan(chunk, site, client, episode_id, admitted_on, discharged_on, clinician_id)
        medication = self._medication(chunk, site, client["id"], plan_id, admitted_on, discharged_on, clinician_id)
        self._screens(
            chunk, site, client["id"], plan_id, admitted_on, last_day, clinician_id, medication,
            with_cm=client["_with_cm"],
        )
        if self.with_appointments:
            self._care_appointments(chunk, site, client, clinician_id, admitted_on, discharged_on, medication)
        return discharged_on

    def _answers(self, code: str, level: str | None = None) -> dict[str, Any]:
        rng = self.rng
        instrument = self.instruments[code]
        answers: dict[str, Any] = {}
        for item in instrument.items:
            if item.type == "boolean":
                answers[item.key] = rng.random() < (0.75 if code == "DSM5-OUD" else 0.4)
            else:
                allowed = item.allowed or (0,)
                # Lower answers are commoner: a triangular pick towards the first values.
                answers[item.key] = allowed[int(rng.triangular(0, len(allowed), 0))]
        if code == "ASAM":
            answers["edition"] = "3"
            answers["level_of_care"] = level
        return answers

    def _assessments(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client_id: int,
        clinician_id: int,
        admitted_on: date,
        discharged_on: date | None,
        level: str,
    ) -> int:
        rng = self.rng
        plan: list[tuple[str, date]] = [
            (code, admitted_on) for code in ("DSM5-OUD", "COWS", "ASAM", "PHQ-9", "GAD-7")
        ]
        if rng.random() < 0.4:
            plan.append(("DAST-10", admitted_on))
        last = discharged_on or self.today
        follow_up = admitted_on + timedelta(days=90)
        while follow_up < last:
            plan.append(("PHQ-9", follow_up))
            follow_up += timedelta(days=90)
        asam_id = 0
        for index, (code, day) in enumerate(plan):
            at = self._instant(day, 9, 0, site) + timedelta(minutes=5 * min(index, 11))
            answers = self._answers(code, level)
            score = self.instruments[code].score(answers)
            signed = day < self.today or rng.random() < 0.5
            assessment_id = self.ids.take("assessments")
            if code == "ASAM":
                asam_id = assessment_id
            self._add(
                chunk,
                "assessments",
                {
                    "id": assessment_id,
                    "client_id": client_id,
                    "site_id": site.site_id,
                    "instrument": code,
                    "version": self.instruments[code].version,
                    "answers": answers,
                    "total_score": score.total,
                    "severity": score.severity,
                    "flags": score.flags,
                    "status": "signed" if signed else "draft",
                    "administered_at": at,
                    "clinician_id": clinician_id,
                    "signed_at": at + timedelta(minutes=30) if signed else None,
                    "signed_by_id": clinician_id if signed else None,
                    "revision": 1,
                    "created_at": at,
                    "updated_at": at,
                },
            )
        return asam_id

    # --- plans, medications, screens, CM ---------------------------------------------------

    def _node_id(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(32):08x}"

    def _plan_content(self, clinician_id: int, admitted_on: date, with_cm: bool) -> list[Row]:
        rng = self.rng
        interventions = [
            {"id": self._node_id("i"), "kind": "mat", "description": "Medication for opioid use disorder",
             "frequency": "daily", "responsible_user_id": clinician_id},
            {"id": self._node_id("i"), "kind": "cbt", "description": "Individual counselling (CBT)",
             "frequency": "weekly", "responsible_user_id": clinician_id},
        ]
        if with_cm:
            interventions.append({"id": self._node_id("i"), "kind": "contingency_management",
                                  "description": "Vouchers for negative screens", "frequency": "weekly",
                                  "responsible_user_id": clinician_id})
        problems = [
            {
                "id": self._node_id("p"),
                "description": "Opioid use disorder, severe",
                "goals": [
                    {
                        "id": self._node_id("g"),
                        "description": "Stop using illicit opioids",
                        "client_words": rng.choice(("I want my kids back", "I want to keep my job", "Stay alive")),
                        "objectives": [
                            {
                                "id": self._node_id("o"),
                                "description": "Negative fentanyl screens for 8 consecutive weeks",
                                "target_date": (admitted_on + timedelta(days=90)).isoformat(),
                                "status": rng.choice(("not_started", "in_progress", "achieved")),
                                "interventions": interventions,
                            }
                        ],
                    }
                ],
            }
        ]
        if rng.random() < 0.4:
            problems.append(
                {
                    "id": self._node_id("p"),
                    "description": "Depressed mood",
                    "goals": [
                        {
                            "id": self._node_id("g"),
                            "description": "Feel better day to day",
                            "client_words": None,
                            "objectives": [
                                {
                                    "id": self._node_id("o"),
                                    "description": "PHQ-9 below 10",
                                    "target_date": (admitted_on + timedelta(days=120)).isoformat(),
                                    "status": "in_progress",
                                    "interventions": [
                                        {"id": self._node_id("i"), "kind": "peer_support",
                                         "description": "Weekly peer recovery coaching", "frequency": "weekly",
                                         "responsible_user_id": None},
                                    ],
                                }
                            ],
                        }
                    ],
                }
            )
        return problems

    def _plan(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client: Row,
        episode_id: int,
        admitted_on: date,
        discharged_on: date | None,
        clinician_id: int,
    ) -> int:
        rng = self.rng
        plan_id = self.ids.take("plans")
        created_on = min(admitted_on + timedelta(days=rng.randrange(0, 8)), self.today)
        created_at = self._instant(created_on, 11, 0, site)
        with_cm = rng.random() < 0.25
        client["_with_cm"] = with_cm
        content = self._plan_content(clinician_id, admitted_on, with_cm)
        # Signed by clinician and client (and the supervisor where the site asks) within days.
        signed = created_on < self.today
        signers = [("clinician", clinician_id, "")]
        signers.append(("client", clinician_id, f"{client['first_name']} {client['last_name']}"))
        if site.spec.requires_supervisor_signature:
            signers.append(("supervisor", site.supervisor_id, ""))
        if signed:
            for role, user_id, name in signers:
                self._add(
                    chunk,
                    "plan_signatures",
                    {
                        "id": self.ids.take("plan_signatures"),
                        "plan_id": plan_id,
                        "revision": 1,
                        "role": role,
                        "user_id": user_id,
                        "signer_name": name or f"Clinician {user_id}",
                        "signed_at": created_at + timedelta(hours=1),
                    },
                )
        # Reviews: the first after 30 days, then every 90, while the episode is open.
        last = discharged_on or self.today
        due = created_on + timedelta(days=30)
        reviews: list[tuple[date, date]] = []
        while due <= last:
            late = rng.random() < 0.2
            shift = rng.randrange(1, 20) if late else -rng.randrange(0, 5)
            reviewed_on = due + timedelta(days=shift)
            if reviewed_on > self.today or (discharged_on is None and rng.random() < 0.03):
                break  # not reviewed yet: overdue
            reviews.append((due, reviewed_on))
            due = reviewed_on + timedelta(days=90)
        status = "draft" if not signed else ("closed" if discharged_on else "active")
        for index, (due_on, reviewed_on) in enumerate(reviews):
            closing = discharged_on is not None and index == len(reviews) - 1
            self._add(
                chunk,
                "plan_reviews",
                {
                    "id": self.ids.take("plan_reviews"),
                    "plan_id": plan_id,
                    "reviewed_on": reviewed_on,
                    "note": "Reviewed with the client." if not closing else "Closed at discharge.",
                    "outcome": "close" if closing and signed else "continue",
                    "was_overdue": reviewed_on > due_on,
                    "due_on": due_on,
                    "reviewer_id": clinician_id,
                    "created_at": self._instant(reviewed_on, 15, 0, site),
                },
            )
        self._add(
            chunk,
            "plan_revisions",
            {
                "id": self.ids.take("plan_revisions"),
                "plan_id": plan_id,
                "number": 1,
                "content": content,
                "status": "draft",
                "review_interval_days": None,
                "episode_id": episode_id,
                "created_by_id": clinician_id,
                "created_at": created_at,
                "reason": "created",
            },
        )
        closed = status == "closed"
        self._add(
            chunk,
            "plans",
            {
                "id": plan_id,
                "client_id": client["id"],
                "site_id": site.site_id,
                "episode_id": episode_id,
                "status": status,
                "revision": 1,
                "active_revision": 1 if signed else None,
                "content": content,
                "review_interval_days": None,
                "next_review_on": None if closed else due,
                "last_reviewed_on": reviews[-1][1] if reviews else None,
                "created_by_id": clinician_id,
                "updated_by_id": clinician_id,
                "version_id": 1 + (len(signers) if signed else 0) + len(reviews),
                "created_at": created_at,
                "updated_at": created_at,
            },
        )
        return plan_id

    def _medication(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client_id: int,
        plan_id: int,
        admitted_on: date,
        discharged_on: date | None,
        clinician_id: int,
    ) -> str | None:
        rng = self.rng
        if rng.random() > 0.75:
            return None
        if site.spec.is_otp:
            name: str = _weighted(rng, (("methadone", 60), ("buprenorphine", 25), ("buprenorphine_naloxone", 10),
                                   ("naltrexone_xr", 5)))
        else:
            name = _weighted(rng, (("buprenorphine_naloxone", 60), ("buprenorphine", 20), ("naltrexone_xr", 15),
                                   ("naltrexone_oral", 5)))
        start_on = min(admitted_on + timedelta(days=rng.randrange(0, 10)), discharged_on or self.today)
        # Some stop before discharge, leaving a gap in coverage.
        end_on = discharged_on
        if end_on is not None and rng.random() < 0.2 and (end_on - start_on).days > 20:
            end_on = start_on + timedelta(days=rng.randrange(10, (end_on - start_on).days))
        doses: dict[str, tuple[tuple[int, int], str]] = {
            "methadone": ((30, 120), "daily"),
            "buprenorphine": ((8, 24), "daily"),
            "buprenorphine_naloxone": ((8, 24), "daily"),
            "naltrexone_oral": ((50, 50), "daily"),
            "naltrexone_xr": ((380, 380), "every 28 days"),
        }
        (low, high), frequency = doses[name]
        medication_id = self.ids.take("medications")
        at = self._instant(start_on, 13, 0, site)
        steps = [("induction", low, start_on)]
        if high > low:
            maintenance = rng.randrange(low, high + 1, 2 if high - low > 2 else 1)
            steps.append(("stabilization", (low + maintenance) // 2, start_on + timedelta(days=7)))
            steps.append(("maintenance", maintenance, start_on + timedelta(days=35)))
        else:
            steps = [("maintenance", low, start_on)]
        last = end_on or self.today
        steps = [step for step in steps if step[2] <= last]
        phase, dose, _day = steps[-1]
        self._add(
            chunk,
            "medications",
            {
                "id": medication_id,
                "plan_id": plan_id,
                "client_id": client_id,
                "site_id": site.site_id,
                "medication": name,
                "dose": Decimal(dose),
                "unit": "mg",
                "frequency": frequency,
                "phase": phase,
                "prescriber_id": clinician_id,
                "start_on": start_on,
                "end_on": end_on,
                "override_reason": None,
                "created_by_id": clinician_id,
                "created_at": at,
                "updated_at": at,
            },
        )
        for step_phase, step_dose, day in steps:
            self._add(
                chunk,
                "medication_dose_changes",
                {
                    "id": self.ids.take("medication_dose_changes"),
                    "medication_id": medication_id,
                    "effective_on": day,
                    "dose": Decimal(step_dose),
                    "unit": "mg",
                    "frequency": frequency,
                    "phase": step_phase,
                    "reason": None if day == start_on else "titration",
                    "changed_by_id": clinician_id,
                    "changed_at": self._instant(day, 13, 0, site),
                },
            )
        return name

    def _screens(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client_id: int,
        plan_id: int,
        admitted_on: date,
        last_day: date,
        clinician_id: int,
        medication: str | None,
        *,
        with_cm: bool,
    ) -> None:
        """Weekly screens for the first month, then monthly; positivity falls with time in treatment."""
        rng = self.rng
        day = admitted_on
        negatives = 0
        count = 0
        prize_days: list[date] = []
        program: tuple[int, str] | None = None
        if with_cm:
            program = self._cm_program(chunk, site, client_id, plan_id, admitted_on, last_day, clinician_id)
        # Clients on an agonist are less often positive for fentanyl.
        base = 0.35 if medication in {"methadone", "buprenorphine", "buprenorphine_naloxone"} else 0.55
        while day <= last_day and count < 10:
            weeks = (day - admitted_on).days / 7
            count += 1
            at = self._instant(day, 8, rng.randrange(0, 60), site)
            missed = rng.random() < 0.08
            screen_id = self.ids.take("drug_screens")
            self._add(
                chunk,
                "drug_screens",
                {
                    "id": screen_id,
                    "client_id": client_id,
                    "site_id": site.site_id,
                    "collected_at": at,
                    "observed": rng.random() < 0.3,
                    "missed": missed,
                    "recorded_by_id": clinician_id,
                    "created_at": at,
                    "updated_at": at,
                },
            )
            if not missed:
                p_opioid = max(0.08, base * (0.93**weeks))
                results = {
                    "fentanyl": "positive" if rng.random() < p_opioid else "negative",
                    "opiates": "positive" if rng.random() < p_opioid * 0.5 else "negative",
                    "cocaine": "positive" if rng.random() < 0.12 else "negative",
                    "methamphetamine": "positive" if rng.random() < 0.1 else "negative",
                }
                if medication in {"buprenorphine", "buprenorphine_naloxone"}:
                    results["buprenorphine"] = "positive" if rng.random() < 0.9 else "negative"
                if rng.random() < 0.01:
                    results["fentanyl"] = "invalid"
                for substance in sorted(results):
                    self._add(
                        chunk,
                        "drug_screen_results",
                        {
                            "id": self.ids.take("drug_screen_results"),
                            "screen_id": screen_id,
                            "substance": substance,
                            "result": results[substance],
                        },
                    )
                negatives = negatives + 1 if results["fentanyl"] == "negative" else 0
                if program is not None and program[1] == "prize_draw" and negatives:
                    prize_days.append(day)
            day += timedelta(days=7 if weeks < 4 else 28)
        program_id = program[0] if program is not None else 0
        for prize_day in prize_days[:10] if program_id else ():
            self._add(
                chunk,
                "cm_prizes",
                {
                    "id": self.ids.take("cm_prizes"),
                    "program_id": program_id,
                    "prize_cents": _weighted(self.rng, ((0, 50), (100, 42), (2000, 7), (10000, 1))),
                    "drawn_at": self._instant(prize_day, 9, 30, site),
                    "recorded_by_id": clinician_id,
                },
            )

    def _cm_program(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client_id: int,
        plan_id: int,
        starts_on: date,
        last_day: date,
        clinician_id: int,
    ) -> tuple[int, str]:
        program_id = self.ids.take("cm_programs")
        schedule = "escalating_voucher" if self.rng.random() < 0.6 else "prize_draw"
        params = (
            {"start_cents": 250, "increment_cents": 125, "bonus_cents": 1000, "bonus_every": 3}
            if schedule == "escalating_voucher"
            else {"max_draws": 8}
        )
        at = self._instant(starts_on, 14, 0, site)
        self._add(
            chunk,
            "cm_programs",
            {
                "id": program_id,
                "plan_id": plan_id,
                "client_id": client_id,
                "site_id": site.site_id,
                "target_substances": ["fentanyl"],
                "schedule": schedule,
                "params": params,
                "annual_cap_cents": 75_000,
                "starts_on": starts_on,
                "ends_on": last_day if last_day < self.today else None,
                "created_by_id": clinician_id,
                "created_at": at,
                "updated_at": at,
            },
        )
        return program_id, schedule

    # --- appointments and reminders ----------------------------------------------------------

    def reserve(self, clinician_id: int, starts_at: datetime, ends_at: datetime) -> None:
        """Mark the slots an existing booking of the clinician overlaps, so no demo booking clashes with it."""
        zone = next((self.zones[s.site_id] for s in self.sites if clinician_id in s.clinician_ids), UTC)
        booked = self.booked.setdefault(clinician_id, set())
        local_start, local_end = starts_at.astimezone(zone), ends_at.astimezone(zone)
        hour = local_start.replace(minute=0, second=0, microsecond=0)
        while hour < local_end:
            slot = hour.hour - FIRST_SLOT_HOUR
            if 0 <= slot < SLOTS_PER_DAY:
                booked.add(hour.date().toordinal() * SLOTS_PER_DAY + slot)
            hour += timedelta(hours=1)

    def _slot(self, clinician_id: int, day: date) -> tuple[date, int]:
        """The first free slot of the clinician from ``day`` on (weekdays only), taken."""
        booked = self.booked.setdefault(clinician_id, set())
        start = self.rng.randrange(SLOTS_PER_DAY)
        while True:
            if day.weekday() < 5:
                ordinal = day.toordinal() * SLOTS_PER_DAY
                for offset in range(SLOTS_PER_DAY):
                    slot = (start + offset) % SLOTS_PER_DAY
                    if ordinal + slot not in booked:
                        booked.add(ordinal + slot)
                        return day, slot
            day += timedelta(days=1)

    def _appointment(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client_id: int,
        clinician_id: int,
        kind: str,
        day: date,
        status: str | None = None,
        channels: list[str] | None = None,
    ) -> None:
        rng = self.rng
        day, slot = self._slot(clinician_id, day)
        starts_at = self._instant(day, FIRST_SLOT_HOUR + slot, 0, site)
        ends_at = starts_at + timedelta(minutes=DURATIONS[kind])
        if day >= self.today:
            status = "confirmed" if rng.random() < 0.3 else "scheduled"
        elif status is None or status in {"scheduled", "confirmed"}:
            status = _weighted(rng, PAST_STATUSES)
        created_at = starts_at - timedelta(days=rng.randrange(3, 21))
        appointment_id = self.ids.take("appointments")
        self._add(
            chunk,
            "appointments",
            {
                "id": appointment_id,
                "site_id": site.site_id,
                "series_id": None,
                "kind": kind,
                "is_group": False,
                "clinician_id": clinician_id,
                "client_id": client_id,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "timezone": site.spec.timezone,
                "capacity": None,
                "location": "Room " + str(1 + slot % 6),
                "telehealth_url": None,
                "status": status,
                "confirmed_at": starts_at - timedelta(days=1) if status == "confirmed" else None,
                "checked_in_at": starts_at - timedelta(minutes=5) if status in {"checked_in", "completed"} else None,
                "completed_at": ends_at if status == "completed" else None,
                "cancelled_at": starts_at - timedelta(hours=20) if status.startswith("cancelled") else None,
                "no_show_at": starts_at + timedelta(minutes=20) if status == "no_show" else None,
                "cancel_reason": None,
                "sequence": 0,
                "created_by_id": clinician_id,
                "created_at": created_at,
                "updated_at": created_at,
            },
        )
        if self.with_reminders and channels and day >= self.today - timedelta(days=REMINDER_HISTORY_DAYS):
            self._reminders(chunk, site, client_id, appointment_id, starts_at, status, channels)

    def _care_appointments(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client: Row,
        clinician_id: int,
        admitted_on: date,
        discharged_on: date | None,
        medication: str | None,
    ) -> None:
        """Counselling weekly for a month, fortnightly to week 12, then every 8 weeks; medication and plan visits."""
        rng = self.rng
        end = discharged_on or self.today + timedelta(days=BOOKED_AHEAD_DAYS)
        channels: list[str] = client["_channels"]
        day = admitted_on + timedelta(days=1)
        visit = 0
        while day <= end:
            weeks = (day - admitted_on).days // 7
            self._appointment(chunk, site, client["id"], clinician_id, "individual_therapy", day, channels=channels)
            if medication and visit % 4 == 0:
                self._appointment(chunk, site, client["id"], clinician_id, "medication_visit", day + timedelta(days=2),
                                  channels=channels)
            if visit % 6 == 4:
                self._appointment(chunk, site, client["id"], clinician_id, "plan_review", day + timedelta(days=1),
                                  channels=channels)
            if rng.random() < 0.05:
                self._appointment(chunk, site, client["id"], clinician_id, "peer_support", day + timedelta(days=3),
                                  channels=channels)
            visit += 1
            day += timedelta(days=7 if weeks < 4 else 14 if weeks < 12 else 56)

    def _reminders(
        self,
        chunk: Chunk,
        site: SiteStaff,
        client_id: int,
        appointment_id: int,
        starts_at: datetime,
        status: str,
        channels: list[str],
    ) -> None:
        rng = self.rng
        for channel in channels:
            for lead in (2880, 120):
                due_at = starts_at - timedelta(minutes=lead)
                sent_at = None
                attempts = 0
                detail = None
                if due_at > self.now:
                    state = "cancelled" if status.startswith("cancelled") else "pending"
                elif status.startswith("cancelled") and rng.random() < 0.5:
                    state, detail = "cancelled", "appointment cancelled"
                else:
                    state = _weighted(rng, (("sent", 93), ("failed", 2), ("suppressed", 5)))
                    if state == "sent":
                        attempts, sent_at = 1, due_at + timedelta(seconds=rng.randrange(5, 90))
                    elif state == "failed":
                        attempts, detail = 6, "provider refused the message"
                    else:
                        detail = "quiet hours"
                at = due_at - timedelta(days=3)
                reminder_id = self.ids.take("reminders")
                self._add(
                    chunk,
                    "reminders",
                    {
                        "id": reminder_id,
                        "appointment_id": appointment_id,
                        "client_id": client_id,
                        "site_id": site.site_id,
                        "channel": channel,
                        "lead_time_minutes": lead,
                        "due_at": due_at,
                        "available_at": due_at,
                        "for_starts_at": starts_at,
                        "status": state,
                        "attempts": attempts,
                        "sent_at": sent_at,
                        "detail": detail,
                        "created_at": at,
                        "updated_at": sent_at or at,
                    },
                )
                if state in {"sent", "failed"}:
                    self._add(
                        chunk,
                        "notification_log",
                        {
                            "id": self.ids.take("notification_log"),
                            "at": sent_at or due_at,
                            "direction": "outbound",
                            "channel": channel,
                            "status": state,
                            "site_id": site.site_id,
                            "client_id": client_id,
                            "appointment_id": appointment_id,
                            "reminder_id": reminder_id,
                            "attempt": attempts,
                            "destination": "•••-•••-" + str(rng.randrange(1000, 10000)) if channel == "sms"
                            else "c•••@example.org",
                            "detail": detail or "delivered to the provider",
                            "provider_message_id": None,
                        },
                    )


def json_default(value: Any) -> Any:
    """JSON columns hold only plain values; dates never reach here, but keep the dump strict."""
    raise TypeError(f"not JSON serialisable: {value!r}")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=json_default)
