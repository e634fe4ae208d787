"""Medication safety rules (docs/medications.md): each rule at its edges, overrides, transfers,
scheduled changes and dose-history entries entered in error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.core import time as clinic_time
from clinic.core.celery import beat_schedule
from clinic.extensions import db
from clinic.plans import medications
from clinic.plans.models import Medication
from clinic.plans.tasks import apply_due_dose_changes

ZONE = ZoneInfo("America/New_York")


def site_now():
    return datetime.now(UTC)


def site_today():
    return site_now().astimezone(ZONE).date()


def day(offset):
    return (site_today() + timedelta(days=offset)).isoformat()


def noon(offset):
    """Noon at the site, ``offset`` days from its today, as an RFC 3339 instant."""
    local = datetime.combine(site_today() + timedelta(days=offset), datetime.min.time()).replace(hour=12, tzinfo=ZONE)
    return local.isoformat()


COWS_KEYS = {
    "pulse": [0, 1, 2, 4],
    "sweating": [0, 1, 2, 3, 4],
    "restlessness": [0, 1, 3, 5],
    "pupil_size": [0, 1, 2, 5],
    "bone_joint_aches": [0, 1, 2, 4],
    "runny_nose": [0, 1, 2, 4],
    "gi_upset": [0, 1, 2, 3, 5],
    "tremor": [0, 1, 2, 4],
    "yawning": [0, 1, 2, 4],
    "anxiety": [0, 1, 2, 4],
    "gooseflesh": [0, 3, 5],
}


def cows_answers(total):
    answers = dict.fromkeys(COWS_KEYS, 0)
    left = total
    for key, allowed in sorted(COWS_KEYS.items(), key=lambda kv: -max(kv[1])):
        answers[key] = max(v for v in allowed if v <= left)
        left -= answers[key]
    assert left == 0
    return answers


@pytest.fixture
def ward(make_site, make_user, bearer, client):
    """A clinician at a site (an OTP unless told); ``ward.person()`` adds a client with a plan."""

    people = iter(range(1, 1000))

    class Ward:
        def __init__(self, otp=True):
            self.site = make_site(is_otp=otp, timezone="America/New_York")
            self.clinician = make_user("clinician", sites=[self.site])
            self.headers = bearer(self.clinician)

        def person(self):
            n = next(people)
            person = client.post(
                "/api/v1/clients",
                headers=self.headers,
                json={
                    "site_id": self.site.id,
                    "first_name": ["Ana", "Bo", "Cy", "Di", "Ed", "Flo"][n % 6],
                    "last_name": f"Ruiz{'x' * n}",
                    "date_of_birth": f"19{60 + n}-02-0{1 + n % 9}",
                },
            ).get_json()
            plan = client.post(
                f"/api/v1/clients/{person['id']}/plans", headers=self.headers, json={"problems": []}
            ).get_json()
            return {"client": person, "plan": plan}

        def order(self, who, **body):
            payload = {
                "medication": "buprenorphine_naloxone",
                "dose": 16,
                "unit": "mg",
                "frequency": "daily",
                "phase": "maintenance",
                "prescriber_id": self.clinician.id,
                "start_on": day(0),
                **body,
            }
            return client.post(f"/api/v1/plans/{who['plan']['id']}/medications", headers=self.headers, json=payload)

        def cows(self, who, total, at):
            response = client.post(
                f"/api/v1/clients/{who['client']['id']}/assessments",
                headers=self.headers,
                json={"instrument": "COWS", "answers": cows_answers(total), "administered_at": at.isoformat()},
            )
            assert response.status_code == 201, response.get_json()
            assert response.get_json()["total_score"] == total

        def screen(self, who, at, results):
            response = client.post(
                f"/api/v1/clients/{who['client']['id']}/drug-screens",
                headers=self.headers,
                json={"collected_at": at, "results": results},
            )
            assert response.status_code == 201, response.get_json()

        def patch(self, med_id, **body):
            return client.patch(f"/api/v1/medications/{med_id}", headers=self.headers, json=body)

        def listed(self, who):
            return client.get(f"/api/v1/clients/{who['client']['id']}/medications", headers=self.headers).get_json()[
                "items"
            ]

    return Ward


def broken(response):
    """The rule codes a 422 names, with each one's field and whether it may be overridden."""
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    rules = [(r["rule"], r["field"], r["overridable"]) for r in body["rules"]]
    for _rule, field, _overridable in rules:
        assert field in body["errors"]
    return rules


