"""The clients' console pages: search, register, the chart, episodes, consents and disclosures.

What a user notices (the page shows it, the record changed, errors beside the field, the 404 page
out of scope), and that every page view is audited as the API read of the same data is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent, Outcome
from clinic.auth.models import Site, User
from clinic.clients import pages
from clinic.clients.identifiers import normalise_mrn
from clinic.clients.models import Client, ClientStatus, Consent, Episode
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from tests.conftest import Session

#: Today at the test sites (America/New_York, make_site's zone): the day the pages show as today.
TODAY = to_local(utcnow(), "America/New_York").date()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(name=f"Riverside {utcnow().timestamp()}")


@pytest.fixture
def clinician(make_user: Callable[..., User], site: Site) -> User:
    return make_user("clinician", sites=[site], name="Dana Reyes")


@pytest.fixture
def signed_in(login: Callable[..., Session], clinician: User) -> Session:
    return login(clinician)


def _register(session: Session, site: Site, **fields: Any) -> dict[str, Any]:
    body = {"site_id": site.id, "first_name": "Maria", "last_name": "Okafor", "date_of_birth": "1988-04-12",
            "phone": "(617) 555-0142", **fields}
    response = session.post("/api/v1/clients?allow_duplicate=true", json=body)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _events(app: Flask, since: int, client_id: int | None = None) -> list[tuple[str, dict[str, Any] | None, str]]:
    """(action, details, outcome) of the audit events after ``since`` (of one client when given)."""
    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.id > since)
        if client_id is not None:
            stmt = stmt.where(AuditEvent.client_id == client_id)
        return [(e.action, e.details, e.outcome.value) for e in db.session.scalars(stmt.order_by(AuditEvent.id))]


def _text(response: Any) -> str:
    """The page's visible words, tags stripped and spaces collapsed."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"</?(span|strong|a|em|time)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


def _main(response: Any) -> str:
    html = response.get_data(as_text=True)
    return html[html.index("<main"):html.index("</main>")]


# --- the top bar's search ----------------------------------------------------------------------


def test_the_top_bar_search_finds_a_client_by_name_mrn_or_phone(app: Flask, signed_in: Session, site: Site) -> None:
    person = _register(signed_in, site)
    _register(signed_in, site, first_name="Omar", last_name="Haddad", phone=None)
    since = _last_event_id(app)
    for q in ("oka", "Maria Okafor", "okafor maria", person["mrn"], "617-555-0142", "+16175550142"):
        response = signed_in.get("/clients/search", query_string={"q": q}, headers={"HX-Request": "true"})
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert f'href="/clients/{person["id"]}"' in html, q
        assert "HADDAD" not in html.upper()
        text = _text(response)
        assert f"OKAFOR, Maria · Apr 12, 1988 · MRN {person['mrn']}" in text
        assert response.headers["Cache-Control"] == "no-store"
    # Each match shown is a read of the client, audited as the API's search is.
    reads = _events(app, since, person["id"])
    assert reads == [("client.read", {"via": "search"}, "success")] * 6


def test_the_top_bar_search_says_when_nothing_matches_and_answers_nothing_for_nothing(
    signed_in: Session, site: Site
) -> None:
    _register(signed_in, site)
    assert signed_in.get("/clients/search?q=").get_data(as_text=True).strip() == ""
    assert signed_in.get("/clients/search?q=%20%20").get_data(as_text=True).strip() == ""
    nobody = signed_in.get("/clients/search?q=zzyzx")
    assert nobody.status_code == 200
    assert "No client found" in _text(nobody)
    mistyped = signed_in.get("/clients/search?q=12345678")  # an MRN whose check digit is wrong
    assert mistyped.status_code == 200
    assert "Not a valid MRN" in _text(mistyped)


def test_the_top_bar_search_shows_at_most_eight_and_links_to_the_rest(signed_in: Session, site: Site) -> None:
    for n in range(10):
        _register(signed_in, site, first_name=f"Ann{n}", last_name="Lindqvist", phone=None)
    html = signed_in.get("/clients/search?q=lindq").get_data(as_text=True)
    assert html.count('href="/clients/') == 8
    assert 'href="/clients?q=lindq"' in html


