"""The contingency-management rules have one implementation: the ledger and the cm-incentives report agree.

Hand-worked cases first, then random histories (several programs per client, both schedules, caps
that differ between programs and years) driven through the ledger endpoint and the report, checked
against each other and against the rules of DOMAIN.md written out plainly below.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TODAY = datetime.now(UTC).date()
#: Histories cluster around the start of last year, so the annual cap restarts inside them.
ANCHOR = date(TODAY.year - 1, 1, 1)
REPORT_FROM = ANCHOR - timedelta(days=60)


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


@dataclass
class Clinic:
    """One site with its clinician, and the calls the tests make as that clinician (and as an admin)."""

    http: Any
    site_id: int
    headers: dict[str, str]
    admin_headers: dict[str, str]

    def new_client(self) -> tuple[int, int]:
        made = self.http.post(
            "/api/v1/clients?allow_duplicate=true",
            headers=self.headers,
            json={"site_id": self.site_id, "first_name": "Cam", "last_name": "Rule", "date_of_birth": "1985-05-05"},
        )
        assert made.status_code == 201, made.get_json()
        person = made.get_json()["id"]
        plan = self.http.post(f"/api/v1/clients/{person}/plans", headers=self.headers, json={"problems": []})
        assert plan.status_code == 201, plan.get_json()
        return person, plan.get_json()["id"]

    def program(self, plan_id: int, **body: Any) -> dict[str, Any]:
        made = self.http.post(f"/api/v1/plans/{plan_id}/cm-programs", headers=self.headers, json=body)
        assert made.status_code == 201, made.get_json()
        return made.get_json()

    def screen(self, person: int, at: datetime, results: dict[str, str] | None) -> dict[str, Any]:
        body = {"collected_at": at.isoformat(), **({"results": results} if results else {"missed": True})}
        made = self.http.post(f"/api/v1/clients/{person}/drug-screens", headers=self.headers, json=body)
        assert made.status_code == 201, made.get_json()
        return made.get_json()

    def prize(self, program_id: int, cents: int) -> dict[str, Any]:
        made = self.http.post(
            f"/api/v1/cm-programs/{program_id}/prizes", headers=self.headers, json={"prize_cents": cents}
        )
        assert made.status_code == 201, made.get_json()
        return made.get_json()

    def ledger(self, program_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/cm-programs/{program_id}/ledger", headers=self.headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def report(self, start: date) -> dict[str, Any]:
        response = self.http.get(
            "/api/v1/reports/cm-incentives",
            headers=self.admin_headers,
            query_string={"from": start.isoformat(), "to": TODAY.isoformat(), "site_id": self.site_id},
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()


@pytest.fixture
def new_clinic(make_site, make_user, bearer, client):
    """Makes a site of its own each call, so a report for that site counts only what the caller made."""
    admin_headers = bearer(make_user("admin"))

    def make() -> Clinic:
        site = make_site()
        return Clinic(client, site.id, bearer(make_user("clinician", sites=[site])), admin_headers)

    return make


def amounts(ledger: dict[str, Any]) -> list[int]:
    return [e["amount_cents"] for e in ledger["entries"]]


# --- hand-worked cases -------------------------------------------------------------------------------


def test_a_lower_cap_applies_even_before_its_program_has_entries(new_clinic):
    clinic = new_clinic()
    year = TODAY.year - 1
    person, plan = clinic.new_client()
    paying = clinic.program(
        plan, target_substances=["fentanyl"], schedule="escalating_voucher", starts_on=date(year, 2, 1).isoformat()
    )
    for day in (1, 3, 5, 7):
        clinic.screen(person, noon(date(year, 3, day)), {"fentanyl": "negative"})
    # A second program that year, capped at $5, with no screens in its window yet.
    later = clinic.program(
        plan,
        target_substances=["fentanyl"],
        schedule="escalating_voucher",
        starts_on=date(year, 6, 1).isoformat(),
        annual_cap_cents=500,
    )
    ledger = clinic.ledger(paying["id"])
    # Both programs are active that year, so the client's cap is the lower one, 500:
    # 250, then 250 of 375, then nothing of 1500 and 625 (2,750 earned before the cap).
    assert amounts(ledger) == [250, 250, 0, 0]
    assert [e["earned_before_cap_cents"] for e in ledger["entries"]] == [250, 375, 1500, 625]
    assert [e["capped"] for e in ledger["entries"]] == [False, True, True, True]
    assert ledger["total_cents"] == 500
    # Both are still active this year (no end date), nothing earned yet this year.
    assert ledger["cap_remaining_cents"] == 500
    assert clinic.ledger(later["id"])["entries"] == []
    body = clinic.report(date(year, 1, 1))
    assert body["rows"] == [
        {
            "schedule": "escalating_voucher",
            "programs": 1,
            "clients": 1,
            "negative_samples": 4,
            "vouchers_cents": 500,
            "prizes_cents": 0,
            "draws": 0,
            "capped_entries": 3,
        }
    ]
    assert body["summary"]["total_cents"] == ledger["total_cents"] == 500


def test_a_lower_cap_in_another_year_does_not_limit_this_one(new_clinic):
    clinic = new_clinic()
    earlier, later = TODAY.year - 2, TODAY.year - 1
    person, plan = clinic.new_client()
    old = clinic.program(
        plan,
        target_substances=["fentanyl"],
        schedule="escalating_voucher",
        starts_on=date(earlier, 1, 1).isoformat(),
        ends_on=date(earlier, 12, 31).isoformat(),
        annual_cap_cents=500,
    )
    new = clinic.program(
        plan, target_substances=["fentanyl"], schedule="escalating_voucher", starts_on=date(later, 1, 1).isoformat()
    )
    for year in (earlier, later):
        for day in (1, 3, 5, 7):
            clinic.screen(person, noon(date(year, 3, day)), {"fentanyl": "negative"})
    assert amounts(clinic.ledger(old["id"])) == [250, 250, 0, 0]
    ledger = clinic.ledger(new["id"])
    # The $5 program ended the year before: the new one pays in full under the default cap.
    assert amounts(ledger) == [250, 375, 1500, 625]
    assert ledger["cap_remaining_cents"] == 75_000
    body = clinic.report(date(earlier, 1, 1))
    assert [(r["programs"], r["vouchers_cents"], r["capped_entries"]) for r in body["rows"]] == [(2, 3250, 3)]


# --- random histories: ledger == report == the written rules -------------------------------------------

SUBSTANCES = ("fentanyl", "opiates", "cocaine")
SCREEN_DAYS = st.one_of(
    st.integers(-50, 40).map(lambda d: ANCHOR + timedelta(days=d)),
    st.integers(1, 40).map(lambda d: TODAY - timedelta(days=d)),
)
#: Program dates around the cap's yearly restart, including a start later this year (active this year,
#: no entries yet) and one next year (not active this year).
STARTS = (
    ANCHOR - timedelta(days=45),
    ANCHOR - timedelta(days=1),
    ANCHOR,
    ANCHOR + timedelta(days=20),
    date(TODAY.year, 1, 1),
    TODAY - timedelta(days=15),
    date(TODAY.year, 12, 31),
    date(TODAY.year + 1, 1, 1),
)
ENDS = (
    ANCHOR - timedelta(days=1),
    ANCHOR + timedelta(days=10),
    date(TODAY.year - 1, 12, 31),
    TODAY - timedelta(days=5),
)
PARAMS = {
    "escalating_voucher": ({}, {"start_cents": 100, "increment_cents": 50, "bonus_cents": 500, "bonus_every": 2}),
    "prize_draw": ({}, {"max_draws": 2}),
}
# Mostly negative, so streaks grow long enough for bonuses and the cap to matter.
RESULT = st.sampled_from(("negative", "negative", "negative", "negative", "positive", "invalid", None))


@st.composite
def programs(draw: st.DrawFn) -> dict[str, Any]:
    schedule = draw(st.sampled_from(sorted(PARAMS)))
    starts_on = draw(st.sampled_from(STARTS))
    ends_on = draw(st.one_of(st.none(), st.sampled_from([d for d in ENDS if d >= starts_on] or [None])))
    return {
        "schedule": schedule,
        "target_substances": draw(st.sampled_from((["fentanyl"], ["opiates"], ["fentanyl", "opiates"]))),
        "params": draw(st.sampled_from(PARAMS[schedule])),
        "annual_cap_cents": draw(st.sampled_from((0, 300, 1000, 2500, 75_000))),
        "starts_on": starts_on,
        "ends_on": ends_on,
        "prizes": draw(st.lists(st.sampled_from((0, 150, 700, 2000)), max_size=3)) if schedule == "prize_draw" else [],
    }


@st.composite
def screens(draw: st.DrawFn) -> list[tuple[date, dict[str, str] | None]]:
    days = draw(st.lists(SCREEN_DAYS, unique=True, max_size=10))
    made = []
    for day in days:
        missed = draw(st.integers(0, 7)) == 0
        results = {s: r for s in SUBSTANCES if (r := draw(RESULT)) is not None}
        made.append((day, None if missed or not results else results))
    return made


HISTORIES = st.lists(
    st.tuples(st.lists(programs(), min_size=1, max_size=3), screens()),
    min_size=1,
    max_size=2,
)


@dataclass
class Made:
    """What one client's history created, as the API returned it."""

    programs: list[dict[str, Any]] = field(default_factory=list)
    screens: list[dict[str, Any]] = field(default_factory=list)
    prizes: list[dict[str, Any]] = field(default_factory=list)


