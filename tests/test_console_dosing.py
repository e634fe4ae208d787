"""The dosing window (/dosing), a client's doses and the day's dispensing log in the console.

What a user notices: the day's list with each client's name, date of birth and MRN, the ordered dose
and today's status; a dose recorded only after the identity is confirmed; the API's refusals beside
the field; the row swapped by htmx saying what happened; voiding and the take-home review; the log
to print and its CSV; and that every view is audited and no-store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.console.dates import clock, long_date
from clinic.core.time import from_local, local_today, to_local
from clinic.dosing.models import Dose
from clinic.extensions import db
from tests.conftest import Session

ZONE = "America/New_York"
ALL_MET = {
    "criteria.no_active_sud_or_risky_conditions": "yes",
    "criteria.regular_attendance": "yes",
    "criteria.no_serious_behavioural_problems": "yes",
    "criteria.no_recent_diversion": "yes",
    "criteria.safe_transport_and_storage": "yes",
    "criteria.other_considerations": "yes",
    "other_considerations_text": "Lockbox seen.",
    "note": "Reviewed with the client.",
}


def _text(response: Any) -> str:
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"</?(span|strong|a|em|time|del)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


@pytest.fixture
def otp(
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Any,
    client: Any,
    login: Callable[..., Session],
) -> dict[str, Any]:
    site = make_site(is_otp=True, timezone=ZONE, name="Harbor OTP")
    clinician = make_user("clinician", sites=[site], name="Dana Q. Reyes")
    headers = bearer(clinician)
    today = local_today(ZONE)

    def patient(
        *, first: str, last: str, medication: str = "methadone", dose: float = 40, admitted_days_ago: int = 40
    ) -> dict[str, Any]:
        person = client.post(
            "/api/v1/clients?allow_duplicate=true",
            headers=headers,
            json={
                "site_id": site.id,
                "first_name": first,
                "last_name": last,
                "date_of_birth": "1985-04-02",
                "primary_clinician_id": clinician.id,
            },
        )
        assert person.status_code == 201, person.get_json()
        client_id = person.get_json()["id"]
        admitted = client.post(
            f"/api/v1/clients/{client_id}/episodes",
            headers=headers,
            json={"admitted_on": (today - timedelta(days=admitted_days_ago)).isoformat(), "level_of_care": "1-OTP"},
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
                "start_on": (today - timedelta(days=30)).isoformat(),
            },
        )
        assert order.status_code == 201, order.get_json()
        return {
            "id": client_id,
            "medication_id": order.get_json()["id"],
            "mrn": person.get_json()["mrn"],
            "plan_id": plan["id"],
        }

    ana = patient(first="Ana", last="Silva")
    ben = patient(first="Ben", last="Okoro", medication="buprenorphine", dose=16)
    session = login(clinician)
    return {
        "site": site,
        "clinician": clinician,
        "session": session,
        "ana": ana,
        "ben": ben,
        "headers": headers,
        "patient": patient,
    }


def _record(session: Session, person: dict[str, Any], *, htmx: bool = False, **fields: Any) -> Any:
    body = {
        "csrf_token": session.csrf_token,
        "identity_confirmed": "yes",
        "kind": "observed",
        "amount_mg": "40",
        "lot_number": "L-1",
        **fields,
    }
    headers = {"HX-Request": "true"} if htmx else {}
    return session.post(
        f"/dosing/clients/{person['id']}/orders/{person['medication_id']}/doses",
        data={k: v for k, v in body.items() if v is not None},
        headers=headers,
    )


def _doses(app: Flask, client_id: int) -> list[Dose]:
    with app.app_context():
        return list(db.session.scalars(select(Dose).where(Dose.client_id == client_id).order_by(Dose.id)))


def _events_since(app: Flask, since: int) -> list[tuple[str, int | None]]:
    with app.app_context():
        return [
            (e.action, e.client_id)
            for e in db.session.scalars(select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id))
        ]


def _last_event(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def test_the_window_lists_the_day_with_two_identifiers_and_is_audited(app: Flask, otp: dict[str, Any]) -> None:
    since = _last_event(app)
    response = otp["session"].get(f"/dosing?site_id={otp['site'].id}")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    text = _text(response)
    assert "Okoro, Ben" in text and "Silva, Ana" in text
    assert text.index("Okoro, Ben") < text.index("Silva, Ana")  # A to Z by family name
    assert "Born Apr 2, 1985" in text and f"MRN {otp['ana']['mrn']}" in text
    assert "Methadone" in text and "40 mg" in text and "Buprenorphine" in text and "16 mg" in text
    assert text.count("Due") >= 2
    # A light row per client: a button opens the row's form, which the list itself does not carry.
    assert "Dose for Okoro, Ben" in text and "Dose for Silva, Ana" in text
    assert "I confirmed name and date of birth with the client" not in text
    events = _events_since(app, since)
    assert ("dose.read", otp["ana"]["id"]) in events and ("dose.read", otp["ben"]["id"]) in events


def test_a_row_opens_its_form_with_the_identity_check_and_the_eligibility(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    listed = session.get(f"/dosing?site_id={otp['site'].id}").get_data(as_text=True)
    link = re.search(
        r'<a [^>]*href="([^"]*client_id={}[^"]*)"[^>]*hx-get="([^"]*)"[^>]*hx-select="#order-{}"'.format(
            otp["ana"]["id"], otp["ana"]["medication_id"]
        ),
        listed,
    )
    assert link is not None, "each row's button opens it, with and without htmx"
    since = _last_event(app)
    opened = session.get(link.group(2).replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert opened.status_code == 200
    html = opened.get_data(as_text=True)
    text = _text(opened)
    assert "Silva, Ana" in text and "Okoro, Ben" not in text  # the client's own rows only
    assert "I confirmed name and date of birth with the client" in text
    assert re.search(rf'id="order-{otp["ana"]["medication_id"]}-identity"[^>]*autofocus', html)
    assert 'name="lot_number"' in html and ">Record<" in html
    assert "No review of the take-home criteria is recorded." in text  # why no take-home
    events = _events_since(app, since)
    assert ("dose.read", otp["ana"]["id"]) in events and ("take_home_review.read", otp["ana"]["id"]) in events
    assert all(client_id != otp["ben"]["id"] for _action, client_id in events)


def test_the_filter_is_posted_and_finds_by_name_or_mrn(otp: dict[str, Any]) -> None:
    session = otp["session"]
    url = f"/dosing?site_id={otp['site'].id}"
    by_name = _text(session.post(url, data={"csrf_token": session.csrf_token, "q": "silv"}))
    assert "Silva, Ana" in by_name and "Okoro, Ben" not in by_name
    by_mrn = _text(session.post(url, data={"csrf_token": session.csrf_token, "q": otp["ben"]["mrn"]}))
    assert "Okoro, Ben" in by_mrn and "Silva, Ana" not in by_mrn
    family_given = _text(session.post(url, data={"csrf_token": session.csrf_token, "q": "Okoro, B"}))
    assert "Okoro, Ben" in family_given and "Silva, Ana" not in family_given
    nobody = _text(session.post(url, data={"csrf_token": session.csrf_token, "q": "Zzyzx"}))
    assert "No one on the list matches" in nobody
    # A typed % or _ is a character of the name, not a wildcard matching everyone.
    for wildcard in ("%", "_", "Okoro, %", "%, B"):
        literal = _text(session.post(url, data={"csrf_token": session.csrf_token, "q": wildcard}))
        assert "No one on the list matches" in literal, wildcard


def test_the_next_page_of_a_search_keeps_the_search_and_posts_it(
    otp: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("clinic.dosing.pages.WINDOW_PAGE", 1)
    session = otp["session"]
    first = session.post(f"/dosing?site_id={otp['site'].id}", data={"csrf_token": session.csrf_token, "q": "n"})
    html = first.get_data(as_text=True)
    assert "Okoro, Ben" in _text(first) and "Silva, Ana" not in _text(first)
    form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]*after=[^"]*)"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None, "the Next of a search is a form that posts the search"
    assert 'name="q" value="n"' in form.group(2) and "q=" not in form.group(1)
    action = form.group(1).replace("&amp;", "&")
    second = _text(session.post(action, data={"csrf_token": session.csrf_token, "q": "n"}))
    assert "Silva, Ana" in second and "Okoro, Ben" not in second


def test_the_pages_list_every_order_once_in_order_however_a_client_s_orders_fall(
    client: Any, otp: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("clinic.dosing.pages.WINDOW_PAGE", 1)
    ana = otp["ana"]
    second = client.post(
        f"/api/v1/plans/{ana['plan_id']}/medications",
        headers=otp["headers"],
        json={
            "medication": "naltrexone_oral",
            "dose": 50,
            "unit": "mg",
            "frequency": "daily",
            "phase": "maintenance",
            "prescriber_id": otp["clinician"].id,
            "start_on": local_today(ZONE).isoformat(),
            "override_reason": "Listed twice for the test of the window's pages",
        },
    )
    assert second.status_code == 201, second.get_json()
    cara = otp["patient"](first="Cara", last="Álvarez")  # sorted as "alvarez": before Okoro
    url: str | None = f"/dosing?site_id={otp['site'].id}"
    seen = []
    while url:
        html = otp["session"].get(url).get_data(as_text=True)
        seen += re.findall(r'<tr id="order-(\d+)"', html)
        found = re.search(r'href="([^"]*after=[^"]*)" rel="next"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    ana_orders = sorted([ana["medication_id"], second.get_json()["id"]])
    expected = [cara["medication_id"], otp["ben"]["medication_id"], *ana_orders]
    assert [int(order) for order in seen] == expected


def test_recording_needs_the_identity_confirmed_and_writes_nothing_without(app: Flask, otp: dict[str, Any]) -> None:
    response = _record(otp["session"], otp["ana"], identity_confirmed=None)
    assert response.status_code == 422
    assert "Confirm the client's name and date of birth" in _text(response)
    assert _doses(app, otp["ana"]["id"]) == []


def test_an_observed_dose_swaps_the_row_and_says_what_happened(app: Flask, otp: dict[str, Any]) -> None:
    response = _record(otp["session"], otp["ana"], htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<tr")
    text = _text(response)
    assert "Recorded: 40 mg observed" in text and "lot L-1" in text and "by DQR" in text and "Dosed" in text
    [dose] = _doses(app, otp["ana"]["id"])
    assert dose.kind.value == "observed" and dose.dispenser_initials == "DQR"
    again = _record(otp["session"], otp["ana"], htmx=True)  # no observed form any more: the API says why
    assert "already recorded" in _text(again)
    assert len(_doses(app, otp["ana"]["id"])) == 1


def test_a_dosed_row_offers_the_take_home_and_says_why_not_when_opened(otp: dict[str, Any]) -> None:
    session = otp["session"]
    ana = otp["ana"]
    assert _record(session, ana).status_code == 303
    listed = _text(session.get(f"/dosing?site_id={otp['site'].id}"))
    assert "Take-home for Silva, Ana" in listed  # dosed: a supply may still follow
    opened = session.get(f"/dosing?site_id={otp['site'].id}&client_id={ana['id']}")
    text = _text(opened)
    assert "Dosed" in text and "Not eligible (day 40 in treatment, tier up to 28 days)" in text
    assert "No review of the take-home criteria is recorded." in text
    assert 'name="take_home_days"' not in opened.get_data(as_text=True)


def test_the_api_refusals_show_beside_the_field(app: Flask, otp: dict[str, Any]) -> None:
    wrong = _record(otp["session"], otp["ana"], amount_mg="45")
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert re.search(r'id="order-\d+-amount-error"[^>]*>.*?The ordered dose on .* is 40 mg', html, re.S)
    no_lot = _record(otp["session"], otp["ana"], lot_number="")
    assert no_lot.status_code == 422 and 'id="order-' in no_lot.get_data(as_text=True)
    take_home = _record(otp["session"], otp["ana"], kind="take_home", take_home_days="3", htmx=True)
    assert "No review of the take-home criteria is recorded." in _text(take_home)
    assert _doses(app, otp["ana"]["id"]) == []


def test_a_split_dose_then_its_second_part(app: Flask, otp: dict[str, Any]) -> None:
    first = _record(otp["session"], otp["ana"], amount_mg="25", split="true", htmx=True)
    text = _text(first)
    assert "Part given: 25 of 40 mg" in text and "part of a split dose" in text
    assert 'value="15"' in first.get_data(as_text=True)  # the rest prefilled
    second = _record(otp["session"], otp["ana"], amount_mg="15", split="true", htmx=True)
    assert "Dosed" in _text(second)
    too_much = _record(otp["session"], otp["ana"], amount_mg="5", split="true")
    assert too_much.status_code == 422 and "the ordered dose is 40 mg" in _text(too_much)
    assert [d.amount_mg for d in _doses(app, otp["ana"]["id"])] == [25, 15]


def test_review_then_a_take_home_without_js(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    ana = otp["ana"]
    reviewed = session.post(f"/clients/{ana['id']}/doses/review", data={"csrf_token": session.csrf_token, **ALL_MET})
    assert reviewed.status_code == 303
    page = _text(session.get(reviewed.headers["Location"]))
    assert "Review recorded" in page and "up to 28 daily doses" in page and "Considered Lockbox seen." in page
    window = _text(session.get(f"/dosing?site_id={otp['site'].id}&client_id={ana['id']}"))
    assert "Eligible: up to 28 daily doses (day 40 in treatment" in window and "Take-home supply" in window
    done = _record(session, ana, kind="take_home", take_home_days="6", amount_mg="40")
    assert done.status_code == 303 and f"done={ana['medication_id']}" in done.headers["Location"]
    after = _text(session.get(done.headers["Location"]))
    assert "Recorded: Take-home: 6 daily doses of 40 mg" in after
    [dose] = _doses(app, ana["id"])
    assert dose.kind.value == "take_home" and dose.take_home_days == 6
    too_many = _record(session, ana, kind="take_home", take_home_days="40")
    assert too_many.status_code == 422


def test_a_review_with_a_missing_answer_shows_beside_it(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    bad = dict(ALL_MET, **{"criteria.regular_attendance": "maybe"})
    response = session.post(f"/clients/{otp['ana']['id']}/doses/review", data={"csrf_token": session.csrf_token, **bad})
    assert response.status_code == 422
    assert 'id="criteria-regular_attendance-error"' in response.get_data(as_text=True)
    no_note = dict(ALL_MET, note="")
    assert (
        session.post(
            f"/clients/{otp['ana']['id']}/doses/review", data={"csrf_token": session.csrf_token, **no_note}
        ).status_code
        == 422
    )


def test_the_client_doses_page_voids_with_a_reason(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    ana = otp["ana"]
    _record(session, ana)
    [dose] = _doses(app, ana["id"])
    page = session.get(f"/clients/{ana['id']}/doses")
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    html = page.get_data(as_text=True)
    assert 'class="banner"' in html and "data-confirm=" in html
    url = f"/clients/{ana['id']}/doses/{dose.id}/entered-in-error"
    empty = session.post(url, data={"csrf_token": session.csrf_token, "reason": ""})
    assert empty.status_code == 422 and f'id="reason-{dose.id}-error"' in empty.get_data(as_text=True)
    voided = session.post(url, data={"csrf_token": session.csrf_token, "reason": "Wrong client"})
    assert voided.status_code == 303
    text = _text(session.get(voided.headers["Location"]))
    assert "Voided" in text and "Entered in error: Wrong client" in text
    twice = session.post(url, data={"csrf_token": session.csrf_token, "reason": "Again"})
    assert twice.status_code == 409 and "already voided" in _text(twice)
    window = _text(session.get(f"/dosing?site_id={otp['site'].id}"))
    assert window.count("Due") >= 2  # a voided dose counts nowhere


def test_the_dispensing_log_prints_and_downloads_with_the_session(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    _record(session, otp["ana"], lot_number="L-77")
    page = session.get(f"/dosing/log?site_id={otp['site'].id}")
    assert page.status_code == 200
    text = _text(page)
    assert "Silva, Ana" in text and "L-77" in text and "Totals" in text
    csv_url = re.search(r'href="(/api/v1/sites/\d+/dispensing-log\?[^"]+)"', page.get_data(as_text=True))
    assert csv_url is not None
    download = session.get(csv_url.group(1).replace("&amp;", "&"))
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "Silva, Ana" in download.get_data(as_text=True)


def test_who_may_see_it(
    app: Flask,
    otp: dict[str, Any],
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    login: Callable[..., Session],
) -> None:
    plain = make_site(name="Not an OTP")
    admin = login(make_user("admin", sites=[otp["site"]]))
    assert admin.get("/dosing").status_code == 403
    assert admin.get(f"/dosing/log?site_id={otp['site'].id}").status_code == 403
    intake = login(make_user("intake", sites=[otp["site"]]))
    assert intake.get("/dosing").status_code == 403
    assert intake.get(f"/clients/{otp['ana']['id']}/doses").status_code == 403
    other = login(make_user("clinician", sites=[plain]))
    assert other.get(f"/clients/{otp['ana']['id']}/doses").status_code == 404
    assert other.get(f"/dosing?site_id={otp['site'].id}").status_code == 404
    assert other.get(f"/dosing/log?site_id={otp['site'].id}").status_code == 404
    not_otp = other.get("/dosing")
    assert not_otp.status_code == 200 and "is not an opioid treatment program" in _text(not_otp)
    posted = _record(other, otp["ana"])
    assert posted.status_code == 404
    assert otp["session"].get(f"/dosing?site_id={otp['site'].id}&date=not-a-day").status_code == 422


# --- a dose given on a past day, entered late --------------------------------------------------------


def _yesterday() -> date:
    return local_today(ZONE) - timedelta(days=1)


def _late(session: Session, person: dict[str, Any], day: date, **fields: Any) -> Any:
    return _record(session, person, date=day.isoformat(), **fields)


def test_a_dose_given_yesterday_is_entered_late_with_its_time_and_reason(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    ana = otp["ana"]
    yesterday = _yesterday()
    url = f"/dosing?site_id={otp['site'].id}&date={yesterday.isoformat()}"
    listed = _text(session.get(url))
    assert "a past day: a dose given but not recorded is entered late on its row" in listed
    assert "No dose recorded" in listed and "Enter late for Silva, Ana" in listed and "Due" not in listed
    opened = _text(session.get(f"{url}&client_id={ana['id']}"))
    assert f"Late entry for {long_date(yesterday)}: a dose given that day but not recorded" in opened
    assert "I checked the name and date of birth against the record of the dose given" in opened
    assert "Time given" in opened and "Why it is entered late" in opened and "Record late entry" in opened
    reason = "Given during the network outage; written on the paper log"
    done = _late(session, ana, yesterday, given_time="08:30", late_reason=reason, lot_number="L-9")
    assert done.status_code == 303
    assert f"date={yesterday.isoformat()}" in done.headers["Location"]
    after = _text(session.get(done.headers["Location"]))
    given_at = from_local(datetime.combine(yesterday, time(8, 30)), ZONE)
    today = local_today(ZONE)
    assert (
        f"Recorded: 40 mg observed at {clock(given_at, ZONE)}, lot L-9, by DQR Entered late on {long_date(today)}: {reason}"
        in after
    )
    assert "Dosed" in after
    [dose] = _doses(app, ana["id"])
    assert dose.given_on == yesterday and to_local(dose.given_at, ZONE) == datetime.combine(yesterday, time(8, 30))
    assert dose.note == reason and dose.dispenser_initials == "DQR" and dose.kind.value == "observed"
    with app.app_context():
        created = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "dose.create", AuditEvent.client_id == ana["id"])
        ).one()
        assert created.details is not None and created.details["late_entry"] is True
    history = _text(session.get(f"/clients/{ana['id']}/doses"))
    assert "Entered late on" in history and reason in history
    log = _text(session.get(f"/dosing/log?site_id={otp['site'].id}&date={yesterday.isoformat()}"))
    assert "Silva, Ana" in log and "L-9" in log  # the day's record, at the time it was given


def test_a_late_entry_with_htmx_swaps_the_row_and_says_it_was_entered_late(app: Flask, otp: dict[str, Any]) -> None:
    ben = otp["ben"]
    response = _late(
        otp["session"],
        ben,
        _yesterday(),
        htmx=True,
        amount_mg="16",
        given_time="2:15 PM",
        late_reason="Missed at close",
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<tr") and re.search(r'class="dosing__done"[^>]*autofocus', html)
    assert "Entered late on" in _text(response) and "Missed at close" in _text(response)
    [dose] = _doses(app, ben["id"])
    assert to_local(dose.given_at, ZONE).time() == time(14, 15)


def test_a_late_entry_needs_its_time_and_reason_and_refusals_name_the_field(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    ana = otp["ana"]
    order = ana["medication_id"]
    yesterday = _yesterday()
    missing = _late(session, ana, yesterday)
    assert missing.status_code == 422
    html = missing.get_data(as_text=True)
    assert re.search(rf'id="order-{order}-time-error"[^>]*>.*?Enter the time the dose was given\.', html, re.S)
    assert re.search(rf'id="order-{order}-reason-error"[^>]*>.*?Say why the dose is entered late', html, re.S)
    not_a_time = _late(session, ana, yesterday, given_time="25:10", late_reason="Paper log")
    assert not_a_time.status_code == 422 and "like 08:30 or 2:15 PM" in _text(not_a_time)
    wrong_dose = _late(session, ana, yesterday, given_time="08:30", late_reason="Paper log", amount_mg="50")
    assert wrong_dose.status_code == 422
    assert re.search(rf'id="order-{order}-amount-error"[^>]*>.*?is 40 mg', wrong_dose.get_data(as_text=True), re.S)
    assert _doses(app, ana["id"]) == []

    # No take-home beyond the rules: a review recorded today does not cover a supply handed over yesterday.
    reviewed = session.post(f"/clients/{ana['id']}/doses/review", data={"csrf_token": session.csrf_token, **ALL_MET})
    assert reviewed.status_code == 303
    supply = _late(session, ana, yesterday, kind="take_home", take_home_days="2", given_time="09:00", late_reason="Log")
    assert supply.status_code == 422
    assert re.search(
        rf'id="order-{order}-days-error"[^>]*>.*?No review of the take-home criteria is recorded\.',
        supply.get_data(as_text=True),
        re.S,
    )
    assert _doses(app, ana["id"]) == []

    # One full dose a day, late or not.
    assert _late(session, ana, yesterday, given_time="08:00", late_reason="Paper log").status_code == 303
    again = _late(session, ana, yesterday, given_time="10:00", late_reason="Paper log")
    assert again.status_code == 409 and "already recorded" in _text(again)
    assert len(_doses(app, ana["id"])) == 1


def test_a_late_entry_outside_the_episode_of_care_or_in_the_future_is_refused(app: Flask, otp: dict[str, Any]) -> None:
    session = otp["session"]
    cara = otp["patient"](first="Cara", last="Diaz", admitted_days_ago=10)  # ordered 30 days ago, admitted 10
    before_admission = local_today(ZONE) - timedelta(days=20)
    response = _late(session, cara, before_admission, given_time="08:30", late_reason="Paper log")
    assert response.status_code == 422
    assert "The client was not in treatment (no episode of care open) on" in _text(response)
    tomorrow = local_today(ZONE) + timedelta(days=1)
    ahead = _late(session, cara, tomorrow, given_time="08:30", late_reason="Paper log")
    assert ahead.status_code == 422 and "entered late on a past day" in _text(ahead)
    assert _doses(app, cara["id"]) == []
    listed = _text(session.get(f"/dosing?site_id={otp['site'].id}&date={tomorrow.isoformat()}"))
    assert "a day to come: the list is read only" in listed and "Dose for" not in listed


def test_the_client_doses_page_opens_the_window_on_a_chosen_day(otp: dict[str, Any]) -> None:
    session = otp["session"]
    ana = otp["ana"]
    html = session.get(f"/clients/{ana['id']}/doses").get_data(as_text=True)
    form = re.search(r'<form[^>]*method="get"[^>]*action="/dosing"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None
    assert f'name="client_id" value="{ana["id"]}"' in form.group(1) and 'name="date" type="date"' in form.group(1)
    yesterday = _yesterday().isoformat()
    opened = _text(session.get(f"/dosing?site_id={otp['site'].id}&client_id={ana['id']}&date={yesterday}"))
    assert "Silva, Ana" in opened and "Okoro, Ben" not in opened and "Record late entry" in opened


def test_a_client_discharged_since_is_found_on_a_past_day_for_a_late_entry(
    app: Flask, client: Any, otp: dict[str, Any]
) -> None:
    ana = otp["ana"]
    [episode] = client.get(f"/api/v1/clients/{ana['id']}/episodes", headers=otp["headers"]).get_json()["items"]
    discharged_on = local_today(ZONE) - timedelta(days=2)
    discharged = client.post(
        f"/api/v1/episodes/{episode['id']}/discharge",
        headers=otp["headers"],
        json={"discharged_on": discharged_on.isoformat(), "reason_code": 4},
    )
    assert discharged.status_code == 200, discharged.get_json()
    session = otp["session"]

    def listed(day: date) -> str:
        return _text(session.get(f"/dosing?site_id={otp['site'].id}&date={day.isoformat()}"))

    assert "Silva, Ana" not in listed(local_today(ZONE)) and "Okoro, Ben" in listed(local_today(ZONE))
    assert "Silva, Ana" not in listed(_yesterday())  # after the discharge
    in_care = discharged_on - timedelta(days=1)
    # Not on that day's whole list (the clients in care), but found by the filter or opened from her doses page.
    assert "Silva, Ana" not in listed(in_care) and "Okoro, Ben" in listed(in_care)
    url = f"/dosing?site_id={otp['site'].id}&date={in_care.isoformat()}"
    found = _text(session.post(url, data={"csrf_token": session.csrf_token, "q": "Silva"}))
    assert "Silva, Ana" in found and "Record late entry" in found
    opened = _text(session.get(f"{url}&client_id={ana['id']}"))
    assert "Silva, Ana" in opened and "Record late entry" in opened
    done = _late(session, ana, in_care, given_time="07:45", late_reason="Last visit before the transfer")
    assert done.status_code == 303
    [dose] = _doses(app, ana["id"])
    assert dose.given_on == in_care


def test_a_dose_on_a_day_a_take_home_covers_is_refused_on_the_row(app: Flask, client: Any, otp: dict[str, Any]) -> None:
    from clinic.dosing.models import TakeHomeReview
    from clinic.dosing.operations import CRITERIA

    ana = otp["ana"]
    with app.app_context():  # a review made before yesterday's visit
        db.session.add(
            TakeHomeReview(
                client_id=ana["id"],
                site_id=otp["site"].id,
                criteria=dict.fromkeys(CRITERIA, True),
                note="Reviewed",
                decided_by_id=otp["clinician"].id,
                decided_at=from_local(datetime.combine(_yesterday() - timedelta(days=1), time(9)), ZONE),
            )
        )
        db.session.commit()
    supply = _late(
        otp["session"], ana, _yesterday(), kind="take_home", take_home_days="2", given_time="09:00", late_reason="Log"
    )
    assert supply.status_code == 303  # covers today and tomorrow
    for htmx in (True, False):  # a form left open on a screen that still offers today's dose
        response = _record(otp["session"], ana, htmx=htmx)
        assert response.status_code == (200 if htmx else 409)
        assert f"{local_today(ZONE).isoformat()} is already dosed" in _text(response)
    assert len(_doses(app, ana["id"])) == 1
