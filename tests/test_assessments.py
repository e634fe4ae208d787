"""Instruments scored exactly as published, the assessment life cycle, trends and safety alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from clinic.assessments.definitions import instruments
from clinic.audit.models import AuditEvent
from clinic.extensions import db
from clinic.notify.models import StaffNotification

NOW = datetime.now(UTC)

COWS_ALLOWED = {
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


# --- independent scoring, written from DOMAIN.md, to compare the server against ------------------


def band(total, bands):
    for label, low, high in bands:
        if low <= total and (high is None or total <= high):
            return label
    raise AssertionError(total)


def expected_score(code, answers):
    if code == "DSM5-OUD":
        counted = [f"c{i}" for i in range(1, 12)]
        if answers.get("prescribed_only") is True:
            counted = [c for c in counted if c not in ("c10", "c11")]
        total = sum(1 for c in counted if answers[c])
        return total, band(total, [("none", 0, 1), ("mild", 2, 3), ("moderate", 4, 5), ("severe", 6, None)]), []
    if code == "COWS":
        total = sum(answers[k] for k in COWS_ALLOWED)
        return (
            total,
            band(
                total,
                [
                    ("none", 0, 4),
                    ("mild", 5, 12),
                    ("moderate", 13, 24),
                    ("moderately_severe", 25, 36),
                    ("severe", 37, None),
                ],
            ),
            [],
        )
    if code == "SOWS":
        return sum(answers[f"q{i}"] for i in range(1, 17)), None, []
    if code == "PHQ-9":
        total = sum(answers[f"q{i}"] for i in range(1, 10))
        flags = ["suicide_risk_item"] if answers["q9"] > 0 else []
        return (
            total,
            band(
                total,
                [
                    ("minimal", 0, 4),
                    ("mild", 5, 9),
                    ("moderate", 10, 14),
                    ("moderately_severe", 15, 19),
                    ("severe", 20, 27),
                ],
            ),
            flags,
        )
    if code == "GAD-7":
        total = sum(answers[f"q{i}"] for i in range(1, 8))
        return total, band(total, [("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("severe", 15, 21)]), []
    if code == "DAST-10":
        total = sum(1 for i in range(1, 11) if (not answers[f"q{i}"] if i == 3 else answers[f"q{i}"]))
        return (
            total,
            band(total, [("none", 0, 0), ("low", 1, 2), ("moderate", 3, 5), ("substantial", 6, 8), ("severe", 9, 10)]),
            [],
        )
    if code == "AUDIT-C":
        total = answers["q1"] + answers["q2"] + answers["q3"]
        threshold = 4 if answers["sex"] == "male" else 3
        return total, "positive" if total >= threshold else "negative", []
    if code == "ASAM":
        return None, None, [f"high_risk_d{i}" for i in range(1, 7) if answers[f"d{i}"] == 4]
    raise AssertionError(code)


def answer_strategy(code):
    ints = lambda n, keys: st.fixed_dictionaries({k: st.integers(0, n) for k in keys})  # noqa: E731
    if code == "DSM5-OUD":
        return st.fixed_dictionaries(
            {f"c{i}": st.booleans() for i in range(1, 12)}, optional={"prescribed_only": st.booleans()}
        )
    if code == "COWS":
        return st.fixed_dictionaries({k: st.sampled_from(v) for k, v in COWS_ALLOWED.items()})
    if code == "SOWS":
        return ints(4, [f"q{i}" for i in range(1, 17)])
    if code == "PHQ-9":
        return ints(3, [f"q{i}" for i in range(1, 10)])
    if code == "GAD-7":
        return ints(3, [f"q{i}" for i in range(1, 8)])
    if code == "DAST-10":
        return st.fixed_dictionaries({f"q{i}": st.booleans() for i in range(1, 11)})
    if code == "AUDIT-C":
        return st.fixed_dictionaries(
            {
                "q1": st.integers(0, 4),
                "q2": st.integers(0, 4),
                "q3": st.integers(0, 4),
                "sex": st.sampled_from(["female", "male"]),
            }
        )
    if code == "ASAM":
        return st.fixed_dictionaries(
            {
                **{f"d{i}": st.integers(0, 4) for i in range(1, 7)},
                "edition": st.just("3"),
                "level_of_care": st.sampled_from(["1", "2.1", "3.7-WM"]),
            }
        )
    raise AssertionError(code)


CODES = ["DSM5-OUD", "COWS", "SOWS", "PHQ-9", "GAD-7", "DAST-10", "AUDIT-C", "ASAM"]


@pytest.mark.parametrize("code", CODES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_scores_match_an_independent_scoring(code, data):
    answers = data.draw(answer_strategy(code))
    instrument = instruments()[code]
    score = instrument.score(instrument.validate(answers))
    assert (score.total, score.severity, score.flags) == expected_score(code, answers)


# --- every band boundary --------------------------------------------------------------------------


def _sum_answers(keys, total, per_item_max):
    answers, left = {}, total
    for key in keys:
        take = min(per_item_max, left)
        answers[key] = take
        left -= take
    assert left == 0
    return answers


@pytest.mark.parametrize(
    ("code", "keys", "item_max", "boundaries"),
    [
        (
            "PHQ-9",
            [f"q{i}" for i in range(1, 10)],
            3,
            {
                0: "minimal",
                4: "minimal",
                5: "mild",
                9: "mild",
                10: "moderate",
                14: "moderate",
                15: "moderately_severe",
                19: "moderately_severe",
                20: "severe",
                27: "severe",
            },
        ),
        (
            "GAD-7",
            [f"q{i}" for i in range(1, 8)],
            3,
            {
                0: "minimal",
                4: "minimal",
                5: "mild",
                9: "mild",
                10: "moderate",
                14: "moderate",
                15: "severe",
                21: "severe",
            },
        ),
    ],
)
def test_sum_scale_band_boundaries(code, keys, item_max, boundaries):
    instrument = instruments()[code]
    for total, label in boundaries.items():
        # Keep q9 at 0 where possible so the band, not the flag, is under test.
        answers = _sum_answers(keys, total, item_max)
        score = instrument.score(instrument.validate(answers))
        assert (score.total, score.severity) == (total, label), (code, total)


def _cows_with_total(total):
    answers = dict.fromkeys(COWS_ALLOWED, 0)
    left = total
    for key, allowed in sorted(COWS_ALLOWED.items(), key=lambda kv: -max(kv[1])):
        best = max((v for v in allowed if v <= left), default=0)
        answers[key] = best
        left -= best
    assert left == 0, total
    return answers


@pytest.mark.parametrize(
    ("total", "label"),
    [
        (0, "none"),
        (4, "none"),
        (5, "mild"),
        (12, "mild"),
        (13, "moderate"),
        (24, "moderate"),
        (25, "moderately_severe"),
        (36, "moderately_severe"),
        (37, "severe"),
        (48, "severe"),
    ],
)
def test_cows_band_boundaries(total, label):
    instrument = instruments()["COWS"]
    score = instrument.score(instrument.validate(_cows_with_total(total)))
    assert (score.total, score.severity) == (total, label)


@pytest.mark.parametrize(
    ("met", "label"),
    [
        (0, "none"),
        (1, "none"),
        (2, "mild"),
        (3, "mild"),
        (4, "moderate"),
        (5, "moderate"),
        (6, "severe"),
        (11, "severe"),
    ],
)
def test_dsm5_band_boundaries(met, label):
    instrument = instruments()["DSM5-OUD"]
    answers = {f"c{i}": i <= met for i in range(1, 12)}
    assert instrument.score(instrument.validate(answers)).severity == label


def test_dsm5_tolerance_and_withdrawal_do_not_count_when_prescribed_only():
    instrument = instruments()["DSM5-OUD"]
    answers = {f"c{i}": i in (1, 10, 11) for i in range(1, 12)}
    assert instrument.score(instrument.validate(answers)).total == 3
    prescribed = instrument.score(instrument.validate({**answers, "prescribed_only": True}))
    assert (prescribed.total, prescribed.severity) == (1, "none")


@pytest.mark.parametrize(
    ("yes_count", "label"),
    [
        (0, "none"),
        (1, "low"),
        (2, "low"),
        (3, "moderate"),
        (5, "moderate"),
        (6, "substantial"),
        (8, "substantial"),
        (9, "severe"),
        (10, "severe"),
    ],
)
def test_dast10_band_boundaries_with_item_3_reversed(yes_count, label):
    instrument = instruments()["DAST-10"]
    # Scoring items: q3 scores for "no". Start from the zero-score answers and add scoring answers.
    answers = {f"q{i}": i == 3 for i in range(1, 11)}
    order = [3, 1, 2, 4, 5, 6, 7, 8, 9, 10]
    for i in order[:yes_count]:
        answers[f"q{i}"] = i != 3
    score = instrument.score(instrument.validate(answers))
    assert (score.total, score.severity) == (yes_count, label)


def test_dast10_item_3_answered_no_scores_one():
    instrument = instruments()["DAST-10"]
    all_no = {f"q{i}": False for i in range(1, 11)}
    assert instrument.score(all_no).total == 1
    assert instrument.score({**all_no, "q3": True}).total == 0


@pytest.mark.parametrize(
    ("sex", "total", "label"),
    [
        ("female", 2, "negative"),
        ("female", 3, "positive"),
        ("male", 3, "negative"),
        ("male", 4, "positive"),
        ("female", 12, "positive"),
        ("male", 0, "negative"),
    ],
)
def test_audit_c_thresholds_by_sex(sex, total, label):
    instrument = instruments()["AUDIT-C"]
    answers = {**_sum_answers(["q1", "q2", "q3"], total, 4), "sex": sex}
    assert instrument.score(instrument.validate(answers)).severity == label


def test_sows_has_a_total_and_no_severity():
    instrument = instruments()["SOWS"]
    score = instrument.score(instrument.validate({f"q{i}": 4 for i in range(1, 17)}))
    assert (score.total, score.severity) == (64, None)


def test_phq9_item_9_flags_whatever_the_total():
    instrument = instruments()["PHQ-9"]
    answers = {f"q{i}": 0 for i in range(1, 10)} | {"q9": 1}
    score = instrument.score(answers)
    assert (score.total, score.severity, score.flags) == (1, "minimal", ["suicide_risk_item"])


def test_asam_never_computes_a_level_and_flags_dimension_risk_4():
    instrument = instruments()["ASAM"]
    answers = {"d1": 4, "d2": 0, "d3": 3, "d4": 4, "d5": 1, "d6": 0, "edition": "3", "level_of_care": "3.7-WM"}
    score = instrument.score(instrument.validate(answers))
    assert (score.total, score.severity, score.flags) == (None, None, ["high_risk_d1", "high_risk_d4"])


# --- the API ------------------------------------------------------------------------------------


@pytest.fixture
def ward(make_site, make_user, bearer, client):
    site = make_site()
    primary = make_user("clinician", sites=[site], name="Primary Clinician")
    colleague = make_user("clinician", sites=[site])
    intake = make_user("intake", sites=[site])
    outsider = make_user("clinician", sites=[make_site()])
    headers = bearer(primary)
    registered = client.post(
        "/api/v1/clients",
        headers=headers,
        json={
            "site_id": site.id,
            "first_name": "Ada",
            "last_name": "Brown",
            "date_of_birth": "1980-01-01",
            "primary_clinician_id": primary.id,
        },
    ).get_json()
    return {
        "site": site,
        "primary": primary,
        "client": registered,
        "headers": headers,
        "colleague": colleague,
        "colleague_headers": bearer(colleague),
        "intake_headers": bearer(intake),
        "outsider_headers": bearer(outsider),
    }


def submit(client, ward, instrument, answers, headers=None, when=None):
    return client.post(
        f"/api/v1/clients/{ward['client']['id']}/assessments",
        headers=headers or ward["headers"],
        json={
            "instrument": instrument,
            "answers": answers,
            "administered_at": (when or NOW - timedelta(minutes=10)).isoformat(),
        },
    )


PHQ_OK = {f"q{i}": 1 for i in range(1, 9)} | {"q9": 0}


def test_instruments_are_served(client, ward):
    served = client.get("/api/v1/instruments", headers=ward["headers"]).get_json()
    assert sorted(i["code"] for i in served) == sorted(CODES)
    cows = next(i for i in served if i["code"] == "COWS")
    restlessness = next(item for item in cows["items"] if item["key"] == "restlessness")
    assert restlessness["allowed"] == [0, 1, 3, 5]
    assert cows["bands"][""][-1] == {"label": "severe", "min": 37, "max": None}


def test_submission_is_scored_by_the_server(client, ward):
    response = submit(client, ward, "PHQ-9", PHQ_OK)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["total_score"], body["severity"], body["flags"], body["status"], body["version"]) == (
        8,
        "mild",
        [],
        "draft",
        "1",
    )


@pytest.mark.parametrize(
    ("answers", "bad_key"),
    [
        ({**dict.fromkeys(COWS_ALLOWED, 0), "restlessness": 2}, "answers.restlessness"),
        ({k: 0 for k in COWS_ALLOWED if k != "tremor"}, "answers.tremor"),
        ({**dict.fromkeys(COWS_ALLOWED, 0), "mood": 1}, "answers.mood"),
        ({**dict.fromkeys(COWS_ALLOWED, 0), "pulse": True}, "answers.pulse"),
        ({**dict.fromkeys(COWS_ALLOWED, 0), "pulse": "4"}, "answers.pulse"),
    ],
)
def test_bad_answers_are_422_naming_the_item(app, client, ward, answers, bad_key):
    response = submit(client, ward, "COWS", answers)
    assert response.status_code == 422
    assert bad_key in response.get_json()["errors"]
    with app.app_context():
        from clinic.assessments.models import Assessment

        assert db.session.scalars(select(Assessment)).all() == []


def test_scores_from_the_caller_are_refused(client, ward):
    response = client.post(
        f"/api/v1/clients/{ward['client']['id']}/assessments",
        headers=ward["headers"],
        json={
            "instrument": "PHQ-9",
            "answers": PHQ_OK,
            "administered_at": NOW.isoformat(),
            "total_score": 0,
            "severity": "minimal",
        },
    )
    assert response.status_code == 422
    assert {"total_score", "severity"} <= set(response.get_json()["errors"])


def test_unknown_instrument_is_422(client, ward):
    response = submit(client, ward, "MMSE", {})
    assert response.status_code == 422
    assert "instrument" in response.get_json()["errors"]


def test_signed_assessments_are_immutable_and_amendments_link_back(client, ward):
    created = submit(client, ward, "PHQ-9", PHQ_OK).get_json()
    url = f"/api/v1/assessments/{created['id']}"
    corrected = client.patch(url, headers=ward["headers"], json={"answers": {**PHQ_OK, "q1": 3}})
    assert corrected.status_code == 200
    assert corrected.get_json()["total_score"] == 10
    signed = client.post(f"{url}/sign", headers=ward["headers"])
    assert signed.status_code == 200
    assert signed.get_json()["status"] == "signed"
    assert client.patch(url, headers=ward["headers"], json={"answers": PHQ_OK}).status_code == 409
    assert client.post(f"{url}/sign", headers=ward["headers"]).status_code == 409
    amendment = client.post(
        f"{url}/amend",
        headers=ward["headers"],
        json={"answers": {**PHQ_OK, "q1": 3, "q2": 0}, "reason": "item 2 was misheard"},
    )
    assert amendment.status_code == 201
    amended = amendment.get_json()
    assert (amended["amends_id"], amended["revision"], amended["status"], amended["total_score"]) == (
        created["id"],
        2,
        "draft",
        9,
    )
    assert amended["amendment_reason"] == "item 2 was misheard"
    client.post(f"/api/v1/assessments/{amended['id']}/sign", headers=ward["headers"])
    original = client.get(url, headers=ward["headers"]).get_json()
    assert (original["total_score"], original["status"], original["superseded_by_id"]) == (10, "signed", amended["id"])
    assert (
        client.post(
            f"/api/v1/assessments/{amended['id']}/amend",
            headers=ward["headers"],
            json={"answers": PHQ_OK, "reason": ""},
        ).status_code
        == 422
    )


def test_only_signed_assessments_are_amended(client, ward):
    draft = submit(client, ward, "GAD-7", {f"q{i}": 0 for i in range(1, 8)}).get_json()
    assert (
        client.post(
            f"/api/v1/assessments/{draft['id']}/amend",
            headers=ward["headers"],
            json={"answers": {f"q{i}": 1 for i in range(1, 8)}, "reason": "x"},
        ).status_code
        == 409
    )


def test_list_is_newest_first_and_filters_by_instrument(client, ward):
    submit(client, ward, "PHQ-9", PHQ_OK, when=NOW - timedelta(days=30))
    submit(client, ward, "GAD-7", {f"q{i}": 2 for i in range(1, 8)}, when=NOW - timedelta(days=20))
    submit(client, ward, "PHQ-9", {**PHQ_OK, "q1": 0}, when=NOW - timedelta(days=1))
    items = client.get(
        f"/api/v1/clients/{ward['client']['id']}/assessments?instrument=PHQ-9", headers=ward["headers"]
    ).get_json()["items"]
    assert [i["total_score"] for i in items] == [7, 8]


def test_trend_shows_the_change_from_the_first_signed_score(client, ward):
    for days, q1 in [(60, 3), (30, 2), (1, 0)]:
        created = submit(client, ward, "PHQ-9", {**PHQ_OK, "q1": q1}, when=NOW - timedelta(days=days)).get_json()
        client.post(f"/api/v1/assessments/{created['id']}/sign", headers=ward["headers"])
    submit(client, ward, "PHQ-9", {**PHQ_OK, "q1": 3, "q2": 3})  # a draft: not in the trend
    trend = client.get(
        f"/api/v1/clients/{ward['client']['id']}/assessments/trend?instrument=PHQ-9", headers=ward["headers"]
    ).get_json()
    assert [p["total_score"] for p in trend["points"]] == [10, 9, 7]
    assert [p["change_from_first"] for p in trend["points"]] == [0, -1, -3]
    assert (trend["first_score"], trend["latest_score"], trend["change_from_first"]) == (10, 7, -3)


def test_phq9_item_9_alerts_the_clients_clinician_at_once(app, client, ward):
    response = submit(client, ward, "PHQ-9", {**PHQ_OK, "q9": 1}, headers=ward["colleague_headers"])
    assert response.get_json()["flags"] == ["suicide_risk_item"]
    listed = client.get("/api/v1/staff-notifications?unread=true", headers=ward["headers"])
    assert listed.status_code == 200, listed.get_json()
    alerts = listed.get_json()["items"]
    assert len(alerts) == 1
    assert alerts[0]["kind"] == "safety_flag"
    assert alerts[0]["client_id"] == ward["client"]["id"]
    assert alerts[0]["email_status"] == "pending"
    # The colleague who administered it is not the one alerted.
    colleague_view = client.get("/api/v1/staff-notifications", headers=ward["colleague_headers"])
    assert colleague_view.status_code == 200, colleague_view.get_json()
    assert colleague_view.get_json()["items"] == []
    read = client.post(f"/api/v1/staff-notifications/{alerts[0]['id']}/read", headers=ward["headers"])
    assert read.status_code == 200
    assert client.get("/api/v1/staff-notifications?unread=true", headers=ward["headers"]).get_json()["items"] == []
    # Someone else's notification is not found.
    assert (
        client.post(
            f"/api/v1/staff-notifications/{alerts[0]['id']}/read", headers=ward["colleague_headers"]
        ).status_code
        == 404
    )


def test_no_alert_without_the_flag(client, ward):
    submit(client, ward, "PHQ-9", {f"q{i}": 3 for i in range(1, 9)} | {"q9": 0})
    assert client.get("/api/v1/staff-notifications", headers=ward["headers"]).get_json()["items"] == []


def test_a_signed_asam_assessment_sets_the_level_of_a_new_episode(client, ward):
    answers = {"d1": 2, "d2": 1, "d3": 4, "d4": 2, "d5": 3, "d6": 1, "edition": "4", "level_of_care": "2.7"}
    asam = submit(client, ward, "ASAM", answers).get_json()
    assert (asam["total_score"], asam["severity"], asam["flags"], asam["level_of_care"]) == (
        None,
        None,
        ["high_risk_d3"],
        "2.7",
    )
    url = f"/api/v1/clients/{ward['client']['id']}/episodes"
    draft_use = client.post(
        url, headers=ward["headers"], json={"admitted_on": NOW.date().isoformat(), "assessment_id": asam["id"]}
    )
    assert draft_use.status_code == 422
    assert "assessment_id" in draft_use.get_json()["errors"]
    client.post(f"/api/v1/assessments/{asam['id']}/sign", headers=ward["headers"])
    episode = client.post(
        url, headers=ward["headers"], json={"admitted_on": NOW.date().isoformat(), "assessment_id": asam["id"]}
    )
    assert episode.status_code == 201, episode.get_json()
    assert (episode.get_json()["level_of_care"], episode.get_json()["asam_edition"]) == ("2.7", "4")


def test_assessments_are_clinical_scoped_and_audited(app, client, ward):
    created = submit(client, ward, "GAD-7", {f"q{i}": 1 for i in range(1, 8)}).get_json()
    assert client.get(f"/api/v1/assessments/{created['id']}", headers=ward["intake_headers"]).status_code == 403
    assert client.get(f"/api/v1/assessments/{created['id']}", headers=ward["outsider_headers"]).status_code == 404
    assert (
        submit(client, ward, "GAD-7", {f"q{i}": 1 for i in range(1, 8)}, headers=ward["outsider_headers"]).status_code
        == 404
    )
    client.get(f"/api/v1/assessments/{created['id']}", headers=ward["headers"])
    client.post(f"/api/v1/assessments/{created['id']}/sign", headers=ward["headers"])
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.resource == "assessment", AuditEvent.resource_id == str(created["id"]))
            .order_by(AuditEvent.id)
        ).all()
    # The outsider's attempt is recorded under the same resource name as every other event on it.
    assert actions == ["assessment.create", "access.denied", "assessment.read", "assessment.sign"]


def test_staff_email_is_sent_through_the_worker_task(app, client, ward, monkeypatch):
    sent = []
    monkeypatch.setitem(app.config, "MAIL_SERVER", "smtp.example.org")  # configured; the conversation is faked
    monkeypatch.setattr("clinic.notify.tasks.send_email", lambda message: sent.append(message))
    submit(client, ward, "PHQ-9", {**PHQ_OK, "q9": 2})
    with app.app_context():
        notification = db.session.scalars(select(StaffNotification)).one()
        notification_id = notification.id
    from clinic.notify.tasks import send_staff_email

    with app.app_context():
        assert send_staff_email.apply(args=[notification_id]).get() == "sent"
        assert send_staff_email.apply(args=[notification_id]).get() == "not pending"  # idempotent
        row = db.session.get(StaffNotification, notification_id)
        assert row.email_status.value == "sent"
    assert len(sent) == 1
    assert sent[0]["To"] == ward["primary"].email
    text = sent[0].get_content()
    assert "Ada" not in text and "Brown" not in text  # no client identity in email


def test_the_alert_email_is_queued_only_once_the_assessment_is_committed(app, client, ward, monkeypatch):
    queued = []
    celery_app = app.extensions["celery"]
    monkeypatch.setattr(celery_app, "send_task", lambda name, args=None, **_: queued.append((name, args)))
    submit(client, ward, "PHQ-9", {f"q{i}": 0 for i in range(1, 9)} | {"q9": 3})
    with app.app_context():
        notification_id = db.session.scalars(select(StaffNotification.id)).one()
    assert queued == [("clinic.notify.tasks.send_staff_email", [notification_id])]
    # A request that fails queues nothing.
    queued.clear()
    bad = submit(client, ward, "PHQ-9", {f"q{i}": 0 for i in range(1, 9)} | {"q9": 9})
    assert bad.status_code == 422
    assert queued == []


def test_reading_an_alert_about_a_client_is_audited(app, client, ward):
    submit(client, ward, "PHQ-9", {f"q{i}": 0 for i in range(1, 9)} | {"q9": 1})
    alert = client.get("/api/v1/staff-notifications", headers=ward["headers"]).get_json()["items"][0]
    client.post(f"/api/v1/staff-notifications/{alert['id']}/read", headers=ward["headers"])
    with app.app_context():
        reads = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "staff_notification.read")).all()
    assert [(r.client_id, r.user_id) for r in reads] == [(ward["client"]["id"], ward["primary"].id)] * 2