def test_the_search_page_lists_matches_with_a_keyset_next_page(
    app: Flask, signed_in: Session, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    ids = [_register(signed_in, site, first_name=given, last_name="Brennan", phone=None)["id"]
           for given in ("Ava", "Ben", "Cal")]
    first = signed_in.get("/clients?q=brennan")
    assert first.status_code == 200
    main = _main(first)
    assert "<th scope=\"col\">Name</th>" in main
    assert [f'/clients/{i}"' in main for i in ids] == [True, True, False]
    next_url = re.search(r'href="(/clients\?[^"]*cursor=[^"]+)"', main)
    assert next_url is not None
    second = signed_in.get(next_url.group(1).replace("&amp;", "&"))
    assert f'/clients/{ids[2]}"' in _main(second)
    assert "cursor=" not in _main(second).split("</table>")[1]  # the last page: no Next
    assert "Register a client" in _text(first)


def test_the_search_page_shows_a_bad_search_beside_its_field(signed_in: Session) -> None:
    response = signed_in.get("/clients?q=12345678")
    assert response.status_code == 422
    assert "There is a problem" in _text(response)
    assert 'id="q-error"' in response.get_data(as_text=True)


# --- register ------------------------------------------------------------------------------------


def test_registering_shows_errors_beside_the_fields_and_keeps_what_was_typed(
    app: Flask, signed_in: Session, site: Site
) -> None:
    form = signed_in.get("/clients/new")
    assert form.status_code == 200
    assert "Family name" in _text(form) and "Date of birth" in _text(form)
    future = (TODAY + timedelta(days=3)).isoformat()
    response = signed_in.post("/clients/new", data={
        "csrf_token": signed_in.csrf_token, "first_name": "Lena", "last_name": "", "date_of_birth": future,
        "phone": "not a phone", "site_id": str(site.id),
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert re.search(r'id="last_name-error"', html)
    assert "Enter the client&#39;s family name." in html  # said as what to do
    assert re.search(r'id="date_of_birth-error"', html)
    assert re.search(r'id="phone-error"', html)
    assert 'value="Lena"' in html and 'value="not a phone"' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Client).where(Client.first_name == "Lena")) == 0


def test_registering_opens_the_new_clients_chart(app: Flask, signed_in: Session, site: Site) -> None:
    response = signed_in.post("/clients/new", data={
        "csrf_token": signed_in.csrf_token, "first_name": "Lena", "last_name": "Whitfield",
        "date_of_birth": "1979-11-03", "sex_at_birth": "female", "phone": "617 555 0199",
        "preferred_language": "es", "site_id": str(site.id), "primary_clinician_id": str(signed_in.user.id),
    })
    assert response.status_code == 303
    with app.app_context():
        client = db.session.scalars(select(Client).where(Client.last_name == "Whitfield")).one()
        assert (client.status, client.phone, client.preferred_language) == (ClientStatus.PROSPECTIVE, "+16175550199", "es")
        assert client.primary_clinician_id == signed_in.user.id
    assert response.headers["Location"] == f"/clients/{client.id}?registered=1"
    chart = signed_in.get(response.headers["Location"])
    assert f"Client registered with MRN {client.mrn}" in _text(chart)
    assert "Dana Reyes" in _text(chart) and "Spanish" in _text(chart)


def test_registering_a_likely_duplicate_shows_the_candidates_then_registers_on_request(
    app: Flask, signed_in: Session, site: Site
) -> None:
    existing = _register(signed_in, site)
    typed = {"csrf_token": signed_in.csrf_token, "first_name": "María", "last_name": "OKAFOR",
             "date_of_birth": "1988-04-12", "site_id": str(site.id)}
    refused = signed_in.post("/clients/new", data=typed)
    assert refused.status_code == 409
    text = _text(refused)
    assert "This may be a client who is already registered" in text
    assert f"OKAFOR, Maria Apr 12, 1988 {existing['mrn']}" in text
    assert f'href="/clients/{existing["id"]}"' in refused.get_data(as_text=True)
    assert 'value="María"' in refused.get_data(as_text=True)
    again = signed_in.post("/clients/new", data={**typed, "allow_duplicate": "yes"})
    assert again.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Client).where(Client.search_last == "okafor")) == 2


# --- the chart ---------------------------------------------------------------------------------