def events(app, med_id, action):
    with app.app_context():
        return [
            e.details
            for e in db.session.scalars(
                select(AuditEvent).where(
                    AuditEvent.resource == "medication",
                    AuditEvent.resource_id == str(med_id),
                    AuditEvent.action == action,
                )
            )
        ]


# --- induction_requires_cows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "before", "accepted"),
    [
        (8, timedelta(hours=23, minutes=59), True),
        (8, timedelta(hours=24, minutes=1), False),
        (7, timedelta(hours=1), False),
        (2, timedelta(hours=1), False),
    ],
)
def test_induction_needs_a_cows_of_8_in_the_24_hours_before_the_first_dose(ward, score, before, accepted):
    w = ward(otp=False)
    who = w.person()
    first_dose = site_now().replace(microsecond=0)
    w.cows(who, score, first_dose - before)
    response = w.order(who, phase="induction", dose=4, first_dose_at=first_dose.isoformat())
    if accepted:
        assert response.status_code == 201, response.get_json()
    else:
        assert broken(response) == [("induction_requires_cows", "cows", True)]


def test_induction_without_any_cows_is_refused_and_a_cows_of_8_today_is_enough(ward):
    w = ward(otp=False)
    who = w.person()
    assert broken(w.order(who, phase="induction", dose=4)) == [("induction_requires_cows", "cows", True)]
    # Without first_dose_at, an order starting today has its first dose now.
    w.cows(who, 8, site_now() - timedelta(minutes=30))
    assert w.order(who, phase="induction", dose=4).status_code == 201


def test_a_cows_score_shown_in_a_refusal_is_on_the_clients_audit_trail(app, ward):
    w = ward(otp=False)
    who = w.person()
    w.cows(who, 2, site_now() - timedelta(hours=1))
    refused = w.order(who, phase="induction", dose=4)
    assert "the latest scored 2" in refused.get_json()["errors"]["cows"][0]
    with app.app_context():
        reads = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "assessment.read", AuditEvent.client_id == who["client"]["id"]
            )
        ).all()
    assert [event.details["via"] for event in reads] == ["medication-rules"]


def test_a_reinduction_is_judged_by_the_cows_before_its_own_first_dose(ward):
    w = ward(otp=False)
    who = w.person()
    w.cows(who, 12, site_now() - timedelta(days=10, hours=1))  # before the order's start: not this induction
    med = w.order(who, start_on=day(-10), dose=16).get_json()
    assert broken(w.patch(med["id"], phase="induction", dose=4)) == [("induction_requires_cows", "cows", True)]
    w.cows(who, 8, site_now() - timedelta(hours=1))
    changed = w.patch(med["id"], phase="induction", dose=4)
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["phase"], changed.get_json()["overrides"]) == ("induction", [])
    # The first dose of a change is on the day it takes effect.
    other = w.order(w.person(), start_on=day(-10), dose=16).get_json()
    wrong_day = w.patch(other["id"], phase="induction", dose=4, first_dose_at=noon(-10))
    assert wrong_day.status_code == 422
    assert "first_dose_at" in wrong_day.get_json()["errors"]


