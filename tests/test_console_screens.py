"""The drug screens and CM page (/clients/{id}/screens): record a screen (observed, missed, results),
the CM ledger as the API computes it with the next earning and the cap remaining, prizes drawn."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.plans.models import CMPrize, DrugScreen
from tests.conftest import Session

ZONE = "America/New_York"


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(name=f"Riverside {utcnow().timestamp()}")


@pytest.fixture
def clinician(make_user: Callable[..., User], site: Site) -> User:
    return make_user("clinician", sites=[site], name="Dana Reyes")


@pytest.fixture
def signed_in(login: Callable[..., Session], clinician: User) -> Session:
    return login(clinician)


def _client(session: Session, site: Site) -> int:
    response = session.post(
        "/api/v1/clients?allow_duplicate=true",
        json={"site_id": site.id, "first_name": "Maria", "last_name": "Okafor", "date_of_birth": "1988-04-12"},
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def _program(session: Session, client_id: int, schedule: str = "escalating_voucher", **fields: Any) -> int:
    plan = session.post(f"/api/v1/clients/{client_id}/plans", json={"problems": []})
    assert plan.status_code == 201, plan.get_json()
    program = session.post(
        f"/api/v1/plans/{plan.get_json()['id']}/cm-programs",
        json={
            "target_substances": ["fentanyl"],
            "schedule": schedule,
            "starts_on": (utcnow() - timedelta(days=60)).date().isoformat(),
            **fields,
        },
    )
    assert program.status_code == 201, program.get_json()
    return int(program.get_json()["id"])


def _text(response: Any) -> str:
    html = response.get_data(as_text=True)
    html = html[html.index("<main") : html.index("</main>")]
    html = re.sub(r"</?(span|strong|a|em|time)\b[^>]*>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _actions(app: Flask, since: int, client_id: int) -> list[str]:
    with app.app_context():
        stmt = select(AuditEvent.action).where(AuditEvent.id > since, AuditEvent.client_id == client_id)
        return list(db.session.scalars(stmt.order_by(AuditEvent.id)))


def _form(session: Session, hours_ago: float, **fields: Any) -> dict[str, Any]:
    at = to_local(utcnow() - timedelta(hours=hours_ago), ZONE)
    return {
        "csrf_token": session.csrf_token,
        "collected_date": at.date().isoformat(),
        "collected_time": at.strftime("%H:%M"),
        **fields,
    }


def test_the_page_shows_for_clinicians_only_and_is_audited(
    app: Flask,
    signed_in: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., Session],
    make_site: Callable[..., Site],
) -> None:
    client_id = _client(signed_in, site)
    program_id = _program(signed_in, client_id)
    since = _last_event_id(app)
    response = signed_in.get(f"/clients/{client_id}/screens")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = _text(response)
    assert "Drug screens and contingency management" in text
    assert "Escalating voucher: negative for fentanyl" in text
    assert "No drug screen recorded yet." in text
    assert 'aria-current="page"' in response.get_data(as_text=True)  # the "Screens & CM" tab
    actions = _actions(app, since, client_id)
    assert {"client.read", "drug_screen.read", "cm_program.read"} <= set(actions)
    with app.app_context():
        details = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.id > since, AuditEvent.action == "cm_program.read")
        ).all()
    assert details == [{"via": "ledger"}]
    assert str(program_id)  # the program's read is the ledger's

    intake = login(make_user("intake", sites=[site]))
    assert intake.get(f"/clients/{client_id}/screens").status_code == 403
    other = login(make_user("clinician", sites=[make_site()]))
    since = _last_event_id(app)
    assert other.get(f"/clients/{client_id}/screens").status_code == 404
    assert "access.denied" in _actions(app, since, client_id)
    assert (
        other.post(f"/clients/{client_id}/screens", data=_form(other, 1, result_fentanyl="negative")).status_code == 404
    )


def test_recording_screens_fills_the_ledger_as_the_api_computes_it(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    program_id = _program(signed_in, client_id)
    # 3 negatives then a positive: 250, 375, 1500 (the bonus on the 3rd), then nothing.
    for hours, result in ((96, "negative"), (72, "negative"), (48, "negative"), (24, "positive")):
        response = signed_in.post(
            f"/clients/{client_id}/screens",
            data=_form(signed_in, hours, collection="observed", result_fentanyl=result, result_cocaine="negative"),
        )
        assert response.status_code == 303, _text(response) if response.status_code == 422 else response.status_code
        assert response.headers["Location"].endswith(f"/clients/{client_id}/screens?done=recorded")
    page = signed_in.get(f"/clients/{client_id}/screens?done=recorded")
    text = _text(page)
    assert "Drug screen recorded." in text
    ledger = signed_in.get(f"/api/v1/cm-programs/{program_id}/ledger").get_json()
    assert [e["amount_cents"] for e in ledger["entries"]] == [250, 375, 1500, 0]
    assert ledger["total_cents"] == 2125
    assert f"Earned in this program ${ledger['total_cents'] / 100:,.2f}" in text
    assert f"Cap remaining this year ${ledger['cap_remaining_cents'] / 100:,.2f}" in text
    # The positive reset the streak: the next negative is the first again, $2.50.
    assert "Next earning $2.50 if the next sample is negative for fentanyl (negative number 1 in a row)" in text
    # Running totals, oldest first.
    totals = re.findall(r'<td class="num">(\$[\d,.]+)</td>\s*</tr>', page.get_data(as_text=True))
    assert totals == ["$2.50", "$6.25", "$21.25", "$21.25"]
    # The list: newest first, the positive said in words.
    rows = page.get_data(as_text=True).split('id="screens-title"')[1]
    assert rows.index("Positive") < rows.index("All negative")
    assert "Positive for fentanyl" in _text(page).split("Drug screens, newest first")[1]
    assert "Observed" in text
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(DrugScreen).where(DrugScreen.client_id == client_id))
            == 4
        )


def test_a_bonus_is_announced_and_the_cap_cuts_the_next_earning(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    _program(signed_in, client_id, annual_cap_cents=1000)
    for hours in (72, 48):
        assert (
            signed_in.post(
                f"/clients/{client_id}/screens", data=_form(signed_in, hours, result_fentanyl="negative")
            ).status_code
            == 303
        )
    text = _text(signed_in.get(f"/clients/{client_id}/screens"))
    # The 3rd negative would earn 500 + 1000 bonus: the cap leaves $3.75 of $10.00.
    assert "Cap remaining this year $3.75" in text
    assert (
        "Next earning $3.75 if the next sample is negative for fentanyl (negative number 3 in a row, with the bonus; $15.00 cut to what the cap leaves)"
        in text
    )


def test_a_missed_screen_and_the_re_recording_of_one(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    form = _form(signed_in, 5, collection="missed")
    assert signed_in.post(f"/clients/{client_id}/screens", data=form).status_code == 303
    text = _text(signed_in.get(f"/clients/{client_id}/screens"))
    assert "Missed" in text and "No results" in text
    # The same collection time again is the same screen, corrected.
    again = signed_in.post(
        f"/clients/{client_id}/screens", data={**form, "collection": [], "result_fentanyl": "negative"}
    )
    assert again.headers["Location"].endswith("done=re-recorded")
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(DrugScreen).where(DrugScreen.client_id == client_id))
            == 1
        )


def test_bad_input_is_shown_beside_its_field_and_nothing_is_written(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    # No result and not missed: the operation's rule, beside the results.
    nothing = signed_in.post(f"/clients/{client_id}/screens", data=_form(signed_in, 1, collection="observed"))
    assert nothing.status_code == 422
    html = nothing.get_data(as_text=True)
    assert "There is a problem" in html and 'id="results-error"' in html
    assert "At least one substance result is required." in _text(nothing)
    assert 'value="observed" checked' in html  # what was ticked is kept
    # Missed with results; a future time; an other substance without its result; a bad name.
    missed = signed_in.post(
        f"/clients/{client_id}/screens", data=_form(signed_in, 1, collection="missed", result_fentanyl="positive")
    )
    assert missed.status_code == 422 and "Must be empty when missed." in _text(missed)
    future = signed_in.post(f"/clients/{client_id}/screens", data=_form(signed_in, -3, result_fentanyl="negative"))
    assert future.status_code == 422 and 'id="collected_date-error"' in future.get_data(as_text=True)
    other = signed_in.post(f"/clients/{client_id}/screens", data=_form(signed_in, 1, other_name_1="tramadol"))
    assert other.status_code == 422 and "Choose the result for tramadol." in _text(other)
    assert 'value="tramadol"' in other.get_data(as_text=True)
    bad = signed_in.post(
        f"/clients/{client_id}/screens", data=_form(signed_in, 1, other_name_1="K2 spice", other_result_1="positive")
    )
    assert bad.status_code == 422 and "Substance names are lower-case" in _text(bad)
    no_time = signed_in.post(
        f"/clients/{client_id}/screens",
        data={
            "csrf_token": signed_in.csrf_token,
            "collected_date": "",
            "collected_time": "",
            "result_fentanyl": "negative",
        },
    )
    assert no_time.status_code == 422 and "Enter the date the sample was collected." in _text(no_time)
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(DrugScreen).where(DrugScreen.client_id == client_id))
            == 0
        )
    # An other substance recorded with its result.
    good = signed_in.post(
        f"/clients/{client_id}/screens", data=_form(signed_in, 1, other_name_1="Tramadol", other_result_1="positive")
    )
    assert good.status_code == 303
    assert signed_in.get(f"/api/v1/clients/{client_id}/drug-screens").get_json()["items"][0]["results"] == {
        "tramadol": "positive"
    }


def test_a_prize_drawn_is_recorded_in_a_prize_draw_program(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    program_id = _program(signed_in, client_id, schedule="prize_draw")
    for hours in (72, 48):
        assert (
            signed_in.post(
                f"/clients/{client_id}/screens", data=_form(signed_in, hours, result_fentanyl="negative")
            ).status_code
            == 303
        )
    text = _text(signed_in.get(f"/clients/{client_id}/screens"))
    assert "Next earning 3 draws if the next sample is negative for fentanyl (negative number 3 in a row)" in text
    url = f"/clients/{client_id}/cm-programs/{program_id}/prizes"
    for bad, message in (
        ("", "Enter the value of the prize drawn"),
        ("five", "Enter dollars and cents"),
        ("2000", "Must be between $0 and $1,000."),
    ):
        refused = signed_in.post(url, data={"csrf_token": signed_in.csrf_token, "prize_dollars": bad})
        assert refused.status_code == 422 and message in _text(refused), bad
        assert f'id="prize-{program_id}-error"' in refused.get_data(as_text=True)
    done = signed_in.post(url, data={"csrf_token": signed_in.csrf_token, "prize_dollars": "$5.50"})
    assert done.status_code == 303
    ledger = signed_in.get(f"/api/v1/cm-programs/{program_id}/ledger").get_json()
    assert [e["kind"] for e in ledger["entries"]] == ["draws", "draws", "prize"]
    assert ledger["total_cents"] == 550
    text = _text(signed_in.get(f"/clients/{client_id}/screens?done=prize"))
    assert "Prize recorded." in text and "Prize drawn $5.50 $5.50 $5.50" in text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CMPrize).where(CMPrize.program_id == program_id)) == 1
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "cm_prize.create", AuditEvent.client_id == client_id)
            )
            == 1
        )


def test_a_prize_in_a_voucher_program_or_of_another_client_is_refused(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    voucher = _program(signed_in, client_id)
    refused = signed_in.post(
        f"/clients/{client_id}/cm-programs/{voucher}/prizes",
        data={"csrf_token": signed_in.csrf_token, "prize_dollars": "5"},
    )
    assert refused.status_code == 422 and "Prizes are drawn only in prize-draw programs." in _text(refused)
    someone_else = _client(signed_in, site)
    assert (
        signed_in.post(
            f"/clients/{someone_else}/cm-programs/{voucher}/prizes",
            data={"csrf_token": signed_in.csrf_token, "prize_dollars": "5"},
        ).status_code
        == 404
    )