def _admit(session: Session, client_id: int, level: str = "1-OTP") -> Any:
    return session.post(f"/clients/{client_id}/episodes", data={
        "csrf_token": session.csrf_token, "admitted_on": TODAY.isoformat(), "level_of_care": level,
        "asam_edition": "3", "referral_source": "emergency department",
    })


def test_the_chart_shows_the_banner_the_care_in_force_consents_and_the_timeline(
    app: Flask, signed_in: Session, site: Site
) -> None:
    person = _register(signed_in, site, primary_clinician_id=signed_in.user.id)
    assert _admit(signed_in, person["id"]).status_code == 303
    plan = signed_in.post(f"/api/v1/clients/{person['id']}/plans", json={"problems": []})
    assert plan.status_code == 201, plan.get_json()
    medication = signed_in.post(f"/api/v1/plans/{plan.get_json()['id']}/medications", json={
        "medication": "buprenorphine_naloxone", "dose": 16, "unit": "mg", "frequency": "daily",
        "phase": "maintenance", "prescriber_id": signed_in.user.id, "start_on": TODAY.isoformat(),
    })
    assert medication.status_code == 201, medication.get_json()
    consent = signed_in.post(f"/api/v1/clients/{person['id']}/consents", json={
        "kind": "communication", "channel": "sms", "granted_on": TODAY.isoformat(), "evidence": "signed form"})
    assert consent.status_code == 201

    chart = signed_in.get(f"/clients/{person['id']}")
    assert chart.status_code == 200
    assert chart.headers["Cache-Control"] == "no-store"
    html = chart.get_data(as_text=True)
    assert "<title>Client chart \u2013 clinic</title>" in html  # never the client's name in the title
    text = _text(chart)
    banner = text[text.index("Client: "):text.index("Chart Episodes")]
    age = TODAY.year - 1988 - ((TODAY.month, TODAY.day) < (4, 12))
    assert banner.startswith(f"Client: Okafor, Maria Born Apr 12, 1988 ({age} years) MRN {person['mrn']} Site {site.name}")
    assert f"Episode Open since {TODAY.strftime('%b')} " in banner and "level of care 1-OTP" in banner
    assert '<span class="family">Okafor</span>' in html  # shown in capitals by the stylesheet
    assert "Buprenorphine/naloxone 16 mg, daily" in text
    assert "Draft, not yet signed" in text
    assert "Contact by text message In force" in text
    assert "Admission Admitted at ASAM level 1-OTP" in text
    assert "Consent Consent to sms contact" in text


def test_the_chart_is_audited_as_the_api_reads_of_the_same_data(app: Flask, signed_in: Session, site: Site) -> None:
    person = _register(signed_in, site)
    since = _last_event_id(app)
    assert signed_in.get(f"/clients/{person['id']}").status_code == 200
    actions = sorted(action for action, _details, _outcome in _events(app, since, person["id"]))
    assert actions == sorted([
        "client.read",  # GET /clients/{id}
        "episode.read",  # GET /clients/{id}/episodes (the banner's open episode)
        "consent.read",  # GET /clients/{id}/consents
        "plan.read",  # GET /clients/{id}/plans
        "medication.read",  # GET /clients/{id}/medications
        "naloxone_dispense.read",  # GET /clients/{id}/naloxone (the overdose prevention card)
        "overdose_event.read",  # GET /clients/{id}/overdose-events
        "client.timeline",  # GET /clients/{id}/timeline
    ])