def test_a_microinduction_passes_with_an_override_named_on_the_order_and_in_the_audit(app, ward):
    w = ward(otp=False)
    who = w.person()
    reason = "Low-dose induction while on full agonist"
    created = w.order(who, phase="induction", dose=0.5, override_reason=reason)
    assert created.status_code == 201
    body = created.get_json()
    assert [(o["rule"], o["reason"], o["by_user_id"]) for o in body["overrides"]] == [
        ("induction_requires_cows", reason, w.clinician.id)
    ]
    assert body["overrides"][0]["at"]
    assert events(app, body["id"], "medication.create")[0]["overridden_rules"] == ["induction_requires_cows"]


# --- dose_above_limit, methadone_first_dose ----------------------------------------------------


def test_buprenorphine_above_24_mg_needs_an_override_and_above_32_is_refused(app, ward):
    w = ward(otp=False)
    who = w.person()
    assert w.order(who, dose=24).status_code == 201
    assert broken(w.order(w.person(), dose=24.5)) == [("dose_above_limit", "dose", True)]
    allowed = w.order(w.person(), dose=24.5, override_reason="Documented cravings at 24 mg")
    assert allowed.status_code == 201
    assert [o["rule"] for o in allowed.get_json()["overrides"]] == ["dose_above_limit"]
    assert events(app, allowed.get_json()["id"], "medication.create")[0]["overridden_rules"] == ["dose_above_limit"]
    # The 40 mg "typo": above the absolute maximum, no reason makes it pass.
    typo = w.order(w.person(), dose=40, override_reason="sure")
    assert broken(typo) == [("dose_above_limit", "dose", False)]
    assert "32" in typo.get_json()["errors"]["dose"][0]


def test_a_dose_increase_above_the_limit_is_checked_like_a_new_order(ward):
    w = ward(otp=False)
    who = w.person()
    med = w.order(who, start_on=day(-10)).get_json()
    assert broken(w.patch(med["id"], dose=33, override_reason="x")) == [("dose_above_limit", "dose", False)]
    assert broken(w.patch(med["id"], dose=28)) == [("dose_above_limit", "dose", True)]
    assert w.patch(med["id"], dose=28, override_reason="Ongoing use at 24 mg").get_json()["dose"] == 28


def test_methadone_first_day_limit_is_50_mg_then_titration_goes_on(ward):
    w = ward()
    assert broken(w.order(w.person(), medication="methadone", dose=55)) == [("methadone_first_dose", "dose", True)]
    who = w.person()
    med = w.order(who, medication="methadone", dose=50, start_on=day(-3))
    assert med.status_code == 201
    assert w.patch(med.get_json()["id"], dose=80).status_code == 200
    assert broken(w.patch(med.get_json()["id"], dose=400.5)) == [("dose_above_limit", "dose", False)]


def test_methadone_stays_refused_outside_an_otp_whatever_the_reason(ward):
    w = ward(otp=False)
    refused = w.order(w.person(), medication="methadone", dose=30, override_reason="transfer")
    assert broken(refused) == [("methadone_requires_otp", "medication", False)]


# --- agonist_antagonist_conflict ---------------------------------------------------------------


@pytest.mark.parametrize(("injected_days_ago", "accepted"), [(27, False), (28, True)])
def test_an_agonist_waits_until_the_xr_injection_stops_covering(ward, injected_days_ago, accepted):
    w = ward(otp=False)
    who = w.person()
    xr = w.order(who, medication="naltrexone_xr", dose=380, frequency="every 28 days", start_on=day(-injected_days_ago))
    assert xr.status_code == 201
    assert xr.get_json()["covered_until"] == day(27 - injected_days_ago)
    w.patch(xr.get_json()["id"], end_on=day(-injected_days_ago))
    response = w.order(who)
    if accepted:
        assert response.status_code == 201, response.get_json()
    else:
        assert broken(response) == [("agonist_antagonist_conflict", "medication", True)]


