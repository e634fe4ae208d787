"""The OTP dosing record: doses, split doses, take-homes and their review, the dispensing log,
corrections, and the missed-dose alert."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from clinic.core.time import from_local, local_today, utcnow
from clinic.extensions import db
from clinic.notify.models import StaffNotification, StaffNotificationKind

ZONE = "America/New_York"
ALL_MET = {
    "no_active_sud_or_risky_conditions": True,
    "regular_attendance": True,
    "no_serious_behavioural_problems": True,
    "no_recent_diversion": True,
    "safe_transport_and_storage": True,
    "other_considerations": "Works nights; lockbox seen.",
}


def today() -> date:
    return local_today(ZONE)


def at(day: date, hour: int = 9, minute: int = 0) -> str:
    """A time of a local day at the site, with its offset; never later than now."""
    instant = from_local(datetime.combine(day, time(hour, minute)), ZONE)
    return min(instant, utcnow() - timedelta(minutes=1)).isoformat()


@pytest.fixture
def otp(make_site, make_user, bearer, client):
    """An OTP with a clinician (the prescriber too), and a way to make a client on an order."""
    site = make_site(is_otp=True, timezone=ZONE)
    clinician = make_user("clinician", sites=[site], name="Dana Q. Reyes")
    headers = bearer(clinician)

    def patient(
        *,
        medication: str = "methadone",
        dose: float = 40,
        started_days_ago: int = 40,
        admitted_days_ago: int | None = 40,
        first_name: str = "Ana",
        last_name: str = "Silva",
    ):
        person = client.post(
            "/api/v1/clients",
            headers=headers,
            json={
                "site_id": site.id,
                "first_name": first_name,
                "last_name": last_name,
                "date_of_birth": "1985-04-02",
                "primary_clinician_id": clinician.id,
            },
        )
        assert person.status_code == 201, person.get_json()
        client_id = person.get_json()["id"]
        if admitted_days_ago is not None:
            admitted = client.post(
                f"/api/v1/clients/{client_id}/episodes",
                headers=headers,
                json={
                    "admitted_on": (today() - timedelta(days=admitted_days_ago)).isoformat(),
                    "level_of_care": "1-OTP",
                },
            )
            assert admitted.status_code == 201, admitted.get_json()
        plan = client.post(f"/api/v1/clients/{client_id}/plans", headers=headers, json={"problems": []}).get_json()
        order = client.post(
            f"/api/v1/plans/{plan['id']}/medications",
            headers=headers,
            json={
                "medication": medication,
                "dose": dose,
                "unit": "mg",
                "frequency": "daily",
                "phase": "maintenance",
                "prescriber_id": clinician.id,
                "start_on": (today() - timedelta(days=started_days_ago)).isoformat(),
                **(
                    {"override_reason": "Transferred from another OTP at this dose"}
                    if dose > 50 and medication == "methadone"
                    else {}
                ),
            },
        )
        assert order.status_code == 201, order.get_json()
        return {"id": client_id, "medication_id": order.get_json()["id"]}

    return {"site": site, "clinician": clinician, "headers": headers, "patient": patient}


def observed(client, ctx, person, day: date, amount: float = 40, **extra: Any):
    body = {
        "medication_id": person["medication_id"],
        "kind": "observed",
        "amount_mg": amount,
        "administered_at": at(day),
        "lot_number": "L-2291",
        **extra,
    }
    return client.post(f"/api/v1/clients/{person['id']}/doses", headers=ctx["headers"], json=body)


def take_home(client, ctx, person, days: int, *, day: date | None = None, amount: float = 40):
    body = {
        "medication_id": person["medication_id"],
        "kind": "take_home",
        "amount_mg": amount,
        "dispensed_at": at(day or today(), 0, 30),
        "take_home_days": days,
        "lot_number": "L-2291",
    }
    return client.post(f"/api/v1/clients/{person['id']}/doses", headers=ctx["headers"], json=body)


def review(client, ctx, person, criteria=None, *, made_days_ago: int = 0):
    """Record a review of the take-home criteria (made ``made_days_ago`` days before now)."""
    response = client.put(
        f"/api/v1/clients/{person['id']}/take-home-eligibility",
        headers=ctx["headers"],
        json={"criteria": criteria or ALL_MET, "note": "Reviewed with the client."},
    )
    if made_days_ago:
        from clinic.dosing.models import TakeHomeReview

        with client.application.app_context():
            for row in db.session.scalars(select(TakeHomeReview).where(TakeHomeReview.client_id == person["id"])):
                row.decided_at = utcnow() - timedelta(days=made_days_ago)
            db.session.commit()
    return response


def void(client, ctx, dose_id: int, reason: str = "Wrong client"):
    return client.post(f"/api/v1/doses/{dose_id}/entered-in-error", headers=ctx["headers"], json={"reason": reason})


# --- doses --------------------------------------------------------------------------------------


def test_an_observed_dose_must_match_the_days_order_and_is_given_once_a_day(client, otp):
    person = otp["patient"]()
    yesterday = today() - timedelta(days=1)
    wrong = observed(client, otp, person, yesterday, amount=45)
    assert wrong.status_code == 422
    assert "amount_mg" in wrong.get_json()["errors"]
    given = observed(client, otp, person, yesterday)
    assert given.status_code == 201, given.get_json()
    dose = given.get_json()
    assert dose["given_on"] == yesterday.isoformat()
    assert dose["dispenser_id"] == otp["clinician"].id
    assert dose["dispenser_initials"] == "DQR"
    assert dose["substance"] == "methadone"
    second = observed(client, otp, person, yesterday)
    assert second.status_code == 409
    # Another day is another dose.
    assert observed(client, otp, person, yesterday - timedelta(days=1)).status_code == 201


def test_no_dose_outside_the_order_nor_at_a_site_that_is_not_an_otp(client, otp, make_site, make_user, bearer):
    person = otp["patient"](started_days_ago=2)
    before = observed(client, otp, person, today() - timedelta(days=3))
    assert before.status_code == 422
    assert "medication_id" in before.get_json()["errors"]
    office = make_site(is_otp=False)
    clinician = make_user("clinician", sites=[office])
    headers = bearer(clinician)
    other = client.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": office.id, "first_name": "Bo", "last_name": "Lind", "date_of_birth": "1990-01-01"},
    ).get_json()
    plan = client.post(f"/api/v1/clients/{other['id']}/plans", headers=headers, json={"problems": []}).get_json()
    order = client.post(
        f"/api/v1/plans/{plan['id']}/medications",
        headers=headers,
        json={
            "medication": "buprenorphine",
            "dose": 16,
            "unit": "mg",
            "frequency": "daily",
            "phase": "maintenance",
            "prescriber_id": clinician.id,
            "start_on": (today() - timedelta(days=5)).isoformat(),
        },
    ).get_json()
    refused = client.post(
        f"/api/v1/clients/{other['id']}/doses",
        headers=headers,
        json={
            "medication_id": order["id"],
            "kind": "observed",
            "amount_mg": 16,
            "administered_at": at(today() - timedelta(days=1)),
            "lot_number": "B-1",
        },
    )
    assert refused.status_code == 422
    assert refused.get_json()["type"].endswith("not-an-otp")


def test_split_doses_may_not_exceed_the_days_dose(client, otp):
    person = otp["patient"](dose=60)
    day = today() - timedelta(days=1)
    assert observed(client, otp, person, day, amount=30, split=True).status_code == 201
    assert observed(client, otp, person, day, amount=20, split=True).status_code == 201
    over = observed(client, otp, person, day, amount=20, split=True)
    assert over.status_code == 422
    assert "amount_mg" in over.get_json()["errors"]
    assert observed(client, otp, person, day, amount=10, split=True).status_code == 201
    # The day's dose is given: a full one on top is a second dose.
    assert observed(client, otp, person, day, amount=60).status_code == 409


def test_a_dose_dated_off_the_calendar_is_refused_naming_the_field(client, otp):
    person = otp["patient"]()
    body = {"medication_id": person["medication_id"], "kind": "observed", "amount_mg": 40, "lot_number": "L-1"}
    for value in ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00"):
        refused = client.post(
            f"/api/v1/clients/{person['id']}/doses", headers=otp["headers"], json={**body, "administered_at": value}
        )
        assert refused.status_code == 422, refused.get_json()
        assert "administered_at" in refused.get_json()["errors"]


def test_only_clinicians_dose(client, otp, make_user, bearer):
    person = otp["patient"]()
    intake = bearer(make_user("intake", sites=[otp["site"]]))
    body = {
        "medication_id": person["medication_id"],
        "kind": "observed",
        "amount_mg": 40,
        "administered_at": at(today() - timedelta(days=1)),
        "lot_number": "L-1",
    }
    assert client.post(f"/api/v1/clients/{person['id']}/doses", headers=intake, json=body).status_code == 403
    assert client.get(f"/api/v1/clients/{person['id']}/doses", headers=intake).status_code == 403


# --- take-homes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day_in_treatment", "allowed"),
    [(14, 7), (15, 14), (30, 14), (31, 28)],
)
def test_take_home_supply_by_time_in_treatment(client, otp, day_in_treatment, allowed):
    person = otp["patient"](admitted_days_ago=day_in_treatment, started_days_ago=day_in_treatment)
    assert review(client, otp, person).status_code == 200
    eligibility = client.get(f"/api/v1/clients/{person['id']}/take-home-eligibility", headers=otp["headers"]).get_json()
    assert eligibility["days_in_treatment"] == day_in_treatment
    assert eligibility["max_take_home_days"] == allowed
    assert eligibility["eligible"] is True
    over = take_home(client, otp, person, allowed + 1)
    assert over.status_code == 422
    assert "take_home_days" in over.get_json()["errors"]
    given = take_home(client, otp, person, allowed)
    assert given.status_code == 201, given.get_json()
    assert given.get_json()["covered_from"] == (today() + timedelta(days=1)).isoformat()
    assert given.get_json()["covered_until"] == (today() + timedelta(days=allowed)).isoformat()


@pytest.mark.parametrize(("day_in_treatment", "doses"), [(14, 8), (30, 15)])
def test_one_dose_over_the_limit_is_refused(client, otp, day_in_treatment, doses):
    person = otp["patient"](admitted_days_ago=day_in_treatment, started_days_ago=day_in_treatment)
    review(client, otp, person)
    assert take_home(client, otp, person, doses).status_code == 422


def test_take_homes_need_a_recent_review_with_no_criterion_failed(client, otp, app):
    person = otp["patient"]()
    never = take_home(client, otp, person, 3)
    assert never.status_code == 422
    assert "take_home_days" in never.get_json()["errors"]
    answer = review(client, otp, person, {**ALL_MET, "no_recent_diversion": False}).get_json()
    assert answer["criteria"]["no_recent_diversion"] is False
    assert answer["eligible"] is False
    assert answer["decided_by"] == otp["clinician"].id
    assert take_home(client, otp, person, 3).status_code == 422
    review(client, otp, person)
    assert take_home(client, otp, person, 3).status_code == 201
    # A review older than 90 days no longer counts.
    from clinic.dosing.models import TakeHomeReview

    with app.app_context():
        for row in db.session.scalars(select(TakeHomeReview).where(TakeHomeReview.client_id == person["id"])):
            row.decided_at = utcnow() - timedelta(days=91)
        db.session.commit()
    stale = take_home(client, otp, person, 1, day=today())
    assert stale.status_code == 422
    assert "90 days" in stale.get_json()["errors"]["take_home_days"][0]


def test_a_review_that_leaves_criteria_unassessed_allows_no_take_homes(client, otp):
    person = otp["patient"]()
    partial = review(client, otp, person, {"regular_attendance": True, "no_recent_diversion": True}).get_json()
    assert partial["criteria"]["safe_transport_and_storage"] is None
    assert partial["eligible"] is False
    assert "safe_transport_and_storage" in partial["reason"]
    refused = take_home(client, otp, person, 3)
    assert refused.status_code == 422
    assert "safe_transport_and_storage" in refused.get_json()["errors"]["take_home_days"][0]
    # other_considerations is the clinician's words: it may stay empty.
    review(client, otp, person, {**ALL_MET, "other_considerations": None})
    assert take_home(client, otp, person, 3).status_code == 201


def test_a_take_home_recorded_late_needs_a_review_made_before_it_was_handed_over(client, otp):
    person = otp["patient"]()
    assert review(client, otp, person).status_code == 200
    # Handed over two days ago, entered now: the review made today did not exist then.
    late = take_home(client, otp, person, 1, day=today() - timedelta(days=2))
    assert late.status_code == 422
    assert "take_home_days" in late.get_json()["errors"]
    assert take_home(client, otp, person, 1).status_code == 201


def test_a_review_names_only_the_known_criteria(client, otp):
    person = otp["patient"]()
    unknown = review(client, otp, person, {"likes_the_staff": True})
    assert unknown.status_code == 422
    not_a_flag = review(client, otp, person, {"regular_attendance": "mostly"})
    assert not_a_flag.status_code == 422


# --- the dispensing log ---------------------------------------------------------------------------


def test_the_dispensing_log_of_a_day(client, otp):
    ana = otp["patient"](dose=60, first_name="Ana", last_name="Silva")
    ben = otp["patient"](medication="buprenorphine", dose=16, first_name="Ben", last_name="Okafor")
    cy = otp["patient"](dose=80, first_name="Cy", last_name="Moreau")
    review(client, otp, cy, made_days_ago=2)
    day = today() - timedelta(days=1)
    assert observed(client, otp, ana, day, amount=30, split=True, administered_at=at(day, 8, 5)).status_code == 201
    assert observed(client, otp, ben, day, amount=16, administered_at=at(day, 8, 40)).status_code == 201
    assert observed(client, otp, ana, day, amount=30, split=True, administered_at=at(day, 14, 0)).status_code == 201
    assert observed(client, otp, cy, day, amount=80, administered_at=at(day, 9, 15)).status_code == 201
    home = client.post(
        f"/api/v1/clients/{cy['id']}/doses",
        headers=otp["headers"],
        json={
            "medication_id": cy["medication_id"],
            "kind": "take_home",
            "amount_mg": 80,
            "take_home_days": 2,
            "dispensed_at": at(day, 9, 20),
            "lot_number": "M-77",
            "dosage_form": "oral solution, 2 bottles",
        },
    )
    assert home.status_code == 201, home.get_json()
    mistaken = observed(client, otp, ben, day - timedelta(days=1), amount=16)  # another day: not in the log
    assert mistaken.status_code == 201
    wrong = client.get(f"/api/v1/clients/{ben['id']}/doses", headers=otp["headers"]).get_json()["items"]
    ben_dose = next(d for d in wrong if d["given_on"] == day.isoformat())
    assert void(client, otp, ben_dose["id"], "Recorded for the wrong client").status_code == 200

    url = f"/api/v1/sites/{otp['site'].id}/dispensing-log"
    log = client.get(url, headers=otp["headers"], query_string={"date": day.isoformat()})
    assert log.status_code == 200
    assert log.headers["Cache-Control"] == "no-store"
    table = [
        (
            e["time"],
            e["client_name"],
            e["substance"],
            e["amount_consumed_mg"],
            e["amount_taken_home_mg"],
            e["take_home_form"],
            e["dispenser_initials"],
            e["lot_number"],
            e["voided"],
            e["void_reason"],
        )
        for e in log.get_json()["items"]
    ]
    assert table == [
        ("08:05", "Silva, Ana", "methadone", 30.0, 0.0, None, "DQR", "L-2291", False, None),
        (
            "08:40",
            "Okafor, Ben",
            "buprenorphine",
            16.0,
            0.0,
            None,
            "DQR",
            "L-2291",
            True,
            "Recorded for the wrong client",
        ),
        ("09:15", "Moreau, Cy", "methadone", 80.0, 0.0, None, "DQR", "L-2291", False, None),
        ("09:20", "Moreau, Cy", "methadone", 0.0, 160.0, "oral solution, 2 bottles", "DQR", "M-77", False, None),
        ("14:00", "Silva, Ana", "methadone", 30.0, 0.0, None, "DQR", "L-2291", False, None),
    ]
    assert log.get_json()["totals"] == {"amount_consumed_mg": 140.0, "amount_taken_home_mg": 160.0}
    first = log.get_json()["items"][0]
    assert (first["strength"], first["dosage_form"], first["split"]) == ("10 mg/mL", "oral solution", True)
    assert first["mrn"]

    as_csv = client.get(url, headers=otp["headers"], query_string={"date": day.isoformat(), "format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [(r["client_name"], r["amount_consumed_mg"], r["amount_taken_home_mg"], r["voided"]) for r in rows] == [
        ("Silva, Ana", "30", "0", "false"),
        ("Okafor, Ben", "16", "0", "true"),
        ("Moreau, Cy", "80", "0", "false"),
        ("Moreau, Cy", "0", "160", "false"),
        ("Silva, Ana", "30", "0", "false"),
    ]


def test_the_dispensing_log_csv_writes_formulas_as_text(client, otp):
    person = otp["patient"](last_name='=HYPERLINK("https://example.invalid")', first_name="Ana")
    day = today() - timedelta(days=1)
    assert observed(client, otp, person, day, lot_number="@SUM(A1)").status_code == 201
    url = f"/api/v1/sites/{otp['site'].id}/dispensing-log"
    as_csv = client.get(url, headers=otp["headers"], query_string={"date": day.isoformat(), "format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert (row["client_name"], row["lot_number"]) == ('\'=HYPERLINK("https://example.invalid"), Ana', "'@SUM(A1)")


def test_the_dispensing_log_is_for_the_sites_clinicians(client, otp, make_user, make_site, bearer):
    url = f"/api/v1/sites/{otp['site'].id}/dispensing-log"
    query = {"date": today().isoformat()}
    admin = bearer(make_user("admin", sites=[otp["site"]]))
    assert client.get(url, headers=admin, query_string=query).status_code == 403
    elsewhere = bearer(make_user("clinician", sites=[make_site()]))
    assert client.get(url, headers=elsewhere, query_string=query).status_code == 404
    assert client.get(url, headers=otp["headers"]).status_code == 422


def test_another_sites_dispensing_log_is_a_404_audited_as_denied(app, client, otp, make_user, make_site, bearer):
    from clinic.audit.models import AuditEvent

    stranger = make_user("clinician", sites=[make_site()])
    query = {"date": today().isoformat()}
    for site_id in (otp["site"].id, 999_999):  # another's site, and one that does not exist: the same 404
        answer = client.get(f"/api/v1/sites/{site_id}/dispensing-log", headers=bearer(stranger), query_string=query)
        assert answer.status_code == 404
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access.denied", AuditEvent.user_id == stranger.id)
        ).all()
    assert [(event.resource, event.resource_id, event.outcome.value) for event in denied] == [
        ("site", str(otp["site"].id), "denied")
    ]


# --- corrections --------------------------------------------------------------------------------


def test_a_dose_entered_in_error_stays_voided_and_counts_nowhere(client, otp):
    person = otp["patient"](dose=60)
    day = today() - timedelta(days=1)
    part = observed(client, otp, person, day, amount=40, split=True).get_json()
    assert observed(client, otp, person, day, amount=30, split=True).status_code == 422
    voided = void(client, otp, part["id"], "Spilled; dose replaced")
    assert voided.status_code == 200
    mark = voided.get_json()["entered_in_error"]
    assert mark["reason"] == "Spilled; dose replaced"
    assert mark["by_user_id"] == otp["clinician"].id
    assert void(client, otp, part["id"]).status_code == 409
    # The voided part no longer counts in the day's sum; the full dose may now be given.
    assert observed(client, otp, person, day, amount=60).status_code == 201
    listed = client.get(
        f"/api/v1/clients/{person['id']}/doses",
        headers=otp["headers"],
        query_string={"from": day.isoformat(), "to": day.isoformat()},
    ).get_json()["items"]
    assert sorted((d["amount_mg"], d["entered_in_error"] is not None) for d in listed) == [(40.0, True), (60.0, False)]


def test_a_voided_take_home_no_longer_covers_its_days(client, otp, app):
    from clinic.dosing.operations import covered_days

    person = otp["patient"]()
    review(client, otp, person)
    supply = take_home(client, otp, person, 3).get_json()
    days = [today() + timedelta(days=n) for n in (1, 2, 3)]
    with app.app_context():
        assert covered_days([person["id"]], today(), today() + timedelta(days=5))[person["id"]] == set(days)
    void(client, otp, supply["id"])
    with app.app_context():
        assert covered_days([person["id"]], today(), today() + timedelta(days=5))[person["id"]] == set()
    # Its days are free again: the corrected supply is a new entry.
    assert take_home(client, otp, person, 3).status_code == 201


def test_a_naltrexone_xr_injection_starts_its_coverage(client, otp, app):
    from clinic.dosing.operations import covered_days

    person = otp["patient"](medication="naltrexone_xr", dose=380, started_days_ago=30)
    given_on = today() - timedelta(days=2)
    injection = observed(client, otp, person, given_on, amount=380)
    assert injection.status_code == 201, injection.get_json()
    assert injection.get_json()["covered_until"] == (given_on + timedelta(days=27)).isoformat()
    order = client.get(f"/api/v1/clients/{person['id']}/medications", headers=otp["headers"]).get_json()["items"][0]
    assert order["last_injection_on"] == given_on.isoformat()
    with app.app_context():
        days = covered_days([person["id"]], given_on - timedelta(days=5), given_on + timedelta(days=40))
    assert min(days[person["id"]]) == given_on
    assert len(days[person["id"]]) == 28
    void(client, otp, injection.get_json()["id"])
    order = client.get(f"/api/v1/clients/{person['id']}/medications", headers=otp["headers"]).get_json()["items"][0]
    assert order["last_injection_on"] is None


# --- missed doses -------------------------------------------------------------------------------


def _missed_alerts(app, client_id: int) -> list[StaffNotification]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(StaffNotification).where(
                    StaffNotification.client_id == client_id,
                    StaffNotification.kind == StaffNotificationKind.MISSED_DOSES,
                )
            )
        )


def _run_alerts(app) -> None:
    from clinic.core.unit_of_work import unit_of_work
    from clinic.dosing.operations import alert_missed_doses

    with app.app_context(), unit_of_work():
        alert_missed_doses()


def test_three_missed_days_alert_the_clinician_and_the_prescriber_once(client, otp, app, make_user, bearer):
    prescriber = make_user("clinician", sites=[otp["site"]])
    two = otp["patient"](first_name="Two")
    three = otp["patient"](first_name="Three")
    covered = otp["patient"](first_name="Covered")
    with app.app_context():  # the client's clinician is the one who registered them; another prescribed
        from clinic.plans.models import Medication

        for person in (two, three):
            db.session.get_one(Medication, person["medication_id"]).prescriber_id = prescriber.id
        db.session.commit()
    observed(client, otp, two, today() - timedelta(days=3))
    observed(client, otp, three, today() - timedelta(days=4))
    review(client, otp, covered, made_days_ago=7)
    observed(client, otp, covered, today() - timedelta(days=6))
    assert take_home(client, otp, covered, 4, day=today() - timedelta(days=6)).status_code == 201

    _run_alerts(app)
    assert _missed_alerts(app, two["id"]) == []
    assert _missed_alerts(app, covered["id"]) == []
    alerts = _missed_alerts(app, three["id"])
    assert sorted(a.user_id for a in alerts) == sorted({otp["clinician"].id, prescriber.id})
    assert all("Three" not in a.title + a.body for a in alerts)
    _run_alerts(app)  # again: nobody is told twice
    assert len(_missed_alerts(app, three["id"])) == len(alerts)

    chart = client.get(f"/api/v1/clients/{three['id']}", headers=otp["headers"]).get_json()
    assert chart["last_dose_on"] == (today() - timedelta(days=4)).isoformat()
    assert chart["missed_dose_days"] == 3
    assert client.get(f"/api/v1/clients/{two['id']}", headers=otp["headers"]).get_json()["missed_dose_days"] == 2
    assert client.get(f"/api/v1/clients/{covered['id']}", headers=otp["headers"]).get_json()["missed_dose_days"] == 1
    intake = bearer(make_user("intake", sites=[otp["site"]]))
    assert "missed_dose_days" not in client.get(f"/api/v1/clients/{three['id']}", headers=intake).get_json()


def test_a_voided_dose_no_longer_counts_as_taken(client, otp, app):
    person = otp["patient"]()
    observed(client, otp, person, today() - timedelta(days=5))
    last = observed(client, otp, person, today() - timedelta(days=2)).get_json()
    _run_alerts(app)
    assert _missed_alerts(app, person["id"]) == []
    void(client, otp, last["id"], "Dose was not taken: recorded in error")
    chart = client.get(f"/api/v1/clients/{person['id']}", headers=otp["headers"]).get_json()
    assert chart["last_dose_on"] == (today() - timedelta(days=5)).isoformat()
    assert chart["missed_dose_days"] == 4
    _run_alerts(app)
    assert len(_missed_alerts(app, person["id"])) == 1


def test_a_dose_today_ends_the_run_of_missed_days(client, otp):
    person = otp["patient"]()
    observed(client, otp, person, today() - timedelta(days=6))
    chart = client.get(f"/api/v1/clients/{person['id']}", headers=otp["headers"]).get_json()
    assert chart["missed_dose_days"] == 5
    assert observed(client, otp, person, today()).status_code == 201
    chart = client.get(f"/api/v1/clients/{person['id']}", headers=otp["headers"]).get_json()
    assert (chart["last_dose_on"], chart["missed_dose_days"]) == (today().isoformat(), 0)


def test_no_dose_for_a_day_outside_the_episode_of_care(client, otp):
    person = otp["patient"](admitted_days_ago=10, started_days_ago=20)
    before = observed(client, otp, person, today() - timedelta(days=12))
    assert before.status_code == 422
    assert "medication_id" in before.get_json()["errors"]
    assert observed(client, otp, person, today() - timedelta(days=10)).status_code == 201
    discharged = client.post(
        f"/api/v1/episodes/{_open_episode_id(client, otp, person)}/discharge",
        headers=otp["headers"],
        json={"discharged_on": (today() - timedelta(days=2)).isoformat(), "reason_code": 2},
    )
    assert discharged.status_code == 200, discharged.get_json()
    # A dose given before the discharge may still be entered; none after it.
    assert observed(client, otp, person, today() - timedelta(days=3)).status_code == 201
    assert observed(client, otp, person, today() - timedelta(days=1)).status_code == 422


def _open_episode_id(client, ctx, person) -> int:
    episodes = client.get(f"/api/v1/clients/{person['id']}/episodes", headers=ctx["headers"]).get_json()["items"]
    return next(e["id"] for e in episodes if e["discharged_on"] is None)


def test_a_client_not_dosed_at_an_otp_shows_no_dosing(client, make_site, make_user, bearer):
    site = make_site()
    headers = bearer(make_user("clinician", sites=[site]))
    person = client.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": site.id, "first_name": "Eve", "last_name": "Ng", "date_of_birth": "1979-09-09"},
    ).get_json()
    chart = client.get(f"/api/v1/clients/{person['id']}", headers=headers).get_json()
    assert chart["last_dose_on"] is None
    assert chart["missed_dose_days"] is None


# --- the audit trail --------------------------------------------------------------------------


def _reads(app, client_id: int) -> list[tuple[str, Any]]:
    from clinic.audit.models import AuditEvent

    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.client_id == client_id, AuditEvent.action.like("%.read"))
        return [(event.action, (event.details or {}).get("via")) for event in db.session.scalars(stmt)]


def test_every_read_of_the_dosing_record_is_on_the_clients_audit_trail(app, client, otp):
    person = otp["patient"]()
    # Time in treatment and its limit are the client's data even before any review is recorded.
    before = len(_reads(app, person["id"]))
    answer = client.get(f"/api/v1/clients/{person['id']}/take-home-eligibility", headers=otp["headers"])
    assert answer.status_code == 200
    assert answer.get_json()["days_in_treatment"] == 40
    assert answer.headers["Cache-Control"] == "no-store"
    assert len(_reads(app, person["id"])) == before + 1
    assert observed(client, otp, person, today() - timedelta(days=1)).status_code == 201
    for path in (
        f"/api/v1/clients/{person['id']}/doses",
        f"/api/v1/sites/{otp['site'].id}/dispensing-log?date={(today() - timedelta(days=1)).isoformat()}",
        f"/api/v1/sites/{otp['site'].id}/dispensing-log?date={(today() - timedelta(days=1)).isoformat()}&format=csv",
        f"/api/v1/clients/{person['id']}/take-home-eligibility",
    ):
        before = len(_reads(app, person["id"]))
        answer = client.get(path, headers=otp["headers"])
        assert answer.status_code == 200, path
        assert answer.data
        assert answer.headers["Cache-Control"] == "no-store", path
        assert len(_reads(app, person["id"])) > before, path