def test_the_banner_shows_risk_flags_and_unacknowledged_safety_alerts_as_labelled_chips(
    app: Flask, signed_in: Session, site: Site, make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    intake = login(make_user("intake", sites=[site]))
    call = intake.post("/api/v1/intake-calls", json={
        "site_id": site.id, "direction": "inbound", "occurred_at": (utcnow() - timedelta(hours=1)).isoformat(),
        "caller_name": "Sam Ortiz", "caller_relation": "self", "callback_phone": "(212) 555-0134",
        "referral_source": "emergency department", "reason": "wants to start buprenorphine",
        "substances": ["fentanyl"], "risk_flags": ["recent_overdose", "injection_use"], "outcome": "assessment_scheduled",
    })
    assert call.status_code == 201, call.get_json()
    converted = intake.post(f"/api/v1/intake-calls/{call.get_json()['id']}/convert", json={
        "first_name": "Sam", "last_name": "Ortiz", "date_of_birth": "1990-02-02"})
    assert converted.status_code == 201, converted.get_json()
    client_id = converted.get_json()["id"]
    answers = {f"q{i}": 1 for i in range(1, 9)} | {"q9": 1}
    assessment = signed_in.post(f"/api/v1/clients/{client_id}/assessments", json={
        "instrument": "PHQ-9", "answers": answers, "administered_at": (utcnow() - timedelta(minutes=5)).isoformat()})
    assert assessment.status_code == 201, assessment.get_json()

    since = _last_event_id(app)
    chart = signed_in.get(f"/clients/{client_id}")
    chips = re.findall(r'<span class="tag tag--(\w+)">([^<]+)</span>', chart.get_data(as_text=True).split("</section>")[0])
    assert chips == [("red", "Safety alert: PHQ-9"), ("red", "Risk: recent overdose"), ("orange", "Risk: injects drugs")]
    assert "not acknowledged" in _text(chart)
    # What the chips show was read, and the reads are audited.
    actions = [action for action, _details, _outcome in _events(app, since, client_id)]
    assert "intake_call.read" in actions and "assessment.read" in actions and "staff_notification.read" in actions

    # The intake coordinator sees the risk flags, not the clinical alert, and no episode or care.
    seen_by_intake = intake.get(f"/clients/{client_id}")
    head = seen_by_intake.get_data(as_text=True).split("</section>")[0]
    assert "Risk: recent overdose" in head and "Safety alert" not in head
    assert "Status Prospective" in _text(seen_by_intake)
    assert "Episodes</a>" not in seen_by_intake.get_data(as_text=True)
    assert "Medications" not in _text(seen_by_intake)
    assert intake.get(f"/clients/{client_id}/episodes").status_code == 403


def test_the_banner_shows_an_unacknowledged_overdose_alert_until_it_is_acknowledged(
    signed_in: Session, site: Site, clinician: User
) -> None:
    person = _register(signed_in, site, primary_clinician_id=clinician.id)
    reported = signed_in.post(f"/api/v1/clients/{person['id']}/overdose-events", json={
        "occurred_on": (utcnow() - timedelta(days=1)).date().isoformat(), "fatal": False, "naloxone_used": True,
        "substances": ["fentanyl"], "source": "ed_notice"})
    assert reported.status_code == 201, reported.get_json()
    head = signed_in.get(f"/clients/{person['id']}").get_data(as_text=True).split("</section>")[0]
    assert re.findall(r'<span class="tag tag--(\w+)">([^<]+)</span>', head) == [("red", "Safety alert: overdose reported")]

    [alert] = signed_in.get("/api/v1/staff-notifications").get_json()["items"]
    assert signed_in.post(f"/api/v1/staff-notifications/{alert['id']}/acknowledge", json={}).status_code == 200
    head = signed_in.get(f"/clients/{person['id']}").get_data(as_text=True).split("</section>")[0]
    assert "Safety alert" not in head


def test_the_timeline_pages_with_a_keyset_cursor(
    app: Flask, signed_in: Session, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "TIMELINE_SIZE", 2)
    person = _register(signed_in, site)
    for channel in ("sms", "email", "voice"):
        signed_in.post(f"/api/v1/clients/{person['id']}/consents", json={
            "kind": "communication", "channel": channel, "granted_on": TODAY.isoformat(), "evidence": "form"})
    chart = signed_in.get(f"/clients/{person['id']}").get_data(as_text=True)
    assert chart.count('class="timeline__item"') == 2
    assert "voice" in chart.split('id="timeline"')[1] and "to sms" not in chart.split('id="timeline"')[1]
    more = re.search(r'hx-get="([^"]+)"', chart.split('id="timeline"')[1])
    assert more is not None
    older = signed_in.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert older.status_code == 200
    fragment = older.get_data(as_text=True)
    assert fragment.count('class="timeline__item"') == 1 and "Consent to sms contact" in fragment
    assert "<main" not in fragment and "timeline-more" not in fragment
    page = signed_in.get(more.group(1).replace("&amp;", "&"))
    assert "Consent to sms contact" in _text(page) and "Okafor" in page.get_data(as_text=True)


# --- episodes ------------------------------------------------------------------------------------


def test_admit_then_discharge_with_a_teds_reason(app: Flask, signed_in: Session, site: Site) -> None:
    person = _register(signed_in, site)
    page = signed_in.get(f"/clients/{person['id']}/episodes")
    assert "Admit to an episode of care" in _text(page)
    assert "1-OTP — Opioid treatment program (OTP)" in _text(page)
    admitted = _admit(signed_in, person["id"])
    assert admitted.status_code == 303
    page = signed_in.get(admitted.headers["Location"])
    text = _text(page)
    assert "Admitted on" in text and "The client is now active" in text
    assert "Discharge client" in text
    html = page.get_data(as_text=True)
    assert 'data-confirm="Discharge this client?' in html  # asks once
    # The TEDS reasons are radios in a fieldset, each with its words.
    assert '<legend class="label">Reason for discharge</legend>' in html
    assert 'type="radio" value="2"' in html and "Dropped out" in text
    with app.app_context():
        episode = db.session.scalars(select(Episode).where(Episode.client_id == person["id"])).one()

    missing = signed_in.post(f"/clients/{person['id']}/episodes/{episode.id}/discharge", data={
        "csrf_token": signed_in.csrf_token, "discharged_on": TODAY.isoformat(), "note": "moved away"})
    assert missing.status_code == 422
    assert 'id="reason_code-error"' in missing.get_data(as_text=True)
    assert "Choose the reason for discharge." in _text(missing)
    assert "moved away" in missing.get_data(as_text=True)

    done = signed_in.post(f"/clients/{person['id']}/episodes/{episode.id}/discharge", data={
        "csrf_token": signed_in.csrf_token, "discharged_on": TODAY.isoformat(), "reason_code": "4"})
    assert done.status_code == 303
    with app.app_context():
        closed = db.session.get_one(Episode, episode.id)
        assert (closed.discharged_on, closed.discharge_reason_code) == (TODAY, 4)
        assert db.session.get_one(Client, person["id"]).status is ClientStatus.DISCHARGED
    after = _text(signed_in.get(done.headers["Location"]))
    assert "Transferred" in after and "Admit to an episode of care" in after


def test_an_admission_refused_by_the_rules_shows_why_and_the_page_view_is_still_audited(
    app: Flask, signed_in: Session, site: Site
) -> None:
    person = _register(signed_in, site)
    since = _last_event_id(app)
    refused = _admit(signed_in, person["id"], level="1.5")  # a 4th-edition level with the 3rd edition
    assert refused.status_code == 422
    assert "Not an ASAM level of the edition 3 criteria." in _text(refused)
    assert 'value="1.5" selected' in refused.get_data(as_text=True)
    actions = [action for action, _details, _outcome in _events(app, since, person["id"])]
    assert "client.read" in actions and "episode.read" in actions
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Episode).where(Episode.client_id == person["id"])) == 0