def test_a_recorded_injection_extends_the_coverage(app, ward):
    w = ward(otp=False)
    who = w.person()
    xr = w.order(who, medication="naltrexone_xr", dose=380, frequency="every 28 days", start_on=day(-40))
    w.patch(xr.get_json()["id"], end_on=day(-1))
    with app.app_context():
        med = db.session.get(Medication, xr.get_json()["id"])
        medications.record_injection(med, site_today() - timedelta(days=12))
        medications.record_injection(med, site_today() - timedelta(days=20))  # an older one changes nothing
        assert medications.covered_until(med) == site_today() + timedelta(days=15)
        db.session.commit()
    assert broken(w.order(who, start_on=day(15))) == [("agonist_antagonist_conflict", "medication", True)]
    assert w.order(who, start_on=day(16)).status_code == 201


def test_naltrexone_beside_active_buprenorphine_is_a_conflict(ward):
    w = ward(otp=False)
    who = w.person()
    w.order(who, start_on=day(-60))
    rules = broken(w.order(who, medication="naltrexone_oral", dose=50))
    assert rules == [("agonist_antagonist_conflict", "medication", True)]


# --- naltrexone_washout -------------------------------------------------------------------------


@pytest.mark.parametrize(("days_after", "accepted"), [(6, False), (7, True)])
def test_naltrexone_washout_after_an_opioid_positive_screen(ward, days_after, accepted):
    w = ward(otp=False)
    who = w.person()
    w.screen(who, noon(-days_after), {"fentanyl": "positive"})
    response = w.order(who, medication="naltrexone_oral", dose=50)
    if accepted:
        assert response.status_code == 201, response.get_json()
    else:
        assert broken(response) == [("naltrexone_washout", "start_on", True)]


@pytest.mark.parametrize(
    ("agonist", "dose", "days_after", "accepted"),
    [
        ("buprenorphine", 16, 6, False),
        ("buprenorphine", 16, 7, True),
        ("methadone", 80, 8, False),
        ("methadone", 80, 13, False),
        ("methadone", 80, 14, True),
    ],
)
def test_naltrexone_washout_after_an_agonist_ends(ward, agonist, dose, days_after, accepted):
    w = ward()
    who = w.person()
    first = w.order(who, medication=agonist, dose=50 if agonist == "methadone" else dose, start_on=day(-90))
    assert first.status_code == 201
    w.patch(first.get_json()["id"], dose=dose, effective_on=day(-60))
    w.patch(first.get_json()["id"], end_on=day(-days_after))
    response = w.order(who, medication="naltrexone_xr", dose=380, frequency="every 28 days")
    if accepted:
        assert response.status_code == 201, response.get_json()
    else:
        assert broken(response) == [("naltrexone_washout", "start_on", True)]


# --- duplicate_agonist, transfers ---------------------------------------------------------------


def test_two_agonists_at_once_are_refused(ward):
    w = ward()
    who = w.person()
    assert w.order(who, start_on=day(-20)).status_code == 201
    assert broken(w.order(who)) == [("duplicate_agonist", "medication", True)]
    assert broken(w.order(who, medication="buprenorphine")) == [("duplicate_agonist", "medication", True)]
    assert broken(w.order(who, medication="methadone", dose=30)) == [("duplicate_agonist", "medication", True)]
    # One that ended before the new one starts is no duplicate.
    other = w.person()
    old = w.order(other, start_on=day(-20)).get_json()
    w.patch(old["id"], end_on=day(-1))
    assert w.order(other, medication="methadone", dose=30).status_code == 201


