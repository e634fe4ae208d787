"""A drug screen entered in error: kept and marked, counted nowhere, and what it already paid stays paid.

Also ending a CM program (``POST /cm-programs/{id}/end``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from clinic.extensions import db

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
FENTANYL_ONLY = {"fentanyl": "negative"}


@pytest.fixture
def care(make_site, make_user, bearer, client):
    admin = bearer(make_user("admin"))

    def setup() -> dict[str, Any]:
        site = make_site()
        clinician = make_user("clinician", sites=[site])
        headers = bearer(clinician)
        person = client.post(
            "/api/v1/clients",
            headers=headers,
            json={"site_id": site.id, "first_name": "Ada", "last_name": "Moss", "date_of_birth": "1984-02-09"},
        ).get_json()
        plan = client.post(f"/api/v1/clients/{person['id']}/plans", headers=headers, json={"problems": []}).get_json()
        return {
            "site": site,
            "clinician": clinician,
            "headers": headers,
            "admin": admin,
            "client": person,
            "plan": plan,
        }

    return setup


def screen(client, ctx, when, results=None, **extra):
    body = {"collected_at": when.isoformat(), "results": results or {}, **extra}
    return client.post(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"], json=body)


def series(client, ctx, pattern: str, start_days_ago: int = 20) -> list[int]:
    """One screen every two days: ``-`` negative for fentanyl, ``+`` positive."""
    ids = []
    for index, mark in enumerate(pattern):
        result = "negative" if mark == "-" else "positive"
        made = screen(client, ctx, NOW - timedelta(days=start_days_ago - 2 * index), {"fentanyl": result})
        assert made.status_code == 201, made.get_json()
        ids.append(made.get_json()["id"])
    return ids


def program(client, ctx, **body):
    payload = {
        "target_substances": ["fentanyl"],
        "schedule": "escalating_voucher",
        "starts_on": (TODAY - timedelta(days=30)).isoformat(),
        **body,
    }
    made = client.post(f"/api/v1/plans/{ctx['plan']['id']}/cm-programs", headers=ctx["headers"], json=payload)
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def ledger(client, ctx, prog):
    answer = client.get(f"/api/v1/cm-programs/{prog['id']}/ledger", headers=ctx["headers"])
    assert answer.status_code == 200
    return answer.get_json()


def mark(client, ctx, screen_id, reason="Recorded on the wrong cup.", headers=None):
    return client.post(
        f"/api/v1/drug-screens/{screen_id}/entered-in-error", headers=headers or ctx["headers"], json={"reason": reason}
    )


def report(client, ctx, name):
    answer = client.get(
        f"/api/v1/reports/{name}",
        headers=ctx["admin"],
        query_string={
            "from": (TODAY - timedelta(days=60)).isoformat(),
            "to": TODAY.isoformat(),
            "site_id": ctx["site"].id,
        },
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


# --- the endpoint ----------------------------------------------------------------------------------


def test_a_screen_entered_in_error_stays_marked_with_who_when_and_why(client, care):
    ctx = care()
    wrong = screen(client, ctx, NOW - timedelta(hours=2), {"fentanyl": "positive"}).get_json()
    answer = mark(client, ctx, wrong["id"], reason="  Result read from another client's cup. ")
    assert answer.status_code == 200
    marked = answer.get_json()
    assert marked["id"] == wrong["id"]
    assert marked["results"] == {"fentanyl": "positive"}  # as recorded
    assert marked["entered_in_error"]["reason"] == "Result read from another client's cup."
    assert marked["entered_in_error"]["by_user_id"] == ctx["clinician"].id
    assert abs(datetime.fromisoformat(marked["entered_in_error"]["at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()
    assert [(s["id"], s["entered_in_error"] is not None) for s in listed["items"]] == [(wrong["id"], True)]


def test_marking_again_or_changing_a_screen_entered_in_error_is_a_409(client, care):
    ctx = care()
    wrong = screen(client, ctx, NOW - timedelta(hours=2), {"fentanyl": "positive"}).get_json()
    assert mark(client, ctx, wrong["id"]).status_code == 200
    again = mark(client, ctx, wrong["id"], reason="Another reason.")
    assert again.status_code == 409
    assert again.headers["Content-Type"].startswith("application/problem+json")
    assert again.get_json()["type"].endswith("/already-entered-in-error")
    assert "Record the right result as a new screen" in again.get_json()["detail"]
    changed = client.patch(
        f"/api/v1/drug-screens/{wrong['id']}", headers=ctx["headers"], json={"results": {"fentanyl": "negative"}}
    )
    assert changed.status_code == 409
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()
    assert listed["items"][0]["entered_in_error"]["reason"] == "Recorded on the wrong cup."
    assert listed["items"][0]["results"] == {"fentanyl": "positive"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": "ok", "why": 1}, "why"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, care, body, field):
    ctx = care()
    wrong = screen(client, ctx, NOW - timedelta(hours=2), FENTANYL_ONLY).get_json()
    answer = client.post(f"/api/v1/drug-screens/{wrong['id']}/entered-in-error", headers=ctx["headers"], json=body)
    assert answer.status_code == 422
    assert field in answer.get_json()["errors"]
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()
    assert listed["items"][0]["entered_in_error"] is None


def test_out_of_scope_is_a_404_and_intake_may_not(client, care, make_user, bearer):
    ctx = care()
    other = care()
    wrong = screen(client, ctx, NOW - timedelta(hours=2), FENTANYL_ONLY).get_json()
    assert mark(client, ctx, wrong["id"], headers=other["headers"]).status_code == 404
    assert mark(client, ctx, 10**9).status_code == 404
    intake = bearer(make_user("intake", sites=[ctx["site"]]))
    assert mark(client, ctx, wrong["id"], headers=intake).status_code == 403
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()
    assert listed["items"][0]["entered_in_error"] is None


def test_the_mark_and_the_refusals_are_on_the_audit_trail(app, client, care):
    from clinic.audit.models import AuditEvent

    ctx = care()
    other = care()
    wrong = screen(client, ctx, NOW - timedelta(hours=2), FENTANYL_ONLY).get_json()
    assert mark(client, ctx, wrong["id"], headers=other["headers"]).status_code == 404
    assert mark(client, ctx, wrong["id"]).status_code == 200
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.client_id == ctx["client"]["id"]).order_by(AuditEvent.id)
        ).all()
        denied = [e for e in events if e.action == "access.denied"]
        assert [(e.user_id, e.resource, e.resource_id) for e in denied] == [
            (other["clinician"].id, "drug_screen", str(wrong["id"]))
        ]
        updates = [e for e in events if e.action == "drug_screen.update"]
        assert len(updates) == 1
        assert updates[0].user_id == ctx["clinician"].id
        assert updates[0].resource_id == str(wrong["id"])
        assert updates[0].details["entered_in_error"] is True


# --- counted nowhere -------------------------------------------------------------------------------


def test_a_wrong_positive_no_longer_breaks_the_streak_and_the_report_follows(client, care):
    ctx = care()
    prog = program(client, ctx)
    ids = series(client, ctx, "--+-")
    assert [e["amount_cents"] for e in ledger(client, ctx, prog)["entries"]] == [250, 375, 0, 250]
    assert mark(client, ctx, ids[2]).status_code == 200
    after = ledger(client, ctx, prog)
    # The streak runs on as if the wrong positive had never been recorded: the client is owed the difference.
    assert [(e["drug_screen_id"], e["amount_cents"]) for e in after["entries"]] == [
        (ids[0], 250),
        (ids[1], 375),
        (ids[3], 1500),
    ]
    assert after["total_cents"] == 2125
    assert ledger(client, ctx, prog) == after
    rows = report(client, ctx, "cm-incentives")
    assert rows["summary"]["total_cents"] == 2125
    assert rows["rows"][0]["negative_samples"] == 3


def test_an_incentive_already_paid_is_kept_and_the_right_result_resets_the_streak(client, care):
    ctx = care()
    prog = program(client, ctx)
    ids = series(client, ctx, "---")
    wrong_at = NOW - timedelta(days=16)
    assert [e["amount_cents"] for e in ledger(client, ctx, prog)["entries"]] == [250, 375, 1500]
    assert mark(client, ctx, ids[2], reason="The cup was positive; read as negative.").status_code == 200
    kept = ledger(client, ctx, prog)
    assert [(e["drug_screen_id"], e["amount_cents"], e["kept"]) for e in kept["entries"]] == [
        (ids[0], 250, False),
        (ids[1], 375, False),
        (ids[2], 1500, True),  # handed to the client at the visit: never taken back
    ]
    assert kept["total_cents"] == 2125
    # The kept voucher is in no streak: the next negative is the third in a row.
    assert kept["cap_remaining_cents"] == 75000 - sum(
        e["amount_cents"] for e in kept["entries"] if e["at"].startswith(str(NOW.year))
    )
    # The right result, recorded at the same collection time, is a new screen: the wrong one stays.
    right = screen(client, ctx, wrong_at, {"fentanyl": "positive"})
    assert right.status_code == 201, right.get_json()
    assert right.get_json()["id"] != ids[2]
    listed = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"]).get_json()
    assert len(listed["items"]) == 4
    after = ledger(client, ctx, prog)
    assert [(e["amount_cents"], e["kept"]) for e in after["entries"]] == [
        (250, False),
        (375, False),
        (1500, True),
        (0, False),
    ]
    assert series(client, ctx, "-", start_days_ago=14)
    assert ledger(client, ctx, prog)["entries"][-1]["amount_cents"] == 250  # a new streak
    summary = report(client, ctx, "cm-incentives")["summary"]
    assert summary["total_cents"] == 2375 == ledger(client, ctx, prog)["total_cents"]
    assert summary["negative_samples"] == 3  # the kept entry is money paid, not a negative sample


def test_a_kept_incentive_still_counts_against_the_annual_cap(client, care):
    ctx = care()
    prog = program(client, ctx, annual_cap_cents=700)
    ids = series(client, ctx, "---")  # 250, 375, then 75 of 1500 (the cap)
    assert [e["amount_cents"] for e in ledger(client, ctx, prog)["entries"]] == [250, 375, 75]
    assert mark(client, ctx, ids[1]).status_code == 200
    after = ledger(client, ctx, prog)
    assert [(e["amount_cents"], e["kept"]) for e in after["entries"]] == [(250, False), (375, True), (75, False)]
    assert after["entries"][2]["capped"] is True
    assert after["cap_remaining_cents"] == 0
    assert report(client, ctx, "cm-incentives")["summary"]["total_cents"] == 700


def test_draws_given_and_prizes_drawn_on_a_wrong_screen_stay(client, care):
    ctx = care()
    prog = program(client, ctx, schedule="prize_draw")
    ids = series(client, ctx, "--")
    prize = client.post(f"/api/v1/cm-programs/{prog['id']}/prizes", headers=ctx["headers"], json={"prize_cents": 500})
    assert prize.status_code == 201
    assert mark(client, ctx, ids[1]).status_code == 200
    entries = ledger(client, ctx, prog)["entries"]
    assert [(e["kind"], e["draws"], e["amount_cents"], e["kept"]) for e in entries] == [
        ("draws", 1, 0, False),
        ("draws", 2, 0, True),
        ("prize", None, 500, False),
    ]
    assert report(client, ctx, "cm-incentives")["rows"][0]["draws"] == 3


def test_nothing_is_kept_for_a_screen_that_earned_nothing(client, care):
    ctx = care()
    prog = program(client, ctx)
    ids = series(client, ctx, "-+")
    assert mark(client, ctx, ids[1]).status_code == 200
    assert [(e["drug_screen_id"], e["kept"]) for e in ledger(client, ctx, prog)["entries"]] == [(ids[0], False)]


def test_the_drug_screens_report_and_the_timeline_leave_it_out(client, care):
    ctx = care()
    kept, wrong = series(client, ctx, "-+", start_days_ago=4)
    before = report(client, ctx, "drug-screens")["rows"]
    assert sum(r["positives"] for r in before) == 1
    assert mark(client, ctx, wrong).status_code == 200
    after = report(client, ctx, "drug-screens")["rows"]
    assert sum(r["positives"] for r in after) == 0
    assert sum(r["screens"] for r in after) == 1
    timeline = client.get(f"/api/v1/clients/{ctx['client']['id']}/timeline", headers=ctx["headers"]).get_json()
    screens = [e["resource_id"] for e in timeline["items"] if e["kind"] == "drug_screen"]
    assert screens == [kept]


def test_a_wrong_opioid_positive_no_longer_holds_back_naltrexone(client, care):
    ctx = care()
    wrong = screen(client, ctx, NOW - timedelta(days=2), {"fentanyl": "positive"}).get_json()
    order = {
        "medication": "naltrexone_oral",
        "dose": 50,
        "unit": "mg",
        "frequency": "daily",
        "phase": "maintenance",
        "prescriber_id": ctx["clinician"].id,
        "start_on": TODAY.isoformat(),
    }
    refused = client.post(f"/api/v1/plans/{ctx['plan']['id']}/medications", headers=ctx["headers"], json=order)
    assert refused.status_code == 422
    assert "naltrexone_washout" in {r["rule"] for r in refused.get_json()["rules"]}
    assert mark(client, ctx, wrong["id"]).status_code == 200
    ordered = client.post(f"/api/v1/plans/{ctx['plan']['id']}/medications", headers=ctx["headers"], json=order)
    assert ordered.status_code == 201, ordered.get_json()


# --- ending a program ------------------------------------------------------------------------------


def end(client, ctx, prog, headers=None, **body):
    return client.post(f"/api/v1/cm-programs/{prog['id']}/end", headers=headers or ctx["headers"], json=body)


def test_ending_a_program_stops_its_earnings_after_the_day(client, care):
    ctx = care()
    prog = program(client, ctx)
    series(client, ctx, "--", start_days_ago=10)  # 10 and 8 days ago
    ends_on = TODAY - timedelta(days=7)
    answer = end(client, ctx, prog, ends_on=ends_on.isoformat())
    assert answer.status_code == 200
    assert answer.get_json()["ends_on"] == ends_on.isoformat()
    series(client, ctx, "-", start_days_ago=2)
    after = ledger(client, ctx, prog)
    assert [e["amount_cents"] for e in after["entries"]] == [250, 375]
    again = end(client, ctx, prog)
    assert again.status_code == 409
    assert again.get_json()["type"].endswith("/program-ended")
    assert f"already ended on {ends_on.isoformat()}" in again.get_json()["detail"]


def test_a_program_ends_today_by_default_and_not_before_what_it_counted(client, care):
    ctx = care()
    prog = program(client, ctx)
    series(client, ctx, "-", start_days_ago=3)
    early = end(client, ctx, prog, ends_on=(TODAY - timedelta(days=5)).isoformat())
    assert early.status_code == 422
    assert "ends_on" in early.get_json()["errors"]
    before_start = end(client, ctx, prog, ends_on=(TODAY - timedelta(days=40)).isoformat())
    assert before_start.status_code == 422
    assert "ends_on" in before_start.get_json()["errors"]
    assert end(client, ctx, prog, ends_on="not a date").status_code == 422
    ended = end(client, ctx, prog)
    assert ended.status_code == 200
    assert ended.get_json()["ends_on"] == TODAY.isoformat()


def test_ending_is_scoped_and_for_clinicians(client, care, make_user, bearer):
    ctx = care()
    other = care()
    prog = program(client, ctx)
    assert end(client, ctx, prog, headers=other["headers"]).status_code == 404
    assert end(client, ctx, prog, headers=bearer(make_user("intake", sites=[ctx["site"]]))).status_code == 403
    assert ledger(client, ctx, prog)["program_id"] == prog["id"]
    got = client.get(f"/api/v1/clients/{ctx['client']['id']}/drug-screens", headers=ctx["headers"])
    assert got.status_code == 200
