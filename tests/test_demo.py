"""The demo seeder: counts, invariants, plausible distributions, determinism, an intact audit log."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.assessments.definitions import get_instrument
from clinic.audit.operations import verify_chain
from clinic.auth.models import User
from clinic.clients.identifiers import is_valid_mrn
from clinic.clients.models import Client, Episode
from clinic.clients.names import search_key
from clinic.core.phones import to_e164
from clinic.core.time import local_today
from clinic.demo.generator import DOSING_HISTORY_DAYS, SITES, Generator, Rules, SiteStaff
from clinic.demo.loader import DEMO_PASSWORD, AlreadySeededError, seed
from clinic.extensions import db
from clinic.plans.content import node_ids, walk_tree
from clinic.plans.models import Plan

TODAY = date(2026, 3, 2)


#: The tables the generator fills when they exist (the loader passes every table of the schema).
TABLES = {
    "appointments",
    "reminders",
    "doses",
    "take_home_reviews",
    "naloxone_dispenses",
    "overdose_events",
    "staff_notifications",
    "medication_overrides",
}


def _staff(sites: int = 2) -> list[SiteStaff]:
    return [
        SiteStaff(
            site_id=i + 1,
            spec=SITES[i],
            clinician_ids=(10 + i * 10, 11 + i * 10),
            intake_ids=(19 + i * 10,),
            supervisor_id=10 + i * 10,
            clinician_names=(f"Clinician 1 ({SITES[i].display_name})", "Dana Ortiz"),
        )
        for i in range(sites)
    ]


def _pure_rows(clients: int, seed_value: int, sites: int = 2) -> dict[str, list[dict[str, Any]]]:
    generator = Generator(
        clients=clients, seed=seed_value, today=TODAY, sites=_staff(sites), first_ids={}, tables=TABLES
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    for chunk in generator.chunks():
        for table, batch in chunk.items():
            rows.setdefault(table, []).extend(batch)
    return rows


@functools.cache
def _many() -> dict[str, list[dict[str, Any]]]:
    """1,500 clients at the five sites (three of them OTPs)."""
    return _pure_rows(1500, 3, sites=5)


def test_same_seed_same_data_other_seed_other_data() -> None:
    first, again, other = _pure_rows(60, 7), _pure_rows(60, 7), _pure_rows(60, 8)
    assert first == again
    assert first["clients"] != other["clients"]


def test_distributions_are_plausible() -> None:
    rows = _pure_rows(1500, 3)
    statuses = Counter(c["status"] for c in rows["clients"])
    assert 0.05 < statuses["prospective"] / 1500 < 0.30
    past = [a for a in rows["appointments"] if a["starts_at"].date() < TODAY]
    counted = [a for a in past if a["status"] != "cancelled_by_clinic"]
    no_show_rate = sum(a["status"] == "no_show" for a in counted) / len(counted)
    assert 0.10 < no_show_rate < 0.30
    assert 8 < len(rows["appointments"]) / 1500 < 16
    fentanyl = [r["result"] for r in rows["drug_screen_results"] if r["substance"] == "fentanyl"]
    positivity = fentanyl.count("positive") / (fentanyl.count("positive") + fentanyl.count("negative"))
    assert 0.1 < positivity < 0.5
    reasons = Counter(e["discharge_reason_code"] for e in rows["episodes"] if e["discharged_on"])
    assert reasons.most_common(1)[0][0] == 2  # dropping out is the commonest way to leave
    future = [a for a in rows["appointments"] if a["starts_at"].date() >= TODAY]
    assert future and all(a["status"] in {"scheduled", "confirmed"} for a in future)
    assert {r["status"] for r in rows["reminders"]} >= {"pending", "sent"}


def _scheduling() -> Any:
    return pytest.importorskip("clinic.scheduling.models")


def _check_invariants() -> None:
    scheduling = _scheduling()
    appointment_model, released = scheduling.Appointment, scheduling.RELEASED_STATUSES
    clients = db.session.scalars(select(Client)).all()
    for client in clients:
        assert is_valid_mrn(client.mrn)
        assert client.search_first == search_key(client.first_name)
        assert client.search_last == search_key(client.last_name)
        if client.phone:
            assert to_e164(client.phone) == client.phone
    assert len({c.mrn for c in clients}) == len(clients)
    episodes = db.session.scalars(select(Episode).order_by(Episode.client_id, Episode.admitted_on)).all()
    by_client: dict[int, list[Episode]] = {}
    for episode in episodes:
        assert episode.discharged_on is None or episode.discharged_on >= episode.admitted_on
        assert episode.discharged_on is None or episode.discharged_on < TODAY
        by_client.setdefault(episode.client_id, []).append(episode)
    for client in clients:
        own = by_client.get(client.id, [])
        assert sum(e.is_open for e in own) <= 1
        expected = "prospective" if not own else "active" if own[-1].is_open else "discharged"
        assert client.status.value == expected
        for earlier, later in itertools.pairwise(own):
            assert earlier.discharged_on is not None and later.admitted_on >= earlier.discharged_on
    from clinic.assessments.models import Assessment

    for assessment in db.session.scalars(select(Assessment)):
        instrument = get_instrument(assessment.instrument)
        assert instrument is not None
        score = instrument.score(instrument.validate(assessment.answers))
        assert (score.total, score.severity, score.flags) == (
            assessment.total_score,
            assessment.severity,
            assessment.flags,
        )
    for plan in db.session.scalars(select(Plan)):
        ids = [node["id"] for _path, _level, node in walk_tree(plan.content)]
        assert len(ids) == len(node_ids(plan.content))
        assert all(i[0] in "pgoi" and len(i) == 9 for i in ids)
    held = [a for a in db.session.scalars(select(appointment_model)) if a.status not in released]
    for key in ("clinician_id", "client_id"):
        spans: dict[int, list[Any]] = {}
        for appointment in held:
            spans.setdefault(getattr(appointment, key), []).append(appointment)
        for booked in spans.values():
            booked.sort(key=lambda a: a.starts_at)
            for a, b in itertools.pairwise(booked):
                assert a.ends_at <= b.starts_at, f"{key} double-booked: {a.id} and {b.id}"


def test_seed_loads_valid_rows_and_leaves_the_audit_log_intact(app: Flask) -> None:
    appointment_model = _scheduling().Appointment
    with app.app_context():
        report = seed(clients=40, seed=5, today=TODAY)
        db.session.commit()
        assert report.rows["clients"] == 40
        assert db.session.scalar(select(func.count()).select_from(Client)) == 40
        assert (
            db.session.scalar(select(func.count()).select_from(appointment_model)) == report.rows["appointments"] > 200
        )
        _check_invariants()
        assert verify_chain().broken is None
        with pytest.raises(AlreadySeededError):
            seed(clients=5, seed=6, today=TODAY)
        db.session.rollback()
        again = seed(clients=5, seed=6, today=TODAY, force=True)
        db.session.commit()
        assert again.rows["clients"] == 5
        assert db.session.scalar(select(func.count()).select_from(Client)) == 45
        # Staff are reused, not duplicated.
        admins = db.session.scalar(select(func.count()).select_from(User).where(User.email.like("admin@demo.%")))
        assert admins == 1


def test_cli_seeds_and_demo_staff_can_sign_in(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["demo", "seed", "--clients", "8", "--seed", "2", "--today", TODAY.isoformat(), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "Seeded 8 clients" in result.output
    assert DEMO_PASSWORD in result.output
    refused = runner.invoke(args=["demo", "seed", "--clients", "8", "--quiet"])
    assert refused.exit_code == 1
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    client = app.test_client()
    response = client.post(
        "/api/v1/auth/login", json={"email": "clinician1.riverside@demo.example.org", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    listed = client.get("/api/v1/clients?limit=5")
    assert listed.status_code == 200
    assert listed.get_json()["items"]
    start = f"{(TODAY - timedelta(days=30)).isoformat()}T00:00:00Z"
    user_id = response.get_json()["user"]["id"]
    appointments = client.get(
        "/api/v1/appointments", query_string={"clinician_id": user_id, "from": start, "to": f"{TODAY}T00:00:00Z"}
    )
    assert appointments.status_code == 200, appointments.get_json()
    assert appointments.get_json()["items"]


# --- medication safety, the dosing record, overdose prevention, safety alerts ------------------------------

NOW = datetime.combine(TODAY, time(12, 0), tzinfo=UTC)
AGONISTS = {"methadone", "buprenorphine", "buprenorphine_naloxone"}
BUPRENORPHINE = {"buprenorphine", "buprenorphine_naloxone"}
OPIOIDS = {"fentanyl", "opiates", "heroin", "oxycodone", "buprenorphine", "methadone"}
#: DOMAIN.md, "Medication safety": usual and absolute maxima (mg per day, per injection for XR).
LIMITS = {
    "buprenorphine": (24, 32),
    "buprenorphine_naloxone": (24, 32),
    "methadone": (200, 400),
    "naltrexone_oral": (100, 150),
    "naltrexone_xr": (380, 380),
}


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    found: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        found[row[key]].append(row)
    return found


def _zones(sites: int = 5) -> dict[int, ZoneInfo]:
    return {s.site_id: ZoneInfo(s.spec.timezone) for s in _staff(sites)}


def _history(rows: dict[str, list[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    changes = _grouped(rows["medication_dose_changes"], "medication_id")
    return {med: sorted(entries, key=lambda c: (c["effective_on"], c["id"])) for med, entries in changes.items()}


def _in_force(med: dict[str, Any], history: list[dict[str, Any]], day: date) -> Decimal | None:
    """The dose in force on ``day``: the latest entry effective by then that was not entered in error."""
    if day < med["start_on"] or (med["end_on"] is not None and day > med["end_on"]):
        return None
    counted = [c for c in history if c.get("entered_in_error_at") is None and c["effective_on"] <= day]
    return counted[-1]["dose"] if counted else None


def test_medication_orders_keep_the_safety_rules_or_record_their_override() -> None:
    rows = _many()
    zones = _zones()
    history = _history(rows)
    overrides = _grouped(rows["medication_overrides"], "medication_id")
    cows = _grouped([a for a in rows["assessments"] if a["instrument"] == "COWS"], "client_id")
    screens = _grouped(rows["drug_screens"], "client_id")
    positives = {
        r["screen_id"] for r in rows["drug_screen_results"] if r["substance"] in OPIOIDS and r["result"] == "positive"
    }
    for med in rows["medications"]:
        name, zone = med["medication"], zones[med["site_id"]]
        entries = history[med["id"]]
        counted = [c for c in entries if c.get("entered_in_error_at") is None]
        overridden = {o["rule"] for o in overrides.get(med["id"], [])}
        assert counted[0]["effective_on"] == med["start_on"]
        if name in BUPRENORPHINE and counted[0]["phase"] == "induction":
            # A COWS of 8 or more in the 24 hours before the first dose (the end of its day, at the latest).
            end_of_day = datetime.combine(med["start_on"] + timedelta(days=1), time.min, tzinfo=zone)
            scores = [
                a["total_score"]
                for a in cows[med["client_id"]]
                if end_of_day - timedelta(hours=24) <= a["administered_at"] <= end_of_day
            ]
            assert max(scores, default=0) >= 8 or "induction_requires_cows" in overridden, med
        usual, absolute = LIMITS[name]
        for change in counted:
            assert change["dose"] <= absolute
            assert change["dose"] <= usual or "dose_above_limit" in overridden, med
        if name == "methadone":
            assert counted[0]["dose"] <= 50
        if name.startswith("naltrexone"):
            since = datetime.combine(med["start_on"] - timedelta(days=6), time.min, tzinfo=zone)
            until = datetime.combine(med["start_on"] + timedelta(days=1), time.min, tzinfo=zone)
            assert not [
                s for s in screens[med["client_id"]] if since <= s["collected_at"] < until and s["id"] in positives
            ], med
        # The order shows the dose in force on the reference day (or on its last day, once ended).
        shown = _in_force(med, entries, min(TODAY, med["end_on"] or TODAY))
        assert med["dose"] == shown
    kinds = Counter(o["rule"] for o in rows["medication_overrides"])
    assert kinds["induction_requires_cows"] >= 1 and kinds["dose_above_limit"] >= 1
    assert all(o["reason"] for o in rows["medication_overrides"])
    in_error = [c for c in rows["medication_dose_changes"] if c.get("entered_in_error_at")]
    assert in_error and all(c["entered_in_error_reason"] and c["entered_in_error_by_id"] for c in in_error)
    for wrong in in_error:  # entered again right after, the same day, with another dose
        again = [
            c
            for c in history[wrong["medication_id"]]
            if c["id"] > wrong["id"] and c["effective_on"] == wrong["effective_on"]
        ]
        assert again and again[0]["dose"] != wrong["dose"]
    assert [c for c in rows["medication_dose_changes"] if c["effective_on"] > TODAY]  # scheduled changes


def test_the_dosing_record_follows_the_orders_and_the_take_home_rules() -> None:
    rows = _many()
    zones = _zones()
    otps = {s.site_id for s in _staff(5) if s.spec.is_otp}
    meds = {m["id"]: m for m in rows["medications"]}
    history = _history(rows)
    episodes = _grouped(rows["episodes"], "client_id")
    reviews = _grouped(rows["take_home_reviews"], "client_id")
    rules = Rules()
    doses = rows["doses"]
    counted = [d for d in doses if d["voided_at"] is None]
    split_parts: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
    full: Counter[tuple[int, date]] = Counter()
    for dose in doses:
        med = meds[dose["medication_id"]]
        assert dose["site_id"] in otps and (med["client_id"], med["site_id"]) == (dose["client_id"], dose["site_id"])
        assert dose["given_on"] == dose["given_at"].astimezone(zones[dose["site_id"]]).date() < TODAY
        assert dose["substance"] == med["medication"] and dose["lot_number"] and dose["dispenser_initials"]
        if med["medication"] != "naltrexone_xr":
            assert dose["given_on"] >= TODAY - timedelta(days=DOSING_HISTORY_DAYS)
        ordered = _in_force(med, history[med["id"]], dose["given_on"])
        assert ordered is not None
        if dose["voided_at"] is not None:
            assert dose["void_reason"] and dose["voided_at"] > dose["given_at"]
            continue
        if dose["kind"] == "observed":
            covers = 27 if med["medication"] == "naltrexone_xr" else 0  # an injection covers 28 days
            assert (dose["covered_from"], dose["covered_until"], dose["take_home_days"]) == (
                dose["given_on"],
                dose["given_on"] + timedelta(days=covers),
                0,
            )
            if dose["is_split"]:
                split_parts[med["id"], dose["given_on"]] += dose["amount_mg"]
            else:
                assert dose["amount_mg"] == ordered
                full[med["id"], dose["given_on"]] += 1
            continue
        # A take-home: the day's dose for each day after the visit, within the limit for the day in treatment,
        # after a review in the last 90 days that found every criterion met.
        days = dose["take_home_days"]
        assert (dose["covered_from"], dose["covered_until"]) == (
            dose["given_on"] + timedelta(days=1),
            dose["given_on"] + timedelta(days=days),
        )
        assert all(
            _in_force(med, history[med["id"]], dose["given_on"] + timedelta(days=k)) == dose["amount_mg"]
            for k in range(days + 1)
        )
        (episode,) = [
            e
            for e in episodes[dose["client_id"]]
            if e["admitted_on"] <= dose["given_on"]
            and (e["discharged_on"] is None or e["discharged_on"] >= dose["given_on"])
        ]
        assert 1 <= days <= rules.max_take_home_days((dose["given_on"] - episode["admitted_on"]).days)
        before = [r for r in reviews[dose["client_id"]] if r["decided_at"] < dose["given_at"]]
        latest = max(before, key=lambda r: r["decided_at"])
        assert latest["decided_at"] > dose["given_at"] - timedelta(days=90)
        assert False not in latest["criteria"].values()
        assert set(latest["criteria"]) == {
            "no_active_sud_or_risky_conditions",
            "regular_attendance",
            "no_serious_behavioural_problems",
            "no_recent_diversion",
            "safe_transport_and_storage",
            "other_considerations",
        }
    assert max(full.values()) == 1  # one full observed dose of an order a day
    assert all(
        not full[key] and total <= _in_force(meds[key[0]], history[key[0]], key[1])  # type: ignore[operator]
        for key, total in split_parts.items()
    )
    # No day is dosed twice: a take-home covers days nothing else does.
    for client_doses in _grouped(counted, "client_id").values():
        taken_home = [d for d in client_doses if d["kind"] == "take_home"]
        seen = {d["given_on"] for d in client_doses if d["kind"] == "observed"}
        for dose in taken_home:
            days = {dose["covered_from"] + timedelta(days=k) for k in range(dose["take_home_days"])}
            assert not days & seen
            seen |= days
    assert Counter(d["kind"] for d in counted)["take_home"] > 50
    assert max(d["take_home_days"] for d in doses) > 14 and split_parts and len(doses) > len(counted)
    assert any(not [r for r in rs if False in r["criteria"].values()] for rs in reviews.values())
    assert any([r for r in rs if False in r["criteria"].values()] for rs in reviews.values())


def test_missed_doses_raise_one_alert_to_the_clinician() -> None:
    rows = _many()
    clients = {c["id"]: c for c in rows["clients"]}
    otps = {s.site_id for s in _staff(5) if s.spec.is_otp}
    yesterday = TODAY - timedelta(days=1)
    covered: dict[int, set[date]] = defaultdict(set)
    for dose in rows["doses"]:
        if dose["voided_at"] is None:
            covered[dose["medication_id"]] |= {
                dose["covered_from"] + timedelta(days=k)
                for k in range((dose["covered_until"] - dose["covered_from"]).days + 1)
            }
    alerts = _grouped(
        [n for n in rows["staff_notifications"] if n["kind"] == "missed_doses" and not n["escalated"]], "client_id"
    )
    streaks = 0
    for med in rows["medications"]:
        if (
            med["medication"] not in AGONISTS
            or med["site_id"] not in otps
            or med["end_on"] is not None
            or med["start_on"] > yesterday
            or clients[med["client_id"]]["status"] != "active"
        ):
            continue
        days = covered[med["id"]]
        last = max(d for d in days if d <= yesterday)
        first = min(days)
        # Within the record, never three days in a row without a dose...
        runs = [k for k in range((last - first).days) if not {first + timedelta(days=k + j) for j in range(3)} & days]
        assert not runs, med
        # ...except the current run of a few clients, each alerted once, to their clinician.
        missed = (yesterday - last).days
        raised = alerts.pop(med["client_id"], [])
        if missed >= 3:
            streaks += 1
            (alert,) = raised
            assert alert["alert_key"] == f"missed_doses:{med['client_id']}:{last + timedelta(days=1)}"
            assert alert["user_id"] == clients[med["client_id"]]["primary_clinician_id"]
            assert alert["resource"] == "medication" and alert["resource_id"] == str(med["id"])
        else:
            assert not raised
    assert streaks >= 2 and not alerts


def test_safety_alerts_nobody_acknowledged_in_time_were_escalated_once() -> None:
    rows = _many()
    clients = {c["id"]: c for c in rows["clients"]}
    supervisors = {s.site_id: s.supervisor_id for s in _staff(5)}
    copies = _grouped([n for n in rows["staff_notifications"] if n["escalated"]], "alert_key")
    firsts = [n for n in rows["staff_notifications"] if not n["escalated"]]
    open_escalated = 0
    for alert in firsts:
        client = clients[alert["client_id"]]
        assert alert["user_id"] == client["primary_clinician_id"]
        assert client["first_name"] not in alert["title"] + alert["body"]
        assert client["last_name"] not in alert["title"] + alert["body"]
        escalated = copies.pop(alert["alert_key"], [])
        acknowledged = alert["acknowledged_at"]
        overdue = alert["created_at"] + timedelta(hours=4) <= NOW
        if overdue and (acknowledged is None or acknowledged > alert["created_at"] + timedelta(hours=4)):
            (copy,) = escalated
            assert copy["user_id"] == supervisors[client["site_id"]]
            assert copy["created_at"] == alert["escalated_at"] >= alert["created_at"] + timedelta(hours=4)
            assert copy["title"] == f"Not acknowledged: {alert['title']}"
            open_escalated += acknowledged is None
        else:
            assert not escalated and alert["escalated_at"] is None
    assert not copies and open_escalated >= 2
    assert {n["kind"] for n in firsts} == {"missed_doses", "overdose"}


def test_overdose_prevention_at_realistic_rates() -> None:
    rows = _many()
    episodes = _grouped(rows["episodes"], "client_id")
    active_agonist = {
        m["client_id"] for m in rows["medications"] if m["medication"] in AGONISTS and m["end_on"] is None
    }
    year_ago = TODAY - timedelta(days=365)
    holding = {d["client_id"] for d in rows["naloxone_dispenses"] if d["dispensed_on"] > year_ago}
    assert 0.55 < len(active_agonist & holding) / len(active_agonist) < 0.8
    assert sum(d["education_given"] for d in rows["naloxone_dispenses"]) / len(rows["naloxone_dispenses"]) > 0.9
    events = rows["overdose_events"]
    years_in_treatment = (
        sum(((e["discharged_on"] or TODAY) - e["admitted_on"]).days + 1 for e in rows["episodes"]) / 365
    )
    assert 1 < 100 * len(events) / years_in_treatment < 10  # a few per hundred clients a year
    fatal = [e for e in events if e["fatal"]]
    assert 0 < len(fatal) <= 1500 // 400 < len(events) / 4
    assert len({e["source"] for e in events}) >= 3
    last_dosed = {d["client_id"]: d["covered_until"] for d in sorted(rows["doses"], key=lambda d: d["covered_until"])}
    for event in fatal:
        (episode,) = [e for e in episodes[event["client_id"]] if e["id"] == event["discharged_episode_id"]]
        assert (episode["discharged_on"], episode["discharge_reason_code"]) == (event["occurred_on"], 6)
        assert event["death_confirmed_at"] is not None and event["death_confirmed_by_id"] is not None
        assert episode is max(episodes[event["client_id"]], key=lambda e: e["admitted_on"])  # no readmission
        assert last_dosed.get(event["client_id"], date.min) < event["occurred_on"]


@pytest.mark.parametrize("seed_value", [1, 2])
def test_the_default_demo_has_at_most_one_fatal_overdose(seed_value: int) -> None:
    rows = _pure_rows(200, seed_value)
    assert sum(e["fatal"] for e in rows.get("overdose_events", [])) <= 1


def test_the_demo_passes_the_rules_and_reads_back_through_the_api(
    app: Flask, client: FlaskClient, bearer: Callable[[User], dict[str, str]]
) -> None:
    """What the periodic jobs and the API make of the seeded records: nothing to add, nothing refused."""
    from clinic.auth.models import Site
    from clinic.dosing import operations as dosing
    from clinic.dosing.models import Dose, TakeHomeReview
    from clinic.notify.models import StaffNotification
    from clinic.notify.staff import escalate_safety_alerts
    from clinic.overdose.models import OverdoseEvent
    from clinic.plans import medication_rules as rules
    from clinic.plans.models import Medication, MedicationDoseChange, MedicationOverride

    with app.app_context():
        today = local_today(SITES[0].timezone)  # the OTP's today: its yesterday ends the dosing record
        seed(clients=60, seed=9, today=today)
        db.session.commit()
        for med in db.session.scalars(select(Medication)):
            history = db.session.scalars(
                select(MedicationDoseChange)
                .where(MedicationDoseChange.medication_id == med.id, MedicationDoseChange.entered_in_error_at.is_(None))
                .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
            ).all()
            first = history[0]
            order = rules.ProposedOrder(
                client_id=med.client_id,
                site=db.session.get_one(Site, med.site_id),
                medication=med.medication,
                dose=first.dose,
                unit=first.unit,
                phase=first.phase,
                start_on=med.start_on,
                end_on=med.end_on,
                dose_effective_on=med.start_on,
                first_dose_at=med.created_at,
                medication_id=med.id,
            )
            broken = rules.check(order) + [
                b
                for change in history[1:]
                for b in rules.dose_above_limit(
                    dataclasses.replace(order, dose=change.dose, dose_effective_on=change.effective_on)
                )
            ]
            overridden = set(
                db.session.scalars(select(MedicationOverride.rule).where(MedicationOverride.medication_id == med.id))
            )
            assert all(b.overridable and b.rule in overridden for b in broken), (med.id, broken)
        # Every run of missed days is already alerted, every overdue alert already escalated.
        assert dosing.alert_missed_doses() == 0
        now = datetime.combine(today, time(12, 0), tzinfo=UTC)
        assert escalate_safety_alerts(now=now) == 0
        otp = db.session.scalars(select(Site).where(Site.is_otp.is_(True))).one()
        missing = {m.client_id: m for m in dosing.missed_doses(otp, at_least=3)}
        alerted = db.session.scalars(
            select(StaffNotification).where(
                StaffNotification.kind == "missed_doses", StaffNotification.escalated.is_(False)
            )
        ).all()
        assert missing and {a.client_id for a in alerted} == set(missing)
        dosed = sorted(set(db.session.scalars(select(Dose.client_id))))
        busiest, busiest_count = db.session.execute(
            select(Dose.given_on, func.count()).group_by(Dose.given_on).order_by(func.count().desc(), Dose.given_on)
        ).first()  # type: ignore[misc]
        reviewed = db.session.scalars(select(TakeHomeReview).order_by(TakeHomeReview.decided_at.desc())).first()
        assert reviewed is not None
        event = db.session.scalars(select(OverdoseEvent).order_by(OverdoseEvent.id.desc())).first()
        assert event is not None
        overridden_med = db.session.scalars(select(MedicationOverride.medication_id)).first()
        supervisor = db.session.scalars(select(User).where(User.email.like("clinician1.riverside@%"))).one()
        db.session.expunge_all()
    headers = bearer(supervisor)
    for client_id in dosed:
        response = client.get(f"/api/v1/clients/{client_id}/doses", headers=headers, query_string={"limit": 100})
        assert response.status_code == 200 and response.get_json()["items"], client_id
        assert client.get(f"/api/v1/clients/{client_id}/take-home-eligibility", headers=headers).status_code == 200
    for client_id, run in missing.items():
        shown = client.get(f"/api/v1/clients/{client_id}", headers=headers).get_json()
        assert shown["missed_dose_days"] == run.missed_days >= 3
        assert shown["last_dose_on"] == run.last_covered_on.isoformat()  # type: ignore[union-attr]
    eligibility = client.get(f"/api/v1/clients/{reviewed.client_id}/take-home-eligibility", headers=headers)
    assert eligibility.get_json()["decided_at"] is not None
    log = client.get(
        f"/api/v1/sites/{otp.id}/dispensing-log", headers=headers, query_string={"date": busiest.isoformat()}
    )
    assert log.status_code == 200 and len(log.get_json()["items"]) == busiest_count
    events = client.get(f"/api/v1/clients/{event.client_id}/overdose-events", headers=headers)
    assert events.status_code == 200 and event.id in [e["id"] for e in events.get_json()["items"]]
    assert client.get(f"/api/v1/clients/{event.client_id}/naloxone", headers=headers).status_code == 200
    with app.app_context():
        med = db.session.get_one(Medication, overridden_med)
    medications = client.get(f"/api/v1/clients/{med.client_id}/medications", headers=headers).get_json()["items"]
    (shown_med,) = [m for m in medications if m["id"] == med.id]
    assert shown_med["overrides"] and shown_med["overrides"][0]["reason"]
    alerts = client.get("/api/v1/staff-notifications", headers=headers, query_string={"limit": 100}).get_json()
    assert any(n["escalated"] for n in alerts["items"])