def test_a_transfer_from_buprenorphine_to_methadone_ends_the_first_the_day_before(app, ward):
    w = ward()
    who = w.person()
    bup = w.order(who, start_on=day(-40)).get_json()
    moved = w.order(who, medication="methadone", dose=30, start_on=day(1), transfer_from_medication_id=bup["id"])
    assert moved.status_code == 201, moved.get_json()
    assert moved.get_json()["overrides"] == []
    by_id = {m["id"]: m for m in w.listed(who)}
    assert by_id[bup["id"]]["end_on"] == day(0)
    assert by_id[moved.get_json()["id"]]["start_on"] == day(1)
    assert events(app, bup["id"], "medication.update")[-1]["transfer_to_medication_id"] == moved.get_json()["id"]
    # Only an order of the same client, not yet ended, can be transferred from.
    stranger = w.person()
    w.order(stranger, start_on=day(-5))
    refused = w.order(stranger, medication="methadone", dose=30, transfer_from_medication_id=bup["id"])
    assert refused.status_code == 422
    assert "transfer_from_medication_id" in refused.get_json()["errors"]


def test_several_rules_are_named_together_and_each_override_is_recorded(app, ward):
    w = ward(otp=False)
    who = w.person()
    w.order(who, start_on=day(-30))
    refused = w.order(who, medication="buprenorphine", dose=28, phase="induction")
    assert broken(refused) == [
        ("induction_requires_cows", "cows", True),
        ("dose_above_limit", "dose", True),
        ("duplicate_agonist", "medication", True),
    ]
    created = w.order(who, medication="buprenorphine", dose=28, phase="induction", override_reason="Split dosing")
    assert created.status_code == 201
    rules = ["induction_requires_cows", "dose_above_limit", "duplicate_agonist"]
    assert [o["rule"] for o in created.get_json()["overrides"]] == rules
    assert events(app, created.get_json()["id"], "medication.create")[0]["overridden_rules"] == rules


# --- scheduled changes ---------------------------------------------------------------------------


def test_a_future_change_is_scheduled_until_its_day(app, ward, monkeypatch):
    w = ward(otp=False)
    who = w.person()
    med = w.order(who, start_on=day(-10)).get_json()
    changed = w.patch(med["id"], dose=20, effective_on=day(1), reason="cravings")
    assert changed.status_code == 200
    body = changed.get_json()
    assert body["dose"] == 16
    assert [(c["dose"], c["effective_on"]) for c in body["scheduled_changes"]] == [(20, day(1))]
    with app.app_context():
        row = db.session.get(Medication, med["id"])
        assert row.dose == Decimal(16)
        assert medications.dose_on(row, site_today()) == Decimal(16)
        assert medications.dose_on(row, site_today() + timedelta(days=1)) == Decimal(20)
        assert medications.dose_on(row, site_today() - timedelta(days=11)) is None
    # The day of the change.
    tomorrow = clinic_time.utcnow() + timedelta(days=1)
    monkeypatch.setattr(clinic_time, "utcnow", lambda: tomorrow)
    listed = w.listed(who)[0]
    assert (listed["dose"], listed["scheduled_changes"]) == (20, [])
    # The hourly job brings the stored dose in step, once.
    with app.app_context():
        assert "plans.apply_due_dose_changes" in beat_schedule(app)
        assert apply_due_dose_changes.apply().get() == 1
        assert db.session.get(Medication, med["id"]).dose == Decimal(20)
        assert apply_due_dose_changes.apply().get() == 0
    # The job's write is on the client's audit trail, once.
    applied = [e for e in events(app, med["id"], "medication.update") if e.get("via") == "scheduled-change"]
    assert applied == [{"via": "scheduled-change", "fields": ["dose"], "effective_on": day(1)}]


# --- entered in error ----------------------------------------------------------------------------


