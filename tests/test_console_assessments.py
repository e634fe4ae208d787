"""The assessments console pages: forms built from the definitions, scores, safety steps, sign, amend, trends.

What a user notices (the form, the score, the safety steps and the alert, errors beside the answers),
and that the pages are scoped, audited and no-store like the API reads of the same data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.assessments.definitions import instruments
from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.notify.models import StaffNotification
from tests.conftest import Session

TODAY = to_local(utcnow(), "America/New_York")


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(name=f"Riverside {utcnow().timestamp()}")


@pytest.fixture
def clinician(make_user: Callable[..., User], site: Site) -> User:
    return make_user("clinician", sites=[site], name="Dana Reyes")


@pytest.fixture
def signed_in(login: Callable[..., Session], clinician: User) -> Session:
    return login(clinician)


@pytest.fixture
def person(signed_in: Session, site: Site, clinician: User) -> dict[str, Any]:
    body = {
        "site_id": site.id,
        "first_name": "Maria",
        "last_name": "Okafor",
        "date_of_birth": "1988-04-12",
        "primary_clinician_id": clinician.id,
    }
    response = signed_in.post("/api/v1/clients?allow_duplicate=true", json=body)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def _text(response: Any) -> str:
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"</?(span|strong|a|em|time)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _events(app: Flask, since: int) -> list[tuple[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id))
        return [(e.action, e.details) for e in rows]


def _form(session: Session, instrument: str, answers: dict[str, Any], **extra: str) -> dict[str, str]:
    data = {
        "csrf_token": session.csrf_token,
        "instrument": instrument,
        "administered_date": TODAY.date().isoformat(),
        "administered_time": "00:00",
        **extra,
    }
    data.update(
        {
            f"answers.{key}": str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in answers.items()
        }
    )
    return data


COWS = {
    "pulse": 2,
    "sweating": 1,
    "restlessness": 3,
    "pupil_size": 1,
    "bone_joint_aches": 2,
    "runny_nose": 1,
    "gi_upset": 2,
    "tremor": 1,
    "yawning": 1,
    "anxiety": 2,
    "gooseflesh": 3,
}  # 19: moderate
PHQ9 = {f"q{n}": 1 for n in range(1, 9)} | {"q9": 2}  # 10: moderate, item 9 above 0


def _save(session: Session, person: dict[str, Any], instrument: str, answers: dict[str, Any]) -> int:
    response = session.post(f"/clients/{person['id']}/assessments/new", data=_form(session, instrument, answers))
    assert response.status_code == 303, _text(response)
    match = re.search(r"/assessments/(\d+)\?done=saved", response.headers["Location"])
    assert match
    return int(match.group(1))


@pytest.mark.parametrize("code", sorted(instruments()))
def test_each_instrument_has_a_form_generated_from_its_definition(
    signed_in: Session, person: dict[str, Any], code: str
) -> None:
    definition = instruments()[code]
    url = f"/clients/{person['id']}/assessments/new?instrument={code}"
    if code == "ASAM":
        chooser = signed_in.get(url)
        assert "Which edition of the ASAM Criteria" in _text(chooser)
        url += "&edition=4"
    response = signed_in.get(url)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    text = _text(response)
    answers = {"edition": "4"} if code == "ASAM" else {}
    for item in definition.items:
        assert item.text_for(answers) in text.replace("&#34;", '"'), item.key
        for value in item.allowed_values(answers) or ():
            key = str(value).lower() if isinstance(value, bool) else str(value)
            assert f'name="answers.{item.key}" type="radio" value="{key}"' in html
    if code == "PHQ-9":
        assert "Nearly every day 3 points" in text and "Not at all 0 points" in text
    if code == "COWS":
        assert "Above 120 4 points" in text and "Prominent piloerection 5 points" in text
    if code == "ASAM":  # the 4th edition's names and levels
        assert "Dimension 1: intoxication, withdrawal and addiction medications" in text
        assert "2.7 — Medically managed intensive outpatient" in text and 'value="2.7"' in html
        assert "4 — Severe" in text and "points" not in text  # ratings, not points: ASAM computes no total
    if code == "DAST-10":
        assert 'value="true"' in html and ">Yes<" in html


def test_asam_3rd_edition_offers_its_own_levels(signed_in: Session, person: dict[str, Any]) -> None:
    response = signed_in.get(f"/clients/{person['id']}/assessments/new?instrument=ASAM&edition=3")
    html = response.get_data(as_text=True)
    assert "acute intoxication and withdrawal potential" in html
    assert 'value="2.7"' not in html and "Partial hospitalization services" in html
    assert signed_in.get(f"/clients/{person['id']}/assessments/new?instrument=ASAM&edition=9").status_code == 422


def test_the_preview_is_the_servers_score_of_the_answers_so_far(signed_in: Session, person: dict[str, Any]) -> None:
    url = f"/clients/{person['id']}/assessments/preview"
    partial = signed_in.post(
        url, data=_form(signed_in, "COWS", {"pulse": 2, "gooseflesh": 5}), headers={"HX-Request": "true"}
    )
    assert partial.status_code == 200
    assert "Total so far 7 of 48" in _text(partial) and "2 of 11" in _text(partial)
    whole = signed_in.post(url, data=_form(signed_in, "COWS", COWS), headers={"HX-Request": "true"})
    assert "Total 19 of 48" in _text(whole) and "Moderate" in _text(whole)
    safety = signed_in.post(url, data=_form(signed_in, "PHQ-9", {"q9": 1}), headers={"HX-Request": "true"})
    assert "Safety: thoughts of death or self-harm" in _text(safety) and "988" in _text(safety)


def test_a_cows_is_scored_on_saving_and_signed(app: Flask, signed_in: Session, person: dict[str, Any]) -> None:
    assessment_id = _save(signed_in, person, "COWS", COWS)
    page = signed_in.get(f"/assessments/{assessment_id}?done=saved")
    text = _text(page)
    assert "Total 19 of 48" in text and "Severity Moderate" in text and "Draft" in text
    assert "Sign assessment" in text and "data-confirm" in page.get_data(as_text=True)
    since = _last_event_id(app)
    signed = signed_in.post(f"/assessments/{assessment_id}/sign", data={"csrf_token": signed_in.csrf_token})
    assert signed.status_code == 303
    assert ("assessment.sign", None) in [(a, None) for a, _d in _events(app, since)]
    after = _text(signed_in.get(f"/assessments/{assessment_id}?done=signed"))
    assert "Signed" in after and "Amend" in after and "Sign assessment" not in after
    again = signed_in.post(f"/assessments/{assessment_id}/sign", data={"csrf_token": signed_in.csrf_token})
    assert again.status_code == 409 and "already signed" in _text(again)
    listing = signed_in.get(f"/clients/{person['id']}/assessments")
    assert "COWS" in _text(listing) and "19" in _text(listing)
    assert '<svg class="trend"' in listing.get_data(as_text=True)
    assert "COWS signed scores, oldest first" in _text(listing)


def test_phq9_item_9_shows_the_safety_steps_and_raises_the_alert(
    app: Flask, signed_in: Session, person: dict[str, Any], clinician: User
) -> None:
    assessment_id = _save(signed_in, person, "PHQ-9", PHQ9)
    text = _text(signed_in.get(f"/assessments/{assessment_id}?done=saved"))
    assert "Safety: thoughts of death or self-harm (PHQ-9 item 9)" in text
    assert "call or text 988" in text and "Item 9: thoughts of death or self-harm" in text
    assert "Total 10 of 27" in text and "Moderate" in text
    with app.app_context():
        alerts = db.session.scalars(select(StaffNotification).where(StaffNotification.user_id == clinician.id)).all()
        assert [a.resource_id for a in alerts] == [str(assessment_id)]


def test_bad_answers_are_shown_beside_their_items_and_nothing_is_saved(
    app: Flask, signed_in: Session, person: dict[str, Any]
) -> None:
    answers = dict(COWS)
    del answers["tremor"]
    answers["pulse"] = 3  # not an answer the COWS allows
    data = _form(signed_in, "COWS", answers, administered_date="2999-01-01")
    response = signed_in.post(f"/clients/{person['id']}/assessments/new", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    text = _text(response)
    assert "There is a problem" in text
    assert 'href="#administered_date"' in html and "Must not be in the future" in text
    data["administered_date"] = TODAY.date().isoformat()
    response = signed_in.post(f"/clients/{person['id']}/assessments/new", data=data)
    html, text = response.get_data(as_text=True), _text(response)
    assert response.status_code == 422
    assert 'href="#answers-tremor"' in html and "Question 8: Choose an answer." in text
    assert 'href="#answers-pulse"' in html and "Must be one of: 0, 1, 2, 4." in text
    # What was chosen is kept.
    assert 'name="answers.gooseflesh" type="radio" value="3" checked' in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Assessment.id)).where(Assessment.client_id == person["id"])) == 0


def test_a_signed_assessment_is_amended_with_a_reason(app: Flask, signed_in: Session, person: dict[str, Any]) -> None:
    original = _save(signed_in, person, "GAD-7", {f"q{n}": 1 for n in range(1, 8)})
    signed_in.post(f"/assessments/{original}/sign", data={"csrf_token": signed_in.csrf_token})
    form = signed_in.get(f"/assessments/{original}/amend")
    assert 'name="answers.q1" type="radio" value="1" checked' in form.get_data(as_text=True)
    answers = {f"q{n}": 2 for n in range(1, 8)}
    refused = signed_in.post(f"/assessments/{original}/amend", data=_form(signed_in, "GAD-7", answers))
    assert refused.status_code == 422 and "Say why the assessment is amended." in _text(refused)
    done = signed_in.post(
        f"/assessments/{original}/amend",
        data=_form(signed_in, "GAD-7", answers, reason="Item scores entered one row off."),
    )
    assert done.status_code == 303
    amendment = int(re.search(r"/assessments/(\d+)", done.headers["Location"]).group(1))  # type: ignore[union-attr]
    text = _text(signed_in.get(f"/assessments/{amendment}?done=amended"))
    assert "Amendment, draft" in text and "Item scores entered one row off." in text and "Total 14" in text
    signed_in.post(f"/assessments/{amendment}/sign", data={"csrf_token": signed_in.csrf_token})
    with app.app_context():
        first = db.session.get_one(Assessment, original)
        assert first.superseded_by_id == amendment
        assert db.session.get_one(Assessment, amendment).status is AssessmentStatus.SIGNED
    assert "See the amendment" in _text(signed_in.get(f"/assessments/{original}"))


def test_a_draft_is_changed(signed_in: Session, person: dict[str, Any]) -> None:
    assessment_id = _save(signed_in, person, "COWS", COWS)
    form = signed_in.get(f"/assessments/{assessment_id}/edit")
    assert 'value="4" checked' not in form.get_data(as_text=True)
    changed = signed_in.post(f"/assessments/{assessment_id}/edit", data=_form(signed_in, "COWS", {**COWS, "pulse": 4}))
    assert changed.status_code == 303
    assert "Total 21 of 48" in _text(signed_in.get(f"/assessments/{assessment_id}"))


def test_views_are_audited_like_the_api_reads(app: Flask, signed_in: Session, person: dict[str, Any]) -> None:
    assessment_id = _save(signed_in, person, "COWS", COWS)
    since = _last_event_id(app)
    assert signed_in.get(f"/clients/{person['id']}/assessments").status_code == 200
    actions = _events(app, since)
    assert ("assessment.read", {"via": "list", "ids": [assessment_id]}) in actions
    assert ("assessment.read", {"via": "trend", "instrument": "PHQ-9"}) in actions
    assert any(a == "client.read" for a, _d in actions)
    since = _last_event_id(app)
    assert signed_in.get(f"/assessments/{assessment_id}").status_code == 200
    assert "assessment.read" in [a for a, _d in _events(app, since)]


def test_intake_may_not_and_another_site_sees_nothing(
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    login: Callable[..., Session],
    site: Site,
    signed_in: Session,
    person: dict[str, Any],
) -> None:
    assessment_id = _save(signed_in, person, "COWS", COWS)
    intake = login(make_user("intake", sites=[site]))
    assert intake.get(f"/clients/{person['id']}/assessments").status_code == 403
    assert intake.get(f"/assessments/{assessment_id}").status_code == 403
    other = login(make_user("clinician", sites=[make_site(name=f"Lakeview {utcnow().timestamp()}")]))
    for url in (
        f"/clients/{person['id']}/assessments",
        f"/assessments/{assessment_id}",
        f"/clients/{person['id']}/assessments/new?instrument=COWS",
    ):
        assert other.get(url).status_code == 404, url
    refused = other.post(f"/assessments/{assessment_id}/sign", data={"csrf_token": other.csrf_token})
    assert refused.status_code == 404
    preview = other.post(f"/clients/{person['id']}/assessments/preview", data=_form(other, "COWS", COWS))
    assert preview.status_code == 404


def test_an_unknown_instrument_is_asked_for_again(signed_in: Session, person: dict[str, Any]) -> None:
    response = signed_in.get(f"/clients/{person['id']}/assessments/new?instrument=NOPE")
    assert response.status_code == 422 and "Choose the instrument to give." in _text(response)
    empty = signed_in.get(f"/clients/{person['id']}/assessments")
    assert "No assessments yet" in _text(empty) and "No signed PHQ-9 yet" in _text(empty)


def test_a_signed_assessment_is_not_edited_nor_a_draft_amended(signed_in: Session, person: dict[str, Any]) -> None:
    draft = _save(signed_in, person, "COWS", COWS)
    not_amended = signed_in.get(f"/assessments/{draft}/amend")
    assert not_amended.status_code == 200 and "A draft is not amended" in _text(not_amended)
    signed_in.post(f"/assessments/{draft}/sign", data={"csrf_token": signed_in.csrf_token})
    not_edited = signed_in.get(f"/assessments/{draft}/edit")
    assert not_edited.status_code == 200 and "amend it instead" in _text(not_edited)
    refused = signed_in.post(f"/assessments/{draft}/edit", data=_form(signed_in, "COWS", COWS))
    assert refused.status_code == 409 and "cannot change" in _text(refused)