def test_an_episode_of_another_client_is_not_found(signed_in: Session, site: Site) -> None:
    first, second = _register(signed_in, site), _register(signed_in, site, first_name="Ines")
    _admit(signed_in, first["id"])
    episode = signed_in.get(f"/api/v1/clients/{first['id']}/episodes").get_json()["items"][0]
    response = signed_in.post(f"/clients/{second['id']}/episodes/{episode['id']}/discharge", data={
        "csrf_token": signed_in.csrf_token, "discharged_on": TODAY.isoformat(), "reason_code": "1"})
    assert response.status_code == 404
    assert "Page not found" in _text(response)


# --- consents and disclosures ----------------------------------------------------------------------


def test_record_and_revoke_a_contact_consent(app: Flask, signed_in: Session, site: Site) -> None:
    person = _register(signed_in, site)
    form = signed_in.get(f"/clients/{person['id']}/consents/new?kind=communication")
    assert "Text messages (SMS)" in _text(form)
    refused = signed_in.post(f"/clients/{person['id']}/consents", data={
        "csrf_token": signed_in.csrf_token, "kind": "communication", "granted_on": TODAY.isoformat(),
        "evidence": "verbal, witnessed"})
    assert refused.status_code == 422
    assert 'id="channel-error"' in refused.get_data(as_text=True)
    assert "verbal, witnessed" in refused.get_data(as_text=True)
    recorded = signed_in.post(f"/clients/{person['id']}/consents", data={
        "csrf_token": signed_in.csrf_token, "kind": "communication", "channel": "sms",
        "granted_on": TODAY.isoformat(), "evidence": "verbal, witnessed"})
    assert recorded.status_code == 303
    listing = signed_in.get(recorded.headers["Location"])
    text = _text(listing)
    assert "Consent recorded." in text and "Contact by text message" in text and "In force" in text
    assert 'data-confirm="Revoke this consent?' in listing.get_data(as_text=True)
    with app.app_context():
        consent = db.session.scalars(select(Consent).where(Consent.client_id == person["id"])).one()
    revoked = signed_in.post(f"/clients/{person['id']}/consents/{consent.id}/revoke",
                             data={"csrf_token": signed_in.csrf_token})
    assert revoked.status_code == 303
    with app.app_context():
        assert db.session.get_one(Consent, consent.id).revoked_at is not None
    assert "Revoked" in _text(signed_in.get(revoked.headers["Location"]))


