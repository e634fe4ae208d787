"""Reports against hand-worked figures: each test builds a small dataset and states, worked out by
hand in comments, the numbers a board member would read."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import update

from clinic.extensions import db
from clinic.plans.models import Plan

TODAY = datetime.now(UTC).date()


def days(n: int) -> str:
    """The date n days from today (negative: in the past)."""
    return (TODAY + timedelta(days=n)).isoformat()


def at(day: date | str, hour: int = 12) -> str:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime.combine(day, time(hour), tzinfo=UTC).isoformat()


@pytest.fixture
def program(make_site, make_user, bearer, client):
    site, other = make_site(name="North Clinic"), make_site(name="South Clinic")
    clinician = make_user("clinician", sites=[site], name="Dr. Ito")
    colleague = make_user("clinician", sites=[site], name="Dr. Vega")
    supervisor = make_user("clinician", sites=[site], is_supervisor=True, name="Sup")
    south = make_user("clinician", sites=[other])
    headers = bearer(clinician)

    def person(first, *, site_id=None, primary=None, by=None):
        body = {
            "site_id": site_id or site.id,
            "first_name": first,
            "last_name": "Test",
            "date_of_birth": "1980-01-01",
            "primary_clinician_id": primary,
        }
        made = client.post("/api/v1/clients?allow_duplicate=true", headers=by or headers, json=body)
        assert made.status_code == 201, made.get_json()
        return made.get_json()["id"]

    def episode(client_id, admitted, level="1", discharged=None, reason=1, by=None):
        made = client.post(
            f"/api/v1/clients/{client_id}/episodes",
            headers=by or headers,
            json={"admitted_on": admitted, "level_of_care": level},
        )
        assert made.status_code == 201, made.get_json()
        if discharged:
            out = client.post(
                f"/api/v1/episodes/{made.get_json()['id']}/discharge",
                headers=by or headers,
                json={"discharged_on": discharged, "reason_code": reason},
            )
            assert out.status_code == 200, out.get_json()
        return made.get_json()["id"]

    def plan(client_id, by=None):
        return client.post(f"/api/v1/clients/{client_id}/plans", headers=by or headers, json={}).get_json()["id"]

    def medication(plan_id, start, end=None, name="buprenorphine", by=None, prescriber=None):
        made = client.post(
            f"/api/v1/plans/{plan_id}/medications",
            headers=by or headers,
            json={
                "medication": name,
                "dose": 8,
                "unit": "mg",
                "frequency": "daily",
                "phase": "maintenance",
                "prescriber_id": (prescriber or clinician).id,
                "start_on": start,
                **({"end_on": end} if end else {}),
            },
        )
        assert made.status_code == 201, made.get_json()
        return made.get_json()["id"]

    def report(name, by=None, **params):
        response = client.get(f"/api/v1/reports/{name}", headers=by or admin_headers, query_string=params)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    admin_headers = bearer(make_user("admin"))
    return {
        "site": site,
        "other": other,
        "clinician": clinician,
        "colleague": colleague,
        "headers": headers,
        "supervisor_headers": bearer(supervisor),
        "colleague_headers": bearer(colleague),
        "south_headers": bearer(south),
        "admin_headers": admin_headers,
        "intake_headers": bearer(make_user("intake", sites=[site])),
        "person": person,
        "episode": episode,
        "plan": plan,
        "medication": medication,
        "report": report,
    }


# --- census, caseload, discharges, retention --------------------------------------------------------


@pytest.fixture
def episodes(program):
    p = program
    c1 = p["person"]("One", primary=p["clinician"].id)
    p["episode"](c1, days(-100), "1")  # open
    c2 = p["person"]("Two")
    p["episode"](c2, days(-50), "1-OTP")  # open, no primary clinician
    c3 = p["person"]("Three")
    p["episode"](c3, days(-40), "1", discharged=days(-10), reason=1)  # 30 days
    c4 = p["person"]("Four")
    p["episode"](c4, days(-5), "2.1", discharged=days(0), reason=2)  # 5 days, discharged on `to`
    c6 = p["person"]("Six")
    p["episode"](c6, days(-30), "1", discharged=days(-30), reason=2)  # same day: 1 day
    c5 = p["person"]("Five", site_id=p["other"].id, by=p["south_headers"])
    p["episode"](c5, days(-20), "2.1", by=p["south_headers"])  # another site
    return p


def test_census_counts_open_episodes_at_the_end_of_to(episodes):
    # On today: One (1) and Two (1-OTP) are open; Four was discharged today; Five is at South.
    north = episodes["report"]("census", to=days(0), site_id=episodes["site"].id)
    assert north["rows"] == [{"level_of_care": "1", "clients": 1}, {"level_of_care": "1-OTP", "clients": 1}]
    assert north["summary"] == {"total_clients": 2}
    everywhere = episodes["report"]("census", to=days(0))
    assert everywhere["summary"]["total_clients"] == 3
    # Twenty days ago Three (admitted -40, discharged -10) was still in treatment.
    earlier = episodes["report"]("census", to=days(-20), site_id=episodes["site"].id)
    assert earlier["rows"] == [{"level_of_care": "1", "clients": 2}, {"level_of_care": "1-OTP", "clients": 1}]


def test_caseload_by_primary_clinician(episodes):
    body = episodes["report"]("caseload", to=days(0), site_id=episodes["site"].id)
    assert {(r["clinician"], r["clients"]) for r in body["rows"]} == {("Dr. Ito", 1), ("Unassigned", 1)}
    assert body["summary"] == {"clients": 2, "clinicians": 1, "unassigned": 1}


def test_discharges_with_median_length_of_stay(episodes):
    # Discharged in the last 60 days: Three 30 days (reason 1), Four 5 days and Six 1 day (reason 2).
    body = episodes["report"]("discharges", **{"from": days(-60), "to": days(0), "site_id": episodes["site"].id})
    assert body["rows"] == [
        {"reason_code": 1, "reason": "treatment completed", "discharges": 1, "median_length_of_stay_days": 30.0},
        {"reason_code": 2, "reason": "dropped out", "discharges": 2, "median_length_of_stay_days": 3.0},
    ]
    assert body["summary"] == {"discharges": 3, "median_length_of_stay_days": 5.0}


def test_retention_rates_and_kaplan_meier(episodes):
    body = episodes["report"]("retention", **{"from": days(-200), "to": days(0), "site_id": episodes["site"].id})
    summary = body["summary"]
    # Admissions: One -100 (open), Two -50 (open), Three -40 (30 days), Four -5 (5 days), Six -30 (1 day).
    assert summary["admissions"] == 5
    # 30 days: One, Two, Three (stayed exactly 30), Six are old enough; all but Six stayed.
    assert (summary["eligible_30"], summary["retained_30"], summary["rate_30"]) == (4, 3, 0.75)
    # 90 days: only One is old enough, and is still in treatment.
    assert (summary["eligible_90"], summary["retained_90"], summary["rate_90"]) == (1, 1, 1.0)
    # 180 days: nobody is old enough.
    assert (summary["eligible_180"], summary["rate_180"]) == (0, None)
    # Kaplan-Meier: events at 1, 5, 30 days with 5, 4, 3 at risk: 4/5, then x3/4, then x2/3.
    assert body["rows"] == [
        {"day": 0, "survival": 1.0},
        {"day": 1, "survival": 0.8},
        {"day": 5, "survival": 0.6},
        {"day": 30, "survival": 0.4},
    ]


# --- medications --------------------------------------------------------------------------------


def test_mat_continuity_with_the_gap_edges(program):
    p = program
    m1 = p["plan"](p["person"]("M1"))
    p["medication"](m1, days(-300), days(-250))
    p["medication"](m1, days(-242))  # 7 uncovered days (-249..-243): still continuous
    m2 = p["plan"](p["person"]("M2"))
    p["medication"](m2, days(-400), days(-320))
    p["medication"](m2, days(-311))  # 8 uncovered days (-319..-312): broken after 81 days
    m3 = p["plan"](p["person"]("M3"))
    p["medication"](m3, days(-100), name="naltrexone_oral")  # new, but not yet 180 days old
    m4 = p["plan"](p["person"]("M4"))
    p["medication"](m4, days(-200), days(-100))  # 101 days covered
    p["medication"](m4, days(-30))  # 69 days without coverage: a new start
    body = p["report"]("mat-continuity", **{"from": days(-500), "to": days(0), "site_id": p["site"].id})
    # New starts: M1 -300, M2 -400, M4 -200, M4 -30 (buprenorphine) and M3 -100 (naltrexone).
    # At least 180 days old: M1, M2, M4 -200; covered 180 days: M1 only.
    assert body["rows"] == [
        {"medication": "buprenorphine", "new_starts": 4, "eligible": 3, "continuous_180": 1, "rate": 0.3333},
        {"medication": "naltrexone_oral", "new_starts": 1, "eligible": 0, "continuous_180": 0, "rate": None},
    ]
    assert body["summary"] == {"new_starts": 5, "eligible": 3, "continuous_180": 1, "rate": 0.3333}


def test_mat_continuity_at_an_otp_counts_the_days_dosed_not_the_open_order(app, program, make_site, make_user, bearer):
    """At an OTP an order with doses covers the days dosed or taken home, voided doses excluded."""
    from clinic.dosing.models import Dose, DoseKind
    from clinic.plans.models import Medication

    p = program
    otp = make_site(name="Harbor OTP", is_otp=True)
    nurse = make_user("clinician", sites=[otp], name="Nurse Ames")
    headers = bearer(nurse)
    orders = {}
    for name, start in (("Gap", -250), ("Takehome", -250), ("Voided", -250), ("Undosed", -250), ("Before", -300)):
        client_id = p["person"](name, site_id=otp.id, by=headers)
        plan_id = p["plan"](client_id, by=headers)
        made = p["medication"](plan_id, days(start), name="methadone", by=headers, prescriber=nurse)
        orders[name] = made

    def dose(order: int, day: int, *, take_home_days: int = 0, voided: bool = False) -> dict:
        on = TODAY + timedelta(days=day)
        first, last = (on, on) if not take_home_days else (on + timedelta(days=1), on + timedelta(days=take_home_days))
        return {
            "medication_id": order,
            "kind": DoseKind.TAKE_HOME if take_home_days else DoseKind.OBSERVED,
            "amount_mg": 8,
            "take_home_days": take_home_days,
            "given_at": datetime.combine(on, time(14), tzinfo=UTC),
            "given_on": on,
            "covered_from": first,
            "covered_until": last,
            "is_split": False,
            "lot_number": "L1",
            "substance": "methadone",
            "strength": "10 mg/mL",
            "dosage_form": "oral solution",
            "dispenser_id": nurse.id,
            "dispenser_initials": "NA",
            "voided_at": datetime.now(UTC) if voided else None,
            "void_reason": "wrong client" if voided else None,
        }

    rows = []
    # Gap: observed daily, except 10 days (-199..-190) with the order open and no dose.
    rows += [dose(orders["Gap"], d) for d in range(-250, 1) if not -199 <= d <= -190]
    # Takehome: an observed dose every 7th day and 6 days taken home after it: every day covered.
    for d in range(-250, 1, 7):
        rows += [dose(orders["Takehome"], d), dose(orders["Takehome"], d, take_home_days=6)]
    # Voided: observed daily, but 10 days of them (-199..-190) entered in error.
    rows += [dose(orders["Voided"], d, voided=-199 <= d <= -190) for d in range(-250, 1)]
    # Before: started at -300, before the site's record began (its first dose, -250); dosed daily since.
    rows += [dose(orders["Before"], d) for d in range(-250, 1)]
    with app.app_context():
        site_of = {order: db.session.get_one(Medication, order) for order in orders.values()}
        for row in rows:
            medication = site_of[row["medication_id"]]
            row.update(client_id=medication.client_id, site_id=medication.site_id)
        db.session.execute(Dose.__table__.insert(), rows)
        db.session.commit()

    body = p["report"]("mat-continuity", **{"from": days(-500), "to": days(0), "site_id": otp.id})
    # Four new starts at -250 and one at -300, all at least 180 days old. Gap and Voided: 51 days
    # covered (-250..-200), then 10 uncovered days break it. Takehome: covered every day. Undosed has
    # no dose at all, so its order counts as elsewhere (open since -250): covered. Before: its order
    # covers -300..-251, before the site's dosing record began, and its doses every day since: one
    # start, continuous (not a false new start at -250).
    assert body["rows"] == [
        {"medication": "methadone", "new_starts": 5, "eligible": 5, "continuous_180": 3, "rate": 0.6},
    ]
    # Around the day the record began, Before's first dose is no new start: it was in treatment.
    body = p["report"]("mat-continuity", **{"from": days(-260), "to": days(-240), "site_id": otp.id})
    assert body["rows"] == [
        {"medication": "methadone", "new_starts": 4, "eligible": 4, "continuous_180": 2, "rate": 0.5},
    ]


def test_mat_continuity_at_an_otp_merges_overlapping_supplies_and_keeps_the_edges(
    app, client, program, make_site, make_user, bearer
):
    """The dosing record's edges: nested and overlapping supplies, a voided one, 7 and 59 days apart, from - 1,
    two orders first dosed on one day."""
    from clinic.dosing.models import Dose, DoseKind
    from clinic.plans.models import Medication

    p = program
    otp = make_site(name="Bay OTP", is_otp=True)
    nurse = make_user("clinician", sites=[otp], name="Nurse Bell")
    headers = bearer(nurse)
    first_dose = {"Overlap": -250, "Voided": -250, "Seven": -250, "DayBefore": -101, "Clean60": -161, "Clean59": -160}
    orders = {}
    for name, start in first_dose.items():
        primary = nurse.id if name in ("Overlap", "Clean60") else None
        client_id = p["person"](name, site_id=otp.id, by=headers, primary=primary)
        plan_id = p["plan"](client_id, by=headers)
        # Each order starts on its first dose, so no day falls before the site's record (-250).
        orders[name] = p["medication"](plan_id, days(start), name="methadone", by=headers, prescriber=nurse)
    # Switch: two orders first dosed on the same day (-100); the start counts for the one whose entry
    # was recorded first, buprenorphine, though methadone's order is older and has an earlier entry.
    plan_id = p["plan"](p["person"]("Switch", site_id=otp.id, by=headers), by=headers)
    orders["SwitchMethadone"] = p["medication"](plan_id, days(-100), name="methadone", by=headers, prescriber=nurse)
    switch = {"medication": "buprenorphine", "dose": 8, "unit": "mg", "frequency": "daily", "phase": "induction"}
    made = client.post(
        f"/api/v1/plans/{plan_id}/medications",
        headers=headers,
        json={**switch, "prescriber_id": nurse.id, "start_on": days(-100), "override_reason": "cross-titration"},
    )
    assert made.status_code == 201, made.get_json()
    orders["SwitchBup"] = made.get_json()["id"]

    def dose(name: str, day: int, *, take_home_days: int = 0, voided: bool = False) -> dict:
        on = TODAY + timedelta(days=day)
        first, last = (on, on) if not take_home_days else (on + timedelta(days=1), on + timedelta(days=take_home_days))
        return {
            "medication_id": orders[name],
            "kind": DoseKind.TAKE_HOME if take_home_days else DoseKind.OBSERVED,
            "amount_mg": 60,
            "take_home_days": take_home_days,
            "given_at": datetime.combine(on, time(9), tzinfo=UTC),
            "given_on": on,
            "covered_from": first,
            "covered_until": last,
            "is_split": False,
            "lot_number": "L2",
            "substance": "methadone",
            "strength": "10 mg/mL",
            "dosage_form": "oral solution",
            "dispenser_id": nurse.id,
            "dispenser_initials": "NB",
            "voided_at": datetime.now(UTC) if voided else None,
            "void_reason": "wrong client" if voided else None,
        }

    def daily(name: str, first: int, last: int) -> list[dict]:
        return [dose(name, d) for d in range(first, last + 1)]

    rows = []
    # Overlap: a 28-day supply (-249..-222) with a 6-day one (-239..-234) and an observed dose (-245)
    # inside it; the next dose at -214 leaves 7 uncovered days after the long supply (-221..-215), not
    # after the nested entries: covered -250..0 without a break.
    rows += [dose("Overlap", -250), dose("Overlap", -250, take_home_days=28), dose("Overlap", -245)]
    rows += [dose("Overlap", -240, take_home_days=6), *daily("Overlap", -214, 0)]
    # Voided: dosed -250..-201, an 11-day supply (-200..-190) voided as entered in error, dosed again
    # from -192: 8 uncovered days (-200..-193) break it after 50 days, and are too few for a new start.
    rows += [*daily("Voided", -250, -201), dose("Voided", -201, take_home_days=11, voided=True)]
    rows += daily("Voided", -192, 0)
    # Seven: dosed -250..-201 and -193..0: exactly 7 uncovered days (-200..-194) keep it continuous.
    rows += [*daily("Seven", -250, -201), *daily("Seven", -193, 0)]
    # DayBefore: first dosed at -101, the day before the second range's `from`, then daily from -100.
    rows += [dose("DayBefore", -101), *daily("DayBefore", -100, 0)]
    # Clean60: one dose at -161, then daily from -100: 60 uncovered days (-160..-101), a new start.
    rows += [dose("Clean60", -161), *daily("Clean60", -100, 0)]
    # Clean59: one dose at -160, then daily from -100: 59 uncovered days, the same start continued.
    rows += [dose("Clean59", -160), *daily("Clean59", -100, 0)]
    # Switch, in the order recorded: methadone on -99, buprenorphine on -100, methadone on -100 and after.
    rows += [dose("SwitchMethadone", -99), dose("SwitchBup", -100), dose("SwitchMethadone", -100)]
    rows += daily("SwitchMethadone", -98, 0)
    with app.app_context():
        for row in rows:
            medication = db.session.get_one(Medication, row["medication_id"])
            row.update(client_id=medication.client_id, site_id=medication.site_id)
        db.session.execute(Dose.__table__.insert(), rows)
        db.session.commit()

    body = p["report"]("mat-continuity", **{"from": days(-300), "to": days(0), "site_id": otp.id})
    # New starts: Overlap, Voided, Seven at -250, DayBefore at -101, Clean60 at -161 and -100, Clean59 at
    # -160, and Switch's buprenorphine at -100. At least 180 days old: the three at -250; covered 180
    # days: Overlap and Seven.
    assert body["rows"] == [
        {"medication": "buprenorphine", "new_starts": 1, "eligible": 0, "continuous_180": 0, "rate": None},
        {"medication": "methadone", "new_starts": 7, "eligible": 3, "continuous_180": 2, "rate": 0.6667},
    ]
    # From -100: DayBefore was dosed the day before (no new start at -100), Clean59 59 days before;
    # Clean60 and Switch start anew.
    body = p["report"]("mat-continuity", **{"from": days(-100), "to": days(0), "site_id": otp.id})
    assert body["summary"] == {"new_starts": 2, "eligible": 0, "continuous_180": 0, "rate": None}
    # The nurse alone, whose caseload is Overlap and Clean60: their starts only.
    body = p["report"]("mat-continuity", by=headers, **{"from": days(-300), "to": days(0)})
    assert body["summary"] == {"new_starts": 3, "eligible": 1, "continuous_180": 1, "rate": 1.0}


def test_iet_initiation_day_13_counts_and_day_14_does_not(program, client):
    p = program
    admitted = days(-60)
    i1 = p["person"]("I1")
    p["episode"](i1, admitted)
    med = p["medication"](p["plan"](i1), days(-60 + 13))  # day 13: initiated
    for offset, dose in ((10, 12), (34, 16)):  # two events within 34 days after: engaged
        client.patch(
            f"/api/v1/medications/{med}",
            headers=p["headers"],
            json={"dose": dose, "effective_on": days(-60 + 13 + offset)},
        )
    i2 = p["person"]("I2")
    p["episode"](i2, admitted)
    p["medication"](p["plan"](i2), days(-60 + 14))  # day 14: too late
    i3 = p["person"]("I3")
    p["episode"](i3, admitted)
    med3 = p["medication"](p["plan"](i3), admitted)  # day 0: initiated
    client.patch(f"/api/v1/medications/{med3}", headers=p["headers"], json={"dose": 12, "effective_on": days(-55)})
    body = p["report"]("iet", **{"from": days(-61), "to": days(-59), "site_id": p["site"].id})
    assert body["summary"] == {
        "admissions": 3,
        "initiated": 2,
        "engaged": 1,
        "initiation_rate": 0.6667,
        "engagement_rate": 0.3333,
    }


def test_iet_counts_no_dose_change_still_scheduled(program, client):
    """A dose change dated ahead is not care given yet: it does not make an admission engaged."""
    p = program
    who = p["person"]("S1")
    p["episode"](who, days(-5))
    med = p["medication"](p["plan"](who), days(-5))  # day 0: initiated
    for ahead, dose in ((3, 12), (10, 10)):
        scheduled = client.patch(
            f"/api/v1/medications/{med}", headers=p["headers"], json={"dose": dose, "effective_on": days(ahead)}
        )
        assert scheduled.get_json()["scheduled_changes"], scheduled.get_json()
    body = p["report"]("iet", **{"from": days(-6), "to": days(-4), "site_id": p["site"].id})
    assert (body["summary"]["initiated"], body["summary"]["engaged"]) == (1, 0)


# --- intake, screens, CM, reviews ---------------------------------------------------------------


def _call(client, p, occurred_at, name):
    body = {
        "site_id": p["site"].id,
        "direction": "inbound",
        "occurred_at": occurred_at,
        "caller_name": name,
        "caller_relation": "self",
        "callback_phone": "2125550134",
        "referral_source": "self",
        "reason": "help",
        "outcome": "assessment_scheduled",
    }
    made = client.post("/api/v1/intake-calls", headers=p["headers"], json=body)
    assert made.status_code == 201, made.get_json()
    return made.get_json()["id"]


def test_intake_funnel(program, client):
    p = program
    day0 = days(-40)
    ids = [_call(client, p, at(day0), f"Caller {n}") for n in range(4)]
    converted = []
    for n in range(3):
        made = client.post(
            f"/api/v1/intake-calls/{ids[n]}/convert?allow_duplicate=true",
            headers=p["headers"],
            json={"first_name": f"C{n}", "last_name": "Funnel", "date_of_birth": "1990-01-01"},
        )
        converted.append(made.get_json()["id"])
    # Caller 0: assessed, admitted after 10 days, medication after 12. Caller 1: admitted after 20 days.
    signed = client.post(
        f"/api/v1/clients/{converted[0]}/assessments",
        headers=p["headers"],
        json={"instrument": "GAD-7", "answers": {f"q{i}": 1 for i in range(1, 8)}, "administered_at": at(days(-39))},
    )
    client.post(f"/api/v1/assessments/{signed.get_json()['id']}/sign", headers=p["headers"])
    p["episode"](converted[0], days(-30))
    p["medication"](p["plan"](converted[0]), days(-28))
    p["episode"](converted[1], days(-20))
    body = p["report"]("intake-funnel", **{"from": days(-45), "to": days(0), "site_id": p["site"].id})
    assert [(r["stage"], r["count"]) for r in body["rows"]] == [
        ("calls", 4),
        ("converted", 3),
        ("assessed", 1),
        ("admitted", 2),
        ("mat_started", 1),
    ]
    assert body["rows"][1]["rate_from_previous"] == 0.75
    assert body["summary"]["median_days_call_to_admission"] == 15.0
    assert body["summary"]["median_days_call_to_mat"] == 12.0


def test_drug_screen_positivity_excludes_missed_and_invalid(program, client):
    p = program
    person = p["person"]("Screened")
    first_of_month = TODAY.replace(day=1)
    month_before = (first_of_month - timedelta(days=1)).replace(day=1)
    url = f"/api/v1/clients/{person}/drug-screens"
    for day, results in [
        (2, {"fentanyl": "positive", "cocaine": "negative"}),
        (3, {"fentanyl": "negative"}),
        (4, {"fentanyl": "invalid"}),
    ]:
        client.post(
            url, headers=p["headers"], json={"collected_at": at(month_before.replace(day=day)), "results": results}
        )
    client.post(url, headers=p["headers"], json={"collected_at": at(month_before.replace(day=5)), "missed": True})
    month = month_before.strftime("%Y-%m")
    body = p["report"](
        "drug-screens", **{"from": month_before.isoformat(), "to": (first_of_month - timedelta(days=1)).isoformat()}
    )
    assert body["rows"] == [
        {"month": month, "substance": "cocaine", "screens": 1, "positives": 0, "positivity_rate": 0.0},
        {"month": month, "substance": "fentanyl", "screens": 2, "positives": 1, "positivity_rate": 0.5},
    ]
    assert body["summary"] == {"screens": 3, "positives": 1, "positivity_rate": 0.3333}


def test_cm_incentives(program, client):
    p = program
    voucher_client = p["person"]("Voucher")
    v_plan = p["plan"](voucher_client)
    client.post(
        f"/api/v1/plans/{v_plan}/cm-programs",
        headers=p["headers"],
        json={"target_substances": ["fentanyl"], "schedule": "escalating_voucher", "starts_on": days(-30)},
    )
    for n, result in enumerate("----+-"):
        client.post(
            f"/api/v1/clients/{voucher_client}/drug-screens",
            headers=p["headers"],
            json={
                "collected_at": at(days(-20 + 2 * n)),
                "results": {"fentanyl": "negative" if result == "-" else "positive"},
            },
        )
    draw_client = p["person"]("Draws")
    d_plan = p["plan"](draw_client)
    draw_program = client.post(
        f"/api/v1/plans/{d_plan}/cm-programs",
        headers=p["headers"],
        json={"target_substances": ["fentanyl"], "schedule": "prize_draw", "starts_on": days(-30)},
    ).get_json()
    for n, result in enumerate("--+"):
        client.post(
            f"/api/v1/clients/{draw_client}/drug-screens",
            headers=p["headers"],
            json={
                "collected_at": at(days(-20 + 2 * n)),
                "results": {"fentanyl": "negative" if result == "-" else "positive"},
            },
        )
    client.post(f"/api/v1/cm-programs/{draw_program['id']}/prizes", headers=p["headers"], json={"prize_cents": 700})
    body = p["report"]("cm-incentives", **{"from": days(-30), "to": days(0), "site_id": p["site"].id})
    # Vouchers: 250 + 375 + 1500 + 625 + 0 + 250 = 3000. Draws: 1 + 2 + 0 = 3; one prize of 700.
    assert body["rows"] == [
        {
            "schedule": "escalating_voucher",
            "programs": 1,
            "clients": 1,
            "negative_samples": 5,
            "vouchers_cents": 3000,
            "prizes_cents": 0,
            "draws": 0,
            "capped_entries": 0,
        },
        {
            "schedule": "prize_draw",
            "programs": 1,
            "clients": 1,
            "negative_samples": 2,
            "vouchers_cents": 0,
            "prizes_cents": 700,
            "draws": 3,
            "capped_entries": 0,
        },
    ]
    assert body["summary"]["total_cents"] == 3700


def test_cm_incentives_apply_the_cap_like_the_ledger(program, client):
    p = program
    person = p["person"]("Capped")
    plan_id = p["plan"](person)
    made = client.post(
        f"/api/v1/plans/{plan_id}/cm-programs",
        headers=p["headers"],
        json={
            "target_substances": ["fentanyl"],
            "schedule": "escalating_voucher",
            "starts_on": days(-30),
            "annual_cap_cents": 1000,
        },
    ).get_json()
    for n in range(4):
        client.post(
            f"/api/v1/clients/{person}/drug-screens",
            headers=p["headers"],
            json={"collected_at": at(days(-20 + n)), "results": {"fentanyl": "negative"}},
        )
    ledger = client.get(f"/api/v1/cm-programs/{made['id']}/ledger", headers=p["headers"]).get_json()
    body = p["report"]("cm-incentives", **{"from": days(-30), "to": days(0), "site_id": p["site"].id})
    # 250 + 375 + 375 (cut from 1500) + 0 (cut from 625) = 1000, two entries capped.
    assert body["rows"][0]["vouchers_cents"] == ledger["total_cents"] == 1000
    assert body["rows"][0]["capped_entries"] == 2


def test_plan_reviews_on_time_late_and_overdue(app, program, client):
    p = program
    plans = [p["plan"](p["person"](f"R{n}")) for n in range(4)]
    due = {
        plans[0]: TODAY + timedelta(days=1),
        plans[1]: TODAY - timedelta(days=5),
        plans[2]: TODAY - timedelta(days=3),
        plans[3]: TODAY + timedelta(days=10),
    }
    with app.app_context():
        for plan_id, due_on in due.items():
            db.session.execute(update(Plan).where(Plan.id == plan_id).values(next_review_on=due_on))
        db.session.commit()
    for plan_id in plans[:2]:
        client.post(
            f"/api/v1/plans/{plan_id}/reviews", headers=p["headers"], json={"note": "ok", "outcome": "continue"}
        )
    body = p["report"]("plan-reviews", **{"from": days(-30), "to": days(30), "site_id": p["site"].id})
    # Due in range: R0 reviewed before its date, R1 five days late, R2 still overdue; R3 is not due yet.
    assert body["rows"] == [
        {
            "site_id": p["site"].id,
            "site": "North Clinic",
            "due": 3,
            "on_time": 1,
            "late": 1,
            "overdue": 1,
            "on_time_rate": 0.3333,
        }
    ]


# --- scope, validation, renderings, runs ------------------------------------------------------------


def test_clinicians_see_their_caseload_and_supervisors_their_sites(episodes):
    p = episodes
    mine = p["report"]("census", by=p["headers"], to=days(0))
    assert mine["summary"] == {"total_clients": 1}  # only One is Dr. Ito's
    assert p["report"]("census", by=p["colleague_headers"], to=days(0))["summary"] == {"total_clients": 0}
    assert p["report"]("census", by=p["supervisor_headers"], to=days(0))["summary"] == {"total_clients": 2}


def test_report_validation(program, client):
    headers = program["admin_headers"]
    assert client.get("/api/v1/reports/no-such-report", headers=headers).status_code == 404
    backwards = client.get("/api/v1/reports/census", headers=headers, query_string={"from": days(0), "to": days(-1)})
    assert backwards.status_code == 422
    assert "from" in backwards.get_json()["errors"]
    too_long = client.get("/api/v1/reports/census", headers=headers, query_string={"from": "2015-01-01", "to": days(0)})
    assert too_long.status_code == 422
    outside = client.get(
        "/api/v1/reports/census", headers=program["headers"], query_string={"site_id": program["other"].id}
    )
    assert outside.status_code == 422
    assert "site_id" in outside.get_json()["errors"]
    assert client.get("/api/v1/reports/census", headers=program["intake_headers"]).status_code == 403


def test_days_off_the_calendar_are_refused_by_every_report(program, client):
    """A typing mistake such as year 1 is a 422 naming the field, never a 500 from counting off the calendar."""
    headers = program["admin_headers"]
    names = [r["name"] for r in client.get("/api/v1/reports", headers=headers).get_json()]
    for name in names:
        for query, field in (
            ({"from": "0001-01-01", "to": "0001-03-01"}, "from"),
            ({"to": "0001-01-05"}, "to"),
            ({"from": "9999-12-01", "to": "9999-12-31"}, "from"),
        ):
            refused = client.get(f"/api/v1/reports/{name}", headers=headers, query_string=query)
            assert refused.status_code == 422, (name, query, refused.status_code)
            assert field in refused.get_json()["errors"], (name, query)


def test_every_report_is_listed_and_renders_in_three_formats(program, client):
    headers = program["admin_headers"]
    listed = client.get("/api/v1/reports", headers=headers).get_json()
    names = {r["name"] for r in listed}
    assert {
        "census",
        "caseload",
        "intake-funnel",
        "retention",
        "mat-continuity",
        "iet",
        "drug-screens",
        "cm-incentives",
        "plan-reviews",
        "discharges",
    } <= names
    for name in names:
        as_json = client.get(f"/api/v1/reports/{name}", headers=headers)
        assert as_json.status_code == 200, (name, as_json.get_json())
        document = as_json.get_json()
        assert {"name", "params", "generated_at", "columns", "rows", "summary"} <= set(document)
        as_csv = client.get(f"/api/v1/reports/{name}?format=csv", headers=headers)
        assert as_csv.mimetype == "text/csv"
        header = next(csv.reader(io.StringIO(as_csv.get_data(as_text=True))))
        assert header == [c["key"] for c in document["columns"]]
        as_svg = client.get(f"/api/v1/reports/{name}?format=svg", headers=headers)
        assert as_svg.mimetype == "image/svg+xml"
        svg = as_svg.get_data(as_text=True)
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_csv_and_svg_carry_the_same_numbers(episodes, client):
    headers = episodes["admin_headers"]
    params = {"to": days(0), "site_id": episodes["site"].id}
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    "/api/v1/reports/census", headers=headers, query_string={**params, "format": "csv"}
                ).get_data(as_text=True)
            )
        )
    )
    assert rows == [{"level_of_care": "1", "clients": "1"}, {"level_of_care": "1-OTP", "clients": "1"}]
    svg = client.get("/api/v1/reports/census", headers=headers, query_string={**params, "format": "svg"}).get_data(
        as_text=True
    )
    assert "Census" in svg
    assert "ASAM level of care" in svg
    assert "Clients in treatment" in svg


def test_report_runs_on_the_worker_and_download(app, episodes, client):
    headers = episodes["admin_headers"]
    queued = client.post(f"/api/v1/reports/census/runs?to={days(0)}&site_id={episodes['site'].id}", headers=headers)
    assert queued.status_code == 202
    run_id = queued.get_json()["id"]
    assert client.get(f"/api/v1/report-runs/{run_id}", headers=headers).get_json()["status"] == "queued"
    from clinic.reports.tasks import run_report

    with app.app_context():
        assert run_report.apply(args=[run_id]).get() == "done"
        assert run_report.apply(args=[run_id]).get() == "not queued"
    status = client.get(f"/api/v1/report-runs/{run_id}", headers=headers).get_json()
    assert status["status"] == "done"
    download = client.get(status["download_url"] + "?format=csv", headers=headers)
    assert download.get_data(as_text=True).splitlines() == ["level_of_care,clients", "1,1", "1-OTP,1"]
    # Someone else's run is not found.
    assert client.get(f"/api/v1/report-runs/{run_id}", headers=episodes["headers"]).status_code == 404


def _finish(app, run_id):
    from clinic.reports.tasks import run_report

    with app.app_context():
        assert run_report.apply(args=[run_id]).get() == "done"


def test_a_run_downloaded_as_json_is_the_report_document(app, episodes, client):
    headers = episodes["admin_headers"]
    params = {"from": days(-60), "to": days(0), "site_id": episodes["site"].id}
    run_id = client.post("/api/v1/reports/census/runs", headers=headers, query_string=params).get_json()["id"]
    _finish(app, run_id)
    url = client.get(f"/api/v1/report-runs/{run_id}", headers=headers).get_json()["download_url"]
    live = client.get("/api/v1/reports/census", headers=headers, query_string=params).get_json()
    for query in ("", "?format=json"):
        download = client.get(url + query, headers=headers)
        assert download.status_code == 200, download.get_data(as_text=True)
        assert download.mimetype == "application/json"
        document = download.get_json()
        assert {k: document[k] for k in ("name", "title", "params", "columns", "rows", "summary")} == {
            k: live[k] for k in ("name", "title", "params", "columns", "rows", "summary")
        }
        assert document["summary"] == {"total_clients": 2}
        # RFC 3339 with an offset, like every timestamp of the API.
        assert datetime.fromisoformat(document["generated_at"]).utcoffset() == timedelta(0)
    # A result stored before with the JSON encoder's HTTP date still downloads.
    from clinic.reports.models import ReportRun

    with app.app_context():
        run = db.session.get(ReportRun, run_id)
        run.result = {**run.result, "generated_at": "Sun, 29 Nov 2026 10:00:00 GMT"}
        db.session.commit()
    assert client.get(url, headers=headers).get_json()["generated_at"] == "2026-11-29T10:00:00+00:00"


def test_a_run_computes_the_range_given_in_its_json_body(app, episodes, client):
    headers = episodes["admin_headers"]
    # On day -35, One (admitted -100), Two (-50) and Three (-40 to -10) were in treatment: 3, not
    # today's 2 (the default `to`).
    body = {"from": days(-60), "to": days(-35), "site_id": episodes["site"].id}
    queued = client.post("/api/v1/reports/census/runs", headers=headers, json=body)
    assert queued.status_code == 202, queued.get_json()
    run_id = queued.get_json()["id"]
    assert client.get(f"/api/v1/report-runs/{run_id}", headers=headers).get_json()["params"] == body
    _finish(app, run_id)
    url = client.get(f"/api/v1/report-runs/{run_id}", headers=headers).get_json()["download_url"]
    document = client.get(url, headers=headers).get_json()
    assert document["params"] == body
    assert document["summary"] == {"total_clients": 3}
    assert document["rows"] == [{"level_of_care": "1", "clients": 2}, {"level_of_care": "1-OTP", "clients": 1}]


def test_a_runs_range_in_body_and_query_must_agree_and_be_valid(episodes, client):
    headers = episodes["admin_headers"]
    url = "/api/v1/reports/census/runs"
    clash = client.post(url, headers=headers, query_string={"to": days(-1)}, json={"to": days(-2)})
    assert clash.status_code == 422
    assert list(clash.get_json()["errors"]) == ["to"]
    same = client.post(url, headers=headers, query_string={"to": days(-1)}, json={"to": days(-1), "from": days(-9)})
    assert same.status_code == 202
    for bad, field in (
        ({"from": "soon"}, "from"),
        ({"until": days(0)}, "until"),
        ({"from": days(0), "to": days(-1)}, "from"),
    ):
        refused = client.post(url, headers=headers, json=bad)
        assert refused.status_code == 422, bad
        assert field in refused.get_json()["errors"], refused.get_json()
    outside = client.post(url, headers=episodes["headers"], json={"site_id": episodes["other"].id})
    assert outside.status_code == 422
    assert "site_id" in outside.get_json()["errors"]


def test_the_spec_says_where_a_runs_range_goes(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/reports/{name}/runs"]["post"]
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {"from", "to", "site_id"}
    body = operation["requestBody"]
    assert body["required"] is False
    schema = body["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"from", "to", "site_id"}


def test_old_report_runs_expire(app, episodes, client):
    from clinic.reports.models import ReportRun
    from clinic.reports.tasks import sweep_report_runs

    headers = episodes["admin_headers"]
    run_id = client.post("/api/v1/reports/census/runs", headers=headers).get_json()["id"]
    with app.app_context():
        db.session.execute(
            update(ReportRun).where(ReportRun.id == run_id).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
        assert sweep_report_runs.apply().get() == 1
    assert client.get(f"/api/v1/report-runs/{run_id}", headers=headers).status_code == 404


# --- appointments and reminders ---------------------------------------------------------------------


def _book(client, p, person, kind, starts, status=None, app=None):
    made = client.post(
        "/api/v1/appointments",
        headers=p["headers"],
        json={
            "site_id": p["site"].id,
            "kind": kind,
            "clinician_id": p["clinician"].id,
            "client_id": person,
            "starts_at": starts,
            "duration_minutes": 30,
        },
    )
    assert made.status_code == 201, made.get_json()
    appointment_id = made.get_json()["id"]
    if status is not None:
        from clinic.scheduling.models import Appointment

        with app.app_context():
            db.session.execute(update(Appointment).where(Appointment.id == appointment_id).values(status=status))
            db.session.commit()
    return appointment_id


def test_appointment_adherence_leaves_clinic_cancellations_out_of_the_no_show_rate(app, program, client):
    p = program
    person = p["person"]("Attender")
    for n, status in enumerate(["completed", "checked_in", "no_show", "cancelled_by_client", "cancelled_by_clinic"]):
        _book(client, p, person, "individual_therapy", at(days(-10 + n), 9 + n), status, app)
    _book(client, p, person, "medication_visit", at(days(-3)), "no_show", app)
    _book(client, p, person, "individual_therapy", at(days(2)))  # in the future: not counted
    body = p["report"]("appointment-adherence", **{"from": days(-30), "to": days(30), "site_id": p["site"].id})
    # Therapy: 5 past, kept 2, no-show 1, cancelled 1 + 1; no-show rate 1 / (5 - 1).
    assert body["rows"] == [
        {
            "kind": "individual_therapy",
            "scheduled": 5,
            "kept": 2,
            "no_show": 1,
            "cancelled_by_client": 1,
            "cancelled_by_clinic": 1,
            "no_show_rate": 0.25,
        },
        {
            "kind": "medication_visit",
            "scheduled": 1,
            "kept": 0,
            "no_show": 1,
            "cancelled_by_client": 0,
            "cancelled_by_clinic": 0,
            "no_show_rate": 1.0,
        },
    ]
    assert body["summary"]["no_show_rate"] == 0.4  # 2 / (6 - 1)


def test_completed_appointments_count_for_iet_and_the_funnel(app, program, client):
    p = program
    call = _call(client, p, at(days(-40)), "Appointments")
    person = client.post(
        f"/api/v1/intake-calls/{call}/convert?allow_duplicate=true",
        headers=p["headers"],
        json={"first_name": "Appt", "last_name": "Only", "date_of_birth": "1990-01-01"},
    ).get_json()["id"]
    _book(client, p, person, "intake_assessment", at(days(-38)), "completed", app)
    p["episode"](person, days(-30))
    for offset in (2, 10, 20):  # initiation on day 2, then two more within 34 days: engaged
        _book(client, p, person, "individual_therapy", at(days(-30 + offset)), "completed", app)
    funnel = p["report"]("intake-funnel", **{"from": days(-45), "to": days(0), "site_id": p["site"].id})
    assert funnel["summary"]["assessed"] == 1
    iet = p["report"]("iet", **{"from": days(-31), "to": days(-29), "site_id": p["site"].id})
    assert (iet["summary"]["initiated"], iet["summary"]["engaged"]) == (1, 1)


def test_reminder_delivery_by_channel(app, program, client):
    from clinic.notify.models import Reminder, ReminderChannel, ReminderStatus

    p = program
    person = p["person"]("Reminded")
    appointment = _book(client, p, person, "individual_therapy", at(days(5)))
    rows = [
        ("sms", "sent", 2880),
        ("sms", "failed", 120),
        ("sms", "suppressed", 60),
        ("email", "sent", 2880),
        ("email", "cancelled", 120),
        ("email", "pending", 60),
    ]
    with app.app_context():
        for channel, status, lead in rows:
            due = datetime.combine(TODAY - timedelta(days=1), time(9), tzinfo=UTC)
            db.session.add(
                Reminder(
                    appointment_id=appointment,
                    client_id=person,
                    site_id=p["site"].id,
                    channel=ReminderChannel(channel),
                    lead_time_minutes=lead + 7,
                    due_at=due,
                    available_at=due,
                    for_starts_at=due,
                    status=ReminderStatus(status),
                )
            )
        db.session.commit()
    body = p["report"]("reminder-delivery", **{"from": days(-2), "to": days(0), "site_id": p["site"].id})
    by_channel = {r["channel"]: r for r in body["rows"]}
    assert by_channel["sms"] == {
        "channel": "sms",
        "reminders": 3,
        "sent": 1,
        "failed": 1,
        "suppressed": 1,
        "cancelled": 0,
        "pending": 0,
        "delivery_rate": 0.5,
    }
    assert by_channel["email"] == {
        "channel": "email",
        "reminders": 3,
        "sent": 1,
        "failed": 0,
        "suppressed": 0,
        "cancelled": 1,
        "pending": 1,
        "delivery_rate": 1.0,
    }
    assert body["summary"]["delivery_rate"] == 0.6667


def test_a_site_name_read_as_a_formula_is_written_as_text_in_a_report_csv(app, make_site, make_user, bearer, client):
    """CSV injection: a cell starting with = + - @ (or a tab or carriage return) is written with a
    leading apostrophe, as the appointment export and the dispensing log write them."""
    site = make_site(name='=HYPERLINK("https://example.invalid","Open")')
    headers = bearer(make_user("admin", sites=[site]))
    clinician = make_user("clinician", sites=[site])
    person = client.post(
        "/api/v1/clients",
        headers=bearer(clinician),
        json={"site_id": site.id, "first_name": "Ana", "last_name": "Silva", "date_of_birth": "1985-04-02"},
    ).get_json()
    plan = client.post(f"/api/v1/clients/{person['id']}/plans", headers=bearer(clinician), json={"problems": []})
    assert plan.status_code == 201, plan.get_json()
    with app.app_context():  # its review is five days overdue
        db.session.execute(
            update(Plan).where(Plan.id == plan.get_json()["id"]).values(next_review_on=TODAY - timedelta(days=5))
        )
        db.session.commit()
    window = f"from={(TODAY - timedelta(days=30)).isoformat()}&to={TODAY.isoformat()}"
    answer = client.get(f"/api/v1/reports/plan-reviews?format=csv&{window}", headers=headers)
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [row["site"] for row in rows] == ["'" + site.name]