def _year_span(program: dict[str, Any]) -> tuple[int, float]:
    ends_on = program["ends_on"]
    return date.fromisoformat(program["starts_on"]).year, (
        date.fromisoformat(ends_on).year if ends_on else float("inf")
    )


def written_rules(made: Made, this_year: int) -> dict[int, dict[str, Any]]:
    """Each program's ledger by the rules of DOMAIN.md and docs/plans.md, spelt out one step at a time."""
    entries: list[dict[str, Any]] = []
    in_order = sorted(made.screens, key=lambda s: (datetime.fromisoformat(s["collected_at"]), s["id"]))
    for program in made.programs:
        params, streak = program["params"], 0
        first, last = date.fromisoformat(program["starts_on"]), program["ends_on"]
        for screen in in_order:
            at = datetime.fromisoformat(screen["collected_at"])
            if at.date() < first or (last and at.date() > date.fromisoformat(last)):
                continue
            negative = not screen["missed"] and all(
                screen["results"].get(s) == "negative" for s in program["target_substances"]
            )
            streak = streak + 1 if negative else 0
            entry = {"at": at, "order": 0, "program_id": program["id"], "id": screen["id"], "screen": screen["id"]}
            if program["schedule"] == "escalating_voucher":
                earned = 0
                if negative:
                    earned = params["start_cents"] + (streak - 1) * params["increment_cents"]
                    earned += params["bonus_cents"] if streak % params["bonus_every"] == 0 else 0
                entries.append({**entry, "kind": "voucher", "earned": earned, "draws": None})
            else:
                entries.append({**entry, "kind": "draws", "earned": 0, "draws": min(streak, params["max_draws"])})
    for prize in made.prizes:
        at = datetime.fromisoformat(prize["drawn_at"])
        entries.append(
            {
                "at": at,
                "order": 1,
                "program_id": prize["program_id"],
                "id": prize["id"],
                "screen": None,
                "kind": "prize",
                "earned": prize["prize_cents"],
                "draws": None,
            }
        )
    prize_years = {(p["program_id"], datetime.fromisoformat(p["drawn_at"]).year) for p in made.prizes}

    def active(program: dict[str, Any], year: int) -> bool:
        first, last = _year_span(program)
        return first <= year <= last or (program["id"], year) in prize_years

    def cap(year: int, also: int | None = None) -> int:
        return min(p["annual_cap_cents"] for p in made.programs if active(p, year) or p["id"] == also)

    paid: dict[int, int] = defaultdict(int)
    for entry in sorted(entries, key=lambda e: (e["at"], e["order"], e["program_id"], e["id"])):
        year = entry["at"].year
        entry["amount"] = min(entry["earned"], max(0, cap(year) - paid[year]))
        paid[year] += entry["amount"]
    ledgers = {}
    for program in made.programs:
        mine = sorted(
            (e for e in entries if e["program_id"] == program["id"]),
            key=lambda e: (e["at"], e["order"], e["program_id"], e["id"]),
        )
        ledgers[program["id"]] = {
            "entries": [
                {
                    "at": e["at"],
                    "kind": e["kind"],
                    "amount_cents": e["amount"],
                    "draws": e["draws"],
                    "drug_screen_id": e["screen"],
                    "capped": e["amount"] < e["earned"],
                    "earned_before_cap_cents": e["earned"],
                    "kept": False,
                }
                for e in mine
            ],
            "total_cents": sum(e["amount"] for e in mine),
            "cap_remaining_cents": max(0, cap(this_year, also=program["id"]) - paid[this_year]),
        }
    return ledgers