def test_a_disclosure_consent_needs_every_element_and_the_accounting_lists_disclosures(
    app: Flask, signed_in: Session, site: Site
) -> None:
    person = _register(signed_in, site)
    form = signed_in.get(f"/clients/{person['id']}/consents/new?kind=disclosure")
    assert "Record a disclosure consent" in _text(form)
    typed = {"csrf_token": signed_in.csrf_token, "kind": "disclosure", "recipient": "Dr. Lee, Harbor Primary Care",
             "purpose": "coordination of care", "information_description": "medications and doses",
             "disclosing_party": site.name, "signed_on": TODAY.isoformat(), "signature_name": "Maria Okafor"}
    refused = signed_in.post(f"/clients/{person['id']}/consents", data=typed)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="expires_on-error"' in html and 'id="revocation_acknowledged-error"' in html
    recorded = signed_in.post(f"/clients/{person['id']}/consents", data={
        **typed, "expires_on": (TODAY + timedelta(days=365)).isoformat(), "revocation_acknowledged": "true"})
    assert recorded.status_code == 303
    consent_id = signed_in.get(f"/api/v1/clients/{person['id']}/consents").get_json()["items"][0]["id"]
    disclosed = signed_in.post(f"/api/v1/clients/{person['id']}/disclosures", json={
        "consent_id": consent_id, "recipient": "Dr. Lee, Harbor Primary Care", "purpose": "coordination of care",
        "description": "current buprenorphine dose", "disclosed_at": utcnow().isoformat()})
    assert disclosed.status_code == 201, disclosed.get_json()
    since = _last_event_id(app)
    listing = signed_in.get(f"/clients/{person['id']}/consents")
    text = _text(listing)
    assert "Disclosure to Dr. Lee, Harbor Primary Care" in text
    assert "Accounting of disclosures" in text and "current buprenorphine dose" in text
    actions = [action for action, _details, _outcome in _events(app, since, person["id"])]
    assert {"client.read", "consent.read", "disclosure.read"} <= set(actions)


def test_an_intake_coordinator_sees_contact_consents_only(
    signed_in: Session, site: Site, make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    person = _register(signed_in, site)
    intake = login(make_user("intake", sites=[site]))
    page = intake.get(f"/clients/{person['id']}/consents")
    assert page.status_code == 200
    assert "Accounting of disclosures" not in _text(page)
    assert "Record a disclosure consent" not in _text(page)
    assert intake.get(f"/clients/{person['id']}/consents/new?kind=disclosure").status_code == 200
    assert "Record a contact consent" in _text(intake.get(f"/clients/{person['id']}/consents/new?kind=disclosure"))


# --- scope -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/episodes", "/consents", "/consents/new", "/timeline"])
def test_a_client_of_another_site_is_the_not_found_page_and_the_attempt_is_audited(
    app: Flask, signed_in: Session, site: Site, make_site: Callable[..., Site],
    make_user: Callable[..., User], login: Callable[..., Session], path: str,
) -> None:
    person = _register(signed_in, site)
    elsewhere = login(make_user("clinician", sites=[make_site()]))
    since = _last_event_id(app)
    response = elsewhere.get(f"/clients/{person['id']}{path}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Page not found" in _text(response)
    assert "Okafor" not in response.get_data(as_text=True)
    assert _events(app, since, person["id"]) == [
        ("access.denied", {"reason": "outside the user's sites or role"}, Outcome.DENIED.value)
    ]
    found = elsewhere.get("/clients/search?q=okafor")
    assert "No client found" in _text(found)
    assert "No client found" in _text(elsewhere.get(f"/clients/search?q={normalise_mrn(person['mrn'])}"))


def _clients(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Client)) or 0)


