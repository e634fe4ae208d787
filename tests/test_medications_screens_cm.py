"""Medications (MAT rules), drug screens and the contingency-management ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def care(make_site, make_user, bearer, client):
    def setup(*, otp=False):
        site = make_site(is_otp=otp)
        clinician = make_user("clinician", sites=[site])
        headers = bearer(clinician)
        person = client.post(
            "/api/v1/clients",
            headers=headers,
            json={"site_id": site.id, "first_name": "Leo", "last_name": "Park", "date_of_birth": "1987-07-07"},
        ).get_json()
        plan = client.post(f"/api/v1/clients/{person['id']}/plans", headers=headers, json={"problems": []}).get_json()
        return {
            "site": site,
            "clinician": clinician,
            "headers": headers,
            "client": person,
            "plan": plan,
            "intake_headers": bearer(make_user("intake", sites=[site])),
        }

    return setup


def med(client, ctx, **body):
    payload = {
        "medication": "buprenorphine_naloxone",
        "dose": 16,
        "unit": "mg",
        "frequency": "daily",
        "phase": "maintenance",
        "prescriber_id": ctx["clinician"].id,
        "start_on": TODAY.isoformat(),
        **body,
    }
    return client.post(f"/api/v1/plans/{ctx['plan']['id']}/medications", headers=ctx["headers"], json=payload)


def screen(client, ctx, when, results=None, **extra):
    body = {"collected_at": when.isoformat(), "results": results or {}, **extra}
    return client.post(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"], json=body)


# --- medications -----------------------------------------------------------------------------


def test_methadone_only_at_an_opioid_treatment_program(client, care):
    clinic_site = care(otp=False)
    refused = med(client, clinic_site, medication="methadone", dose=30)
    assert refused.status_code == 422
    assert "medication" in refused.get_json()["errors"]
    otp = care(otp=True)
    assert med(client, otp, medication="methadone", dose=30).status_code == 201


def test_the_prescriber_must_be_a_clinician_of_the_site(client, care, make_user):
    ctx = care()
    intake = make_user("intake", sites=[ctx["site"]])
    response = med(client, ctx, prescriber_id=intake.id)
    assert response.status_code == 422
    assert "prescriber_id" in response.get_json()["errors"]


@pytest.mark.parametrize("days_before", [0, 3, 6])
def test_naltrexone_soon_after_an_opioid_positive_screen_needs_an_override(client, care, days_before):
    ctx = care()
    screen(client, ctx, NOW - timedelta(days=days_before), {"fentanyl": "positive", "cocaine": "negative"})
    # Days are counted on the site's calendar.
    start_on = (NOW - timedelta(days=days_before)).astimezone(ZoneInfo(ctx["site"].timezone)).date()
    start_on += timedelta(days=days_before)
    refused = med(client, ctx, medication="naltrexone_xr", dose=380, frequency="every 28 days", start_on=str(start_on))
    assert refused.status_code == 422
    errors = refused.get_json()["errors"]
    assert list(errors) == ["start_on"]
    assert "fentanyl positive" in errors["start_on"][0]
    allowed = med(
        client,
        ctx,
        medication="naltrexone_xr",
        dose=380,
        frequency="every 28 days",
        start_on=str(start_on),
        override_reason="Detoxified inpatient; naloxone challenge negative",
    )
    assert allowed.status_code == 201


def test_naltrexone_eight_days_after_exposure_needs_no_override(client, care):
    ctx = care()
    screen(client, ctx, NOW - timedelta(days=8), {"fentanyl": "positive"})
    screen(client, ctx, NOW - timedelta(days=1), {"fentanyl": "negative"})
    assert med(client, ctx, medication="naltrexone_oral", dose=50).status_code == 201


def test_naltrexone_within_seven_days_of_an_agonist_needs_an_override(client, care):
    ctx = care()
    bup = med(client, ctx, start_on=(TODAY - timedelta(days=30)).isoformat()).get_json()
    client.patch(
        f"/api/v1/medications/{bup['id']}",
        headers=ctx["headers"],
        json={"end_on": (TODAY - timedelta(days=3)).isoformat()},
    )
    refused = med(client, ctx, medication="naltrexone_oral", dose=50)
    assert refused.status_code == 422
    assert "buprenorphine_naloxone" in refused.get_json()["errors"]["start_on"][0]


def test_dose_changes_keep_their_history(client, care):
    ctx = care()
    created = med(client, ctx, start_on=(TODAY - timedelta(days=10)).isoformat()).get_json()
    url = f"/api/v1/medications/{created['id']}"
    client.patch(
        url,
        headers=ctx["headers"],
        json={
            "dose": 24,
            "phase": "stabilization",
            "effective_on": (TODAY - timedelta(days=5)).isoformat(),
            "reason": "cravings",
        },
    )
    client.patch(url, headers=ctx["headers"], json={"dose": 20, "reason": "sedation"})
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/medications", headers=ctx["headers"]).get_json()[
        "items"
    ]
    assert [(h["dose"], h["phase"], h["reason"]) for h in listed[0]["history"]] == [
        (16.0, "maintenance", "started"),
        (24.0, "stabilization", "cravings"),
        (20.0, "stabilization", "sedation"),
    ]
    assert listed[0]["dose"] == 20.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("dose", 0), ("dose", -5), ("unit", "pills"), ("phase", "forever"), ("medication", "oxycodone")],
)
def test_bad_medication_fields_are_422(client, care, field, value):
    response = med(client, care(), **{field: value})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


# --- drug screens ----------------------------------------------------------------------------


def test_screens_record_per_substance_results_observed_or_missed(client, care):
    ctx = care()
    made = screen(
        client, ctx, NOW - timedelta(days=2), {"fentanyl": "positive", "buprenorphine": "negative"}, observed=True
    )
    assert made.status_code == 201
    missed = screen(client, ctx, NOW - timedelta(days=1), missed=True)
    assert missed.status_code == 201
    bad = screen(client, ctx, NOW, {"fentanyl": "maybe"})
    assert bad.status_code == 422
    assert screen(client, ctx, NOW - timedelta(hours=3)).status_code == 422  # neither results nor missed
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()[
        "items"
    ]
    assert [(s["missed"], s["observed"], s["results"]) for s in listed] == [
        (True, False, {}),
        (False, True, {"buprenorphine": "negative", "fentanyl": "positive"}),
    ]


def test_re_recording_a_screen_does_not_duplicate_it(client, care):
    ctx = care()
    when = NOW - timedelta(days=1)
    first = screen(client, ctx, when, {"fentanyl": "positive"})
    again = screen(client, ctx, when, {"fentanyl": "negative"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()[
        "items"
    ]
    assert [s["results"] for s in listed] == [{"fentanyl": "negative"}]


def test_screens_are_clinical(client, care):
    ctx = care()
    assert (
        client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["intake_headers"]).status_code
        == 403
    )


# --- contingency management ------------------------------------------------------------------


def _program(client, ctx, **body):
    payload = {
        "target_substances": ["fentanyl", "opiates"],
        "schedule": "escalating_voucher",
        "starts_on": (TODAY - timedelta(days=30)).isoformat(),
        **body,
    }
    response = client.post(f"/api/v1/plans/{ctx['plan']['id']}/cm-programs", headers=ctx["headers"], json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _series(client, ctx, pattern, start_days_ago=20):
    ids = []
    for index, mark in enumerate(pattern):
        when = NOW - timedelta(days=start_days_ago - 2 * index)
        if mark == "m":
            made = screen(client, ctx, when, missed=True)
        else:
            result = "negative" if mark == "-" else "positive"
            made = screen(client, ctx, when, {"fentanyl": result, "opiates": "negative", "cocaine": "positive"})
        ids.append(made.get_json()["id"])
    return ids


def _ledger(client, ctx, program):
    return client.get(f"/api/v1/cm-programs/{program['id']}/ledger", headers=ctx["headers"]).get_json()


def test_escalating_voucher_follows_the_domain_example(client, care):
    ctx = care()
    program = _program(client, ctx)
    _series(client, ctx, "----+-")
    ledger = _ledger(client, ctx, program)
    assert [e["amount_cents"] for e in ledger["entries"]] == [250, 375, 1500, 625, 0, 250]
    assert ledger["total_cents"] == 3000
    this_year = sum(e["amount_cents"] for e in ledger["entries"] if e["at"].startswith(str(NOW.year)))
    assert ledger["cap_remaining_cents"] == 75000 - this_year


def test_a_missed_screen_resets_like_a_positive_and_non_target_positives_do_not(client, care):
    ctx = care()
    program = _program(client, ctx)
    _series(client, ctx, "--m--")  # cocaine positive throughout is not a target
    assert [e["amount_cents"] for e in _ledger(client, ctx, program)["entries"]] == [250, 375, 0, 250, 375]


def test_program_parameters_override_the_defaults(client, care):
    ctx = care()
    program = _program(
        client, ctx, params={"start_cents": 100, "increment_cents": 50, "bonus_cents": 500, "bonus_every": 2}
    )
    _series(client, ctx, "----")
    assert [e["amount_cents"] for e in _ledger(client, ctx, program)["entries"]] == [100, 650, 200, 750]


def test_the_cap_cuts_the_entry_that_crosses_it(client, care):
    ctx = care()
    program = _program(client, ctx, annual_cap_cents=1000)
    _series(client, ctx, "----")
    ledger = _ledger(client, ctx, program)
    # 250 + 375 = 625; the third entry earns 1500 but only 375 remain; nothing after.
    assert [e["amount_cents"] for e in ledger["entries"]] == [250, 375, 375, 0]
    assert [e["capped"] for e in ledger["entries"]] == [False, False, True, True]
    assert ledger["entries"][2]["earned_before_cap_cents"] == 1500
    assert ledger["total_cents"] == 1000


def test_correcting_a_screen_recomputes_without_double_counting(client, care):
    ctx = care()
    program = _program(client, ctx)
    ids = _series(client, ctx, "---")
    assert _ledger(client, ctx, program)["total_cents"] == 250 + 375 + 1500
    fixed = client.patch(
        f"/api/v1/drug-screens/{ids[1]}",
        headers=ctx["headers"],
        json={"results": {"fentanyl": "positive", "opiates": "negative"}},
    )
    assert fixed.status_code == 200
    assert [e["amount_cents"] for e in _ledger(client, ctx, program)["entries"]] == [250, 0, 250]
    client.patch(
        f"/api/v1/drug-screens/{ids[1]}",
        headers=ctx["headers"],
        json={"results": {"fentanyl": "negative", "opiates": "negative"}},
    )
    client.patch(
        f"/api/v1/drug-screens/{ids[1]}",
        headers=ctx["headers"],
        json={"results": {"fentanyl": "negative", "opiates": "negative"}},
    )
    assert _ledger(client, ctx, program)["total_cents"] == 250 + 375 + 1500


def test_prize_draws_escalate_to_the_maximum_and_prizes_count_toward_the_cap(client, care):
    ctx = care()
    program = _program(client, ctx, schedule="prize_draw", params={"max_draws": 3}, annual_cap_cents=1500)
    _series(client, ctx, "----+-")
    entries = _ledger(client, ctx, program)["entries"]
    assert [(e["kind"], e["draws"]) for e in entries] == [
        ("draws", 1),
        ("draws", 2),
        ("draws", 3),
        ("draws", 3),
        ("draws", 0),
        ("draws", 1),
    ]
    for cents in (1000, 2000):
        assert (
            client.post(
                f"/api/v1/cm-programs/{program['id']}/prizes", headers=ctx["headers"], json={"prize_cents": cents}
            ).status_code
            == 201
        )
    ledger = _ledger(client, ctx, program)
    prizes = [e for e in ledger["entries"] if e["kind"] == "prize"]
    assert [p["amount_cents"] for p in prizes] == [1000, 500]
    assert ledger["cap_remaining_cents"] == 0


def test_prizes_only_in_prize_draw_programs(client, care):
    ctx = care()
    program = _program(client, ctx)
    assert (
        client.post(
            f"/api/v1/cm-programs/{program['id']}/prizes", headers=ctx["headers"], json={"prize_cents": 500}
        ).status_code
        == 409
    )


def test_unknown_parameters_are_422(client, care):
    ctx = care()
    response = client.post(
        f"/api/v1/plans/{ctx['plan']['id']}/cm-programs",
        headers=ctx["headers"],
        json={"target_substances": ["fentanyl"], "schedule": "prize_draw", "params": {"start_cents": 100}},
    )
    assert response.status_code == 422
    assert "params.start_cents" in response.get_json()["errors"]
