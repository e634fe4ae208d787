"""The medication page: current and ended orders with their dose history, starting an order with the
safety rules' messages and an override reason where allowed, scheduled changes, entered in error."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.console.dates import long_date
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.plans.models import Medication, MedicationDoseChange
from tests.conftest import Session
from tests.test_medication_rules import cows_answers

ZONE = "America/New_York"
TODAY = to_local(utcnow(), ZONE).date()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(is_otp=True, timezone=ZONE)


@pytest.fixture
def clinician(make_user: Callable[..., User], site: Site) -> User:
    return make_user("clinician", sites=[site], name="Dana Reyes")


@pytest.fixture
def signed_in(login: Callable[..., Session], clinician: User) -> Session:
    return login(clinician)


def _client_with_plan(session: Session, site: Site, *, active: bool = True) -> dict[str, Any]:
    person = session.post(
        "/api/v1/clients?allow_duplicate=true",
        json={"site_id": site.id, "first_name": "Maria", "last_name": "Okafor", "date_of_birth": "1988-04-12"},
    ).get_json()
    plan = session.post(f"/api/v1/clients/{person['id']}/plans", json={"problems": []}).get_json()
    if active:
        session.post(f"/api/v1/plans/{plan['id']}/sign", json={"as": "clinician"})
        signed = session.post(f"/api/v1/plans/{plan['id']}/sign", json={"as": "client", "signer_name": "Maria Okafor"})
        assert signed.get_json()["status"] == "active"
    return {"client": person, "plan": plan, "id": person["id"]}


def _order(session: Session, who: dict[str, Any], **body: Any) -> dict[str, Any]:
    payload = {
        "medication": "buprenorphine_naloxone",
        "dose": 16,
        "unit": "mg",
        "frequency": "daily",
        "phase": "maintenance",
        "prescriber_id": session.user.id,
        "start_on": TODAY.isoformat(),
        **body,
    }
    response = session.post(f"/api/v1/plans/{who['plan']['id']}/medications", json=payload)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def _form(session: Session, url: str, data: dict[str, Any]) -> Any:
    return session.post(url, data={"csrf_token": session.csrf_token, **data})


def _text(response: Any) -> str:
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"</?(span|strong|a|em|time|s)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _events(app: Flask, since: int, client_id: int) -> list[tuple[str, Any, str]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > since, AuditEvent.client_id == client_id).order_by(AuditEvent.id)
        )
        return [(e.action, e.details, e.outcome.value) for e in rows]


def _start_values(session: Session, **fields: Any) -> dict[str, Any]:
    return {
        "medication": "buprenorphine",
        "dose": "8",
        "unit": "mg",
        "frequency": "daily",
        "phase": "maintenance",
        "prescriber_id": str(session.user.id),
        "start_on": TODAY.isoformat(),
        **fields,
    }


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


# --- reading --------------------------------------------------------------------------------------


def test_the_page_lists_current_orders_first_with_their_history_and_is_audited(
    app: Flask, signed_in: Session, site: Site
) -> None:
    who = _client_with_plan(signed_in, site)
    old = _order(
        signed_in,
        who,
        medication="methadone",
        dose=40,
        start_on=(TODAY - timedelta(days=30)).isoformat(),
        end_on=(TODAY - timedelta(days=10)).isoformat(),
    )
    current = _order(signed_in, who, dose=16, start_on=(TODAY - timedelta(days=5)).isoformat())
    since = _last_event_id(app)
    response = signed_in.get(f"/clients/{who['id']}/medications")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = _text(response)
    assert "Okafor, Maria" in text
    assert (
        text.index("Current orders")
        < text.index("Buprenorphine/naloxone 16 mg daily")
        < text.index("Ended orders")
        < text.index("Methadone 40 mg daily")
    )
    assert "Prescriber Dana Reyes" in text
    assert f"Start {long_date(TODAY - timedelta(days=5))}" in text
    assert "Change dose, phase or end" in text and "Transfer to another medication" in text
    assert f'id="order-{current["id"]}"' in response.get_data(as_text=True)
    assert f'id="order-{old["id"]}"' in response.get_data(as_text=True)
    actions = [action for action, _details, _outcome in _events(app, since, who["id"])]
    assert "client.read" in actions and "medication.read" in actions


def test_intake_may_not_open_the_page_and_another_sites_clinician_finds_nothing(
    app: Flask,
    signed_in: Session,
    site: Site,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    login: Callable[..., Session],
) -> None:
    who = _client_with_plan(signed_in, site)
    intake = login(make_user("intake", sites=[site]))
    assert intake.get(f"/clients/{who['id']}/medications").status_code == 403
    elsewhere = login(make_user("clinician", sites=[make_site()]))
    assert elsewhere.get(f"/clients/{who['id']}/medications").status_code == 404
    assert elsewhere.get(f"/clients/{who['id']}/medications/new").status_code == 404
    assert _form(elsewhere, f"/clients/{who['id']}/medications", _start_values(elsewhere)).status_code == 404
    # Ids chosen from lists that the user may not see: the same page, never a message about them.
    stranger = make_user("clinician", sites=[make_site()])
    url = f"/clients/{who['id']}/medications"
    assert _form(signed_in, url, _start_values(signed_in, prescriber_id=str(stranger.id))).status_code == 404
    assert _form(signed_in, url, _start_values(signed_in, prescriber_id="²")).status_code == 404
    assert _form(signed_in, url, _start_values(signed_in, transfer_from_medication_id="999999")).status_code == 404
    assert _count(app, Medication) == 0


def test_without_an_active_plan_the_page_says_so(signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site, active=False)
    text = _text(signed_in.get(f"/clients/{who['id']}/medications"))
    assert "The client has no active treatment plan" in text
    assert "Start a medication" not in text
    assert "The client has no active treatment plan" in _text(signed_in.get(f"/clients/{who['id']}/medications/new"))


# --- starting an order ----------------------------------------------------------------------------


def test_a_clinician_starts_a_medication(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    form = signed_in.get(f"/clients/{who['id']}/medications/new")
    assert form.status_code == 200
    assert "Dana Reyes" in _text(form)
    response = _form(signed_in, f"/clients/{who['id']}/medications", _start_values(signed_in))
    assert response.status_code == 303, _text(response)[-1500:]
    assert "done=started" in response.headers["Location"]
    text = _text(signed_in.get(response.headers["Location"]))
    assert "Medication started." in text and "Buprenorphine 8 mg daily" in text


def test_bad_input_is_shown_beside_the_field_and_nothing_is_written(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    response = _form(
        signed_in, f"/clients/{who['id']}/medications", _start_values(signed_in, dose="lots", medication="")
    )
    assert response.status_code == 422
    text = _text(response)
    assert "There is a problem" in text and "Choose the medication." in text and "Not a valid number." in text
    assert 'value="lots"' in response.get_data(as_text=True)
    assert _count(app, Medication) == 0


def test_a_refused_induction_shows_the_rule_and_passes_with_an_override_reason(
    app: Flask, signed_in: Session, site: Site
) -> None:
    who = _client_with_plan(signed_in, site)
    url = f"/clients/{who['id']}/medications"
    values = _start_values(signed_in, phase="induction", dose="4")
    refused = _form(signed_in, url, values)
    assert refused.status_code == 422
    text = _text(refused)
    assert "A buprenorphine induction needs a COWS of 8 or more" in text
    assert "You may override this rule with a reason." in text
    html = refused.get_data(as_text=True)
    assert 'name="override_reason"' in html and "Start with override" in html
    assert 'value="4"' in html  # what was typed is kept
    # Asking to override without a reason: the reason is asked for, nothing is written.
    blank = _form(signed_in, url, {**values, "action": "override", "override_reason": " "})
    assert blank.status_code == 422
    assert "Say why you override the rules" in _text(blank)
    assert _count(app, Medication) == 0
    since = _last_event_id(app)
    started = _form(signed_in, url, {**values, "action": "override", "override_reason": "Low-dose induction"})
    assert started.status_code == 303
    page = _text(signed_in.get(started.headers["Location"]))
    assert "Safety rules overridden" in page
    assert "Induction without a COWS of withdrawal: “Low-dose induction”" in page
    created = [d for a, d, _o in _events(app, since, who["id"]) if a == "medication.create"]
    assert created and created[0]["overridden_rules"] == ["induction_requires_cows"]


def test_the_induction_passes_without_override_after_a_cows(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    at = datetime.now(ZoneInfo(ZONE)) - timedelta(hours=1)
    scored = signed_in.post(
        f"/api/v1/clients/{who['id']}/assessments",
        json={"instrument": "COWS", "answers": cows_answers(12), "administered_at": at.isoformat()},
    )
    assert scored.status_code == 201
    response = _form(signed_in, f"/clients/{who['id']}/medications", _start_values(signed_in, phase="induction"))
    assert response.status_code == 303


def test_the_absolute_maximum_cannot_be_overridden(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    url = f"/clients/{who['id']}/medications"
    refused = _form(signed_in, url, _start_values(signed_in, dose="40"))
    assert refused.status_code == 422
    text = _text(refused)
    assert "above the absolute maximum for Buprenorphine" in text
    assert "This rule cannot be overridden." in text
    assert 'name="override_reason"' not in refused.get_data(as_text=True)
    forced = _form(signed_in, url, _start_values(signed_in, dose="40", action="override", override_reason="Please"))
    assert forced.status_code == 422
    assert _count(app, Medication) == 0


def test_methadone_at_a_site_that_is_not_an_otp_says_why(
    app: Flask, make_site: Callable[..., Site], make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    office = make_site(is_otp=False, name="Lakeview Office")
    session = login(make_user("clinician", sites=[office]))
    who = _client_with_plan(session, office)
    form = _text(session.get(f"/clients/{who['id']}/medications/new"))
    assert "Not at Lakeview Office: methadone is dispensed only by an opioid treatment program (OTP)." in form
    refused = _form(
        session, f"/clients/{who['id']}/medications", _start_values(session, medication="methadone", dose="30")
    )
    assert refused.status_code == 422
    assert "Lakeview Office is not an opioid treatment program (OTP)" in _text(refused)
    assert "This rule cannot be overridden." in _text(refused)


def test_a_transfer_names_the_order_it_replaces(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    first = _order(signed_in, who, start_on=(TODAY - timedelta(days=20)).isoformat())
    form = signed_in.get(f"/clients/{who['id']}/medications/new?transfer_from={first['id']}")
    assert f'<option value="{first["id"]}" selected>' in form.get_data(as_text=True)
    response = _form(
        signed_in,
        f"/clients/{who['id']}/medications",
        _start_values(signed_in, medication="methadone", dose="30", transfer_from_medication_id=str(first["id"])),
    )
    assert response.status_code == 303, _text(response)
    with app.app_context():
        ended = db.session.get(Medication, first["id"])
        assert ended is not None and ended.end_on == TODAY - timedelta(days=1)


# --- changing an order ----------------------------------------------------------------------------


def test_a_change_dated_later_is_scheduled_and_shown(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    med = _order(signed_in, who, start_on=(TODAY - timedelta(days=3)).isoformat())
    url = f"/clients/{who['id']}/medications/{med['id']}/change"
    form = signed_in.get(url)
    assert form.status_code == 200 and 'value="16"' in form.get_data(as_text=True)
    later = TODAY + timedelta(days=3)
    response = _form(
        signed_in,
        url,
        {
            "effective_on": later.isoformat(),
            "dose": "12",
            "unit": "mg",
            "frequency": "daily",
            "phase": "maintenance",
            "end_on": "",
            "reason": "Tapering slowly",
        },
    )
    assert response.status_code == 303, _text(response)
    assert "done=scheduled" in response.headers["Location"]
    text = _text(signed_in.get(response.headers["Location"]))
    assert "Change scheduled" in text
    assert f"From {long_date(later)}: 12 mg daily, maintenance — Tapering slowly" in text
    assert f"Scheduled from {long_date(later)}" in text, text
    assert "Dose in force 16 mg, daily" in text
    nothing = _form(
        signed_in,
        url,
        {
            "effective_on": TODAY.isoformat(),
            "dose": "16",
            "unit": "mg",
            "frequency": "daily",
            "phase": "maintenance",
            "end_on": "",
        },
    )
    assert nothing.status_code == 422 and "Nothing was changed" in _text(nothing)


def test_a_change_above_the_usual_maximum_is_overridden_and_end_set(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    med = _order(signed_in, who, start_on=(TODAY - timedelta(days=3)).isoformat())
    url = f"/clients/{who['id']}/medications/{med['id']}/change"
    values = {
        "effective_on": TODAY.isoformat(),
        "dose": "28",
        "unit": "mg",
        "frequency": "daily",
        "phase": "maintenance",
        "end_on": "",
    }
    refused = _form(signed_in, url, values)
    assert refused.status_code == 422
    assert "above the usual maximum" in _text(refused) and "Change with override" in _text(refused)
    done = _form(signed_in, url, {**values, "action": "override", "override_reason": "Ongoing cravings at 24 mg"})
    assert done.status_code == 303
    ended = _form(signed_in, url, {**values, "end_on": (TODAY + timedelta(days=30)).isoformat()})
    assert ended.status_code == 303
    with app.app_context():
        row = db.session.get(Medication, med["id"])
        assert row is not None and row.end_on == TODAY + timedelta(days=30) and float(row.dose) == 28


# --- entered in error -----------------------------------------------------------------------------


def test_an_entry_marked_entered_in_error_stays_struck_through(app: Flask, signed_in: Session, site: Site) -> None:
    who = _client_with_plan(signed_in, site)
    med = _order(signed_in, who, start_on=(TODAY - timedelta(days=3)).isoformat())
    signed_in.patch(f"/api/v1/medications/{med['id']}", json={"dose": 20})
    with app.app_context():
        change_id = db.session.scalar(
            select(func.max(MedicationDoseChange.id)).where(MedicationDoseChange.medication_id == med["id"])
        )
    url = f"/clients/{who['id']}/medications/{med['id']}/history/{change_id}/entered-in-error"
    form = signed_in.get(url)
    assert form.status_code == 200 and "data-confirm" in form.get_data(as_text=True)
    empty = _form(signed_in, url, {"reason": ""})
    assert empty.status_code == 422 and "Say why the entry was entered in error." in _text(empty)
    since = _last_event_id(app)
    response = _form(signed_in, url, {"reason": "Typed 20 for 12"})
    assert response.status_code == 303
    page = signed_in.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "<s>20 mg</s>" in html
    text = _text(page)
    assert "Entered in error “Typed 20 for 12” — Dana Reyes" in text
    assert "Dose in force 16 mg, daily" in text
    updates = [d for a, d, _o in _events(app, since, who["id"]) if a == "medication.update"]
    assert updates == [{"entered_in_error": change_id, "effective_on": TODAY.isoformat()}]
    # The first entry cannot go: the order would have no dose.
    with app.app_context():
        first_id = db.session.scalar(
            select(func.min(MedicationDoseChange.id)).where(MedicationDoseChange.medication_id == med["id"])
        )
    refused = _form(
        signed_in,
        f"/clients/{who['id']}/medications/{med['id']}/history/{first_id}/entered-in-error",
        {"reason": "Wrong"},
    )
    assert refused.status_code == 409 and "no dose from its start" in _text(refused)


def test_another_clients_order_in_the_path_is_not_found(signed_in: Session, site: Site) -> None:
    one = _client_with_plan(signed_in, site)
    other = _client_with_plan(signed_in, site)
    med = _order(signed_in, other)
    assert signed_in.get(f"/clients/{one['id']}/medications/{med['id']}/change").status_code == 404
    assert _form(signed_in, f"/clients/{one['id']}/medications/{med['id']}/change", {"dose": "8"}).status_code == 404


def test_junk_and_forged_posts_are_refused_without_a_500_and_nothing_is_written(
    app: Flask, signed_in: Session, site: Site
) -> None:
    who = _client_with_plan(signed_in, site)
    url = f"/clients/{who['id']}/medications"
    no_token = signed_in.client.post(url, data=_start_values(signed_in))
    assert no_token.status_code in (400, 403)
    for junk in (
        {"dose": "1e999"},
        {"start_on": "0001-01-01"},
        {"first_dose_at": "tomorrow"},
        {"unit": "drops"},
        {"frequency": "x" * 500},
        {"phase": "forever"},
    ):
        response = _form(signed_in, url, _start_values(signed_in, **junk))
        assert response.status_code == 422, junk
    med = _order(signed_in, who)
    change = f"{url}/{med['id']}/change"
    for junk in ({"dose": "-3"}, {"effective_on": "9999-99-99"}, {"end_on": "1899-01-01"}):
        response = _form(signed_in, change, junk)
        assert response.status_code == 422, junk
    assert _count(app, Medication) == 1
    draft = _client_with_plan(signed_in, site, active=False)
    refused = _form(signed_in, f"/clients/{draft['id']}/medications", _start_values(signed_in))
    assert refused.status_code == 409 and "no active treatment plan" in _text(refused)
    assert _count(app, Medication) == 1


def test_a_change_refused_for_the_medication_links_its_summary_to_the_rule(
    app: Flask, signed_in: Session, site: Site
) -> None:
    """The change form has no medication field: a rule about the medication is linked to the rules shown."""
    who = _client_with_plan(signed_in, site)
    first = _order(signed_in, who, start_on=(TODAY - timedelta(days=20)).isoformat())
    _order(signed_in, who, transfer_from_medication_id=first["id"])
    url = f"/clients/{who['id']}/medications/{first['id']}/change"
    response = _form(signed_in, url, {"end_on": "", "effective_on": TODAY.isoformat()})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Safety rules: Another opioid agonist runs at the same time" in _text(response)
    summary = re.search(r'class="error-summary".*?</ul>', html, re.S)
    assert summary is not None
    targets = re.findall(r'href="#([^"]+)"', summary.group(0))
    assert targets and all(f'id="{target}"' in html for target in targets), targets


def test_a_first_dose_at_the_end_of_the_calendar_is_shown_beside_the_field(
    app: Flask, signed_in: Session, site: Site
) -> None:
    who = _client_with_plan(signed_in, site)
    url = f"/clients/{who['id']}/medications"
    response = _form(signed_in, url, _start_values(signed_in, first_dose_at="9999-12-31T23:59"))
    assert response.status_code == 422
    assert "Out of range" in _text(response) and 'id="first_dose_at-error"' in response.get_data(as_text=True)
    med = _order(signed_in, who)
    change = _form(signed_in, f"{url}/{med['id']}/change", {"first_dose_at": "9999-12-31T23:59"})
    assert change.status_code == 422
    assert _count(app, Medication) == 1