def report_from_ledgers(made: list[Made], ledgers: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The cm-incentives rows the ledgers add up to (every entry falls in the report's range)."""
    rows: dict[str, dict[str, Any]] = {}
    for index, history in enumerate(made):
        for program in history.programs:
            entries = ledgers[program["id"]]["entries"]
            if not entries:
                continue
            row = rows.setdefault(
                program["schedule"],
                {
                    "schedule": program["schedule"],
                    "programs": 0,
                    "clients": set(),
                    "negative_samples": 0,
                    "vouchers_cents": 0,
                    "prizes_cents": 0,
                    "draws": 0,
                    "capped_entries": 0,
                },
            )
            row["programs"] += 1
            row["clients"].add(index)
            for e in entries:
                # A negative sample earns: every voucher schedule here starts above 0, every draw count at 1.
                row["negative_samples"] += e["kind"] != "prize" and (
                    e["earned_before_cap_cents"] > 0 or bool(e["draws"])
                )
                row["vouchers_cents"] += e["amount_cents"] if e["kind"] == "voucher" else 0
                row["prizes_cents"] += e["amount_cents"] if e["kind"] == "prize" else 0
                row["draws"] += e["draws"] or 0
                row["capped_entries"] += e["capped"]
    return [{**row, "clients": len(row["clients"])} for _, row in sorted(rows.items())]


@settings(
    max_examples=30,
    deadline=None,
    # The function-scoped fixtures are factories and the test's rolled-back transaction: every example
    # makes a site of its own and reports on that site alone, so examples never see each other's rows.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories=HISTORIES)
def test_the_ledger_and_the_report_agree_with_the_rules(new_clinic, histories):
    clinic = new_clinic()
    made: list[Made] = []
    for program_specs, screen_specs in histories:
        person, plan = clinic.new_client()
        history = Made()
        for spec in program_specs:
            body = {k: v for k, v in spec.items() if k not in ("prizes", "ends_on") and v != {}}
            body["starts_on"] = spec["starts_on"].isoformat()
            if spec["ends_on"] is not None:
                body["ends_on"] = spec["ends_on"].isoformat()
            history.programs.append(clinic.program(plan, **body))
        for day, results in screen_specs:
            history.screens.append(clinic.screen(person, noon(day), results))
        for program, spec in zip(history.programs, program_specs, strict=True):
            history.prizes.extend(clinic.prize(program["id"], cents) for cents in spec["prizes"])
        made.append(history)

    expected: dict[int, dict[str, Any]] = {}
    for history in made:
        expected.update(written_rules(history, TODAY.year))
    ledgers = {}
    for history in made:
        for program in history.programs:
            ledger = clinic.ledger(program["id"])
            assert ledger["program_id"] == program["id"]
            for entry in ledger["entries"]:
                entry["at"] = datetime.fromisoformat(entry["at"])
            ledgers[program["id"]] = {k: v for k, v in ledger.items() if k != "program_id"}
    assert ledgers == expected

    body = clinic.report(REPORT_FROM)
    rows = report_from_ledgers(made, ledgers)
    assert body["rows"] == rows
    assert body["summary"] == {
        "total_cents": sum(r["vouchers_cents"] + r["prizes_cents"] for r in rows),
        "programs": sum(r["programs"] for r in rows),
        "negative_samples": sum(r["negative_samples"] for r in rows),
    }
    total_paid = sum(ledger["total_cents"] for ledger in ledgers.values())
    assert body["summary"]["total_cents"] == total_paid