def test_an_entry_entered_in_error_stays_marked_and_no_longer_counts(app, ward, client):
    w = ward(otp=False)
    who = w.person()
    med = w.order(who, start_on=day(-10)).get_json()
    wrong = w.patch(med["id"], dose=12, effective_on=day(-2), reason="sedation").get_json()
    assert wrong["dose"] == 12
    entry = wrong["history"][-1]
    url = f"/api/v1/medications/{med['id']}/history/{entry['id']}/entered-in-error"
    marked = client.post(url, headers=w.headers, json={"reason": "Charted on the wrong client"})
    assert marked.status_code == 200
    body = marked.get_json()
    assert body["dose"] == 16
    assert body["history"][-1]["entered_in_error"]["reason"] == "Charted on the wrong client"
    assert body["history"][-1]["entered_in_error"]["by_user_id"] == w.clinician.id
    assert body["history"][0]["entered_in_error"] is None
    with app.app_context():
        assert medications.dose_on(db.session.get(Medication, med["id"]), site_today()) == Decimal(16)
    assert events(app, med["id"], "medication.update")[-1]["entered_in_error"] == entry["id"]
    assert client.post(url, headers=w.headers, json={"reason": "again"}).status_code == 409
    # The order's first entry cannot go: it would leave the order without a dose.
    first = f"/api/v1/medications/{med['id']}/history/{body['history'][0]['id']}/entered-in-error"
    refused = client.post(first, headers=w.headers, json={"reason": "typo"})
    assert refused.status_code == 409
    assert refused.get_json()["type"].endswith("/no-dose-left")
    assert client.post(url, headers=w.headers, json={}).status_code == 422


# --- orders placed at the same moment (PostgreSQL, committed data) -----------------------------


def test_orders_placed_at_the_same_moment_are_checked_one_after_the_other() -> None:
    """Three methadone orders for one client at once: one is placed, the others break duplicate_agonist."""
    import threading

    from tests.conftest import committed_clinician, committed_postgres_app

    with committed_postgres_app(connections=4) as app:
        site_id, user_id, headers = committed_clinician(app, email="p@example.org", site_name="Parallel OTP", timezone="America/New_York", is_otp=True)
        http = app.test_client()
        person = http.post(
            "/api/v1/clients",
            headers=headers,
            json={"site_id": site_id, "first_name": "Par", "last_name": "Allel", "date_of_birth": "1985-04-02"},
        ).get_json()
        plan = http.post(f"/api/v1/clients/{person['id']}/plans", headers=headers, json={"problems": []}).get_json()
        start = (clinic_time.local_today("America/New_York") - timedelta(days=3)).isoformat()
        order = {
            "medication": "methadone",
            "dose": 30,
            "unit": "mg",
            "frequency": "daily",
            "phase": "maintenance",
            "prescriber_id": user_id,
            "start_on": start,
        }
        barrier = threading.Barrier(3)
        answers: list[int] = []

        def place() -> None:
            own = app.test_client()
            barrier.wait()
            answers.append(own.post(f"/api/v1/plans/{plan['id']}/medications", headers=headers, json=order).status_code)

        threads = [threading.Thread(target=place) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(answers) == [201, 422, 422]
        listed = http.get(f"/api/v1/clients/{person['id']}/medications", headers=headers).get_json()
        assert len(listed["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phase": "induction", "dose": 4, "start_on": "9999-12-31"}, "start_on"),
        ({"medication": "naltrexone_oral", "dose": 50, "start_on": "0001-01-01"}, "start_on"),
        ({"end_on": "9999-12-31"}, "end_on"),
        ({"phase": "induction", "dose": 4, "first_dose_at": "0001-01-01T12:00:00+00:00"}, "first_dose_at"),
    ],
)
def test_a_day_off_the_calendar_is_refused_naming_the_field(ward, body, field):
    w = ward(otp=False)
    refused = w.order(w.person(), **body)
    assert refused.status_code == 422, refused.get_json()
    assert field in refused.get_json()["errors"]


def test_a_change_dated_off_the_calendar_is_refused_naming_the_field(ward):
    w = ward(otp=False)
    med = w.order(w.person(), start_on=day(-3)).get_json()
    for body in ({"phase": "induction", "effective_on": "9999-12-31"}, {"dose": 12, "effective_on": "9999-12-31"}):
        refused = w.patch(med["id"], **body)
        assert refused.status_code == 422, refused.get_json()
        assert "effective_on" in refused.get_json()["errors"]