def test_another_sites_id_in_the_search_or_the_register_form_is_the_not_found_page(
    app: Flask, signed_in: Session, site: Site, make_site: Callable[..., Site], make_user: Callable[..., User],
) -> None:
    _register(signed_in, site)
    other = make_site()
    stranger = make_user("clinician", sites=[other])
    listed = signed_in.get(f"/clients?site_id={other.id}")
    assert listed.status_code == 404 and "Okafor" not in listed.get_data(as_text=True)
    before = _clients(app)
    typed = {"csrf_token": signed_in.csrf_token, "first_name": "Lena", "last_name": "Whitfield",
             "date_of_birth": "1979-11-03", "site_id": str(site.id)}
    for changed in ({"site_id": str(other.id)}, {"primary_clinician_id": str(stranger.id)},
                    {"site_id": "\u00b2"}, {"site_id": "9" * 5000}, {"primary_clinician_id": "abc"}):
        response = signed_in.post("/clients/new", data={**typed, **changed})
        assert response.status_code == 404, changed
        assert "Page not found" in _text(response)
    assert _clients(app) == before


def test_a_discharge_reason_that_is_not_a_number_is_said_beside_the_field(
    app: Flask, signed_in: Session, site: Site
) -> None:
    person = _register(signed_in, site)
    admitted = signed_in.post(f"/clients/{person['id']}/episodes", data={
        "csrf_token": signed_in.csrf_token, "admitted_on": TODAY.isoformat(), "level_of_care": "1",
        "asam_edition": "4"})
    assert admitted.status_code == 303
    with app.app_context():
        episode = db.session.scalars(select(Episode).where(Episode.client_id == person["id"])).one()
    for junk in ("\u00b2", "9" * 5000, "x" * 100_000):
        response = signed_in.post(f"/clients/{person['id']}/episodes/{episode.id}/discharge", data={
            "csrf_token": signed_in.csrf_token, "discharged_on": TODAY.isoformat(), "reason_code": junk})
        assert response.status_code == 422
        assert re.search(r'id="reason_code-error"', response.get_data(as_text=True))
    with app.app_context():
        assert db.session.get_one(Episode, episode.id).discharged_on is None


def test_a_client_form_without_the_csrf_token_is_refused_and_writes_nothing(
    app: Flask, signed_in: Session, site: Site
) -> None:
    person = _register(signed_in, site)
    before = _clients(app)
    registered = signed_in.client.post("/clients/new", data={
        "first_name": "Lena", "last_name": "Whitfield", "date_of_birth": "1979-11-03", "site_id": str(site.id)})
    assert registered.status_code == 403 and registered.mimetype == "text/html"
    assert _clients(app) == before
    admitted = signed_in.client.post(f"/clients/{person['id']}/episodes", data={
        "admitted_on": TODAY.isoformat(), "level_of_care": "1"})
    assert admitted.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Episode)) == 0


def test_an_intake_coordinator_posting_a_disclosure_consent_is_refused_as_over_the_api(
    app: Flask, signed_in: Session, site: Site, make_user: Callable[..., User], login: Callable[..., Session],
) -> None:
    person = _register(signed_in, site)
    desk = login(make_user("intake", sites=[site]))
    assert "Record a disclosure consent" not in _text(desk.get(f"/clients/{person['id']}/consents/new?kind=disclosure"))
    response = desk.post(f"/clients/{person['id']}/consents", data={
        "kind": "disclosure", "recipient": "Dr. Lee, Harbor Primary Care", "purpose": "coordination of care",
        "information_description": "medications and doses", "disclosing_party": site.name,
        "signed_on": TODAY.isoformat(), "signature_name": "Maria Okafor",
        "expires_on": (TODAY + timedelta(days=365)).isoformat(), "revocation_acknowledged": "true"})
    assert response.status_code == 403 and "You cannot do this" in _text(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Consent).where(
            Consent.client_id == person["id"])) == 0
