"""The drug screens and CM page (/clients/{id}/screens): record a screen (observed, missed, results),
the CM ledger as the API computes it with the next earning and the cap remaining, prizes drawn."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
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


# --- starting and ending a program -----------------------------------------------------------------


def _plan(session: Session, client_id: int) -> int:
    plan = session.post(f"/api/v1/clients/{client_id}/plans", json={"problems": []})
    assert plan.status_code == 201, plan.get_json()
    return int(plan.get_json()["id"])


def _start_form(session: Session, **fields: Any) -> dict[str, Any]:
    """The start form as the page fills it in, with ``fields`` typed over it."""
    page = session.get(f"/clients/{fields.pop('client_id')}/screens").get_data(as_text=True)
    form = page[page.index('id="start-program"') :]
    form = form[: form.index("</form>")]
    values: dict[str, Any] = {"csrf_token": session.csrf_token, "target_substances": []}
    for name, value in re.findall(
        r'<input class="input[^"]*" id="[^"]+" name="([^"]+)" type="[^"]+" value="([^"]*)"', form
    ):
        values[name] = value
    values.update(re.findall(r'<input type="hidden" name="(plan_id)" value="([^"]*)"', form))
    values["schedule"] = re.search(r'name="schedule" type="radio" value="([^"]+)" checked', form).group(1)  # type: ignore[union-attr]
    values.update(fields)
    return values


def test_a_program_is_started_from_the_page_with_the_domain_defaults(
    app: Flask, signed_in: Session, site: Site
) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)
    page = signed_in.get(f"/clients/{client_id}/screens")
    html = page.get_data(as_text=True)
    assert '<details class="disclosure cm-start" id="start-program" open>' in html  # no program yet: open
    form = _start_form(signed_in, client_id=client_id, target_substances=["fentanyl", "cocaine"])
    assert form["plan_id"] == str(plan_id)
    assert (form["schedule"], form["start_dollars"], form["cap_dollars"]) == ("escalating_voucher", "2.50", "750.00")
    since = _last_event_id(app)
    started = signed_in.post(f"/clients/{client_id}/cm-programs", data=form)
    assert started.status_code == 303, _text(started)
    assert "done=started" in started.headers["Location"]
    text = _text(signed_in.get(started.headers["Location"]))
    assert "Contingency management program started." in text
    assert "Escalating voucher: negative for cocaine and fentanyl Running" in text
    program = signed_in.get(f"/api/v1/plans/{plan_id}").get_json()  # the plan is untouched
    assert program["id"] == plan_id
    assert "cm_program.create" in _actions(app, since, client_id)
    made = _programs(app, client_id)
    assert len(made) == 1
    assert made[0].params == {"start_cents": 250, "increment_cents": 125, "bonus_cents": 1000, "bonus_every": 3}
    assert made[0].annual_cap_cents == 75000
    assert made[0].starts_on == to_local(utcnow(), ZONE).date() or made[0].starts_on == utcnow().date()


def _programs(app: Flask, client_id: int) -> list[Any]:
    from clinic.plans.models import CMProgram

    with app.app_context():
        programs = db.session.scalars(select(CMProgram).where(CMProgram.client_id == client_id)).all()
        db.session.expunge_all()
        return list(programs)


def test_a_prize_draw_program_takes_its_own_parameters(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    _plan(signed_in, client_id)
    form = _start_form(
        signed_in,
        client_id=client_id,
        schedule="prize_draw",
        target_substances=["methamphetamine"],
        target_other="Tramadol, kratom",
        max_draws="4",
        cap_dollars="$500",
        start_dollars="not read for a prize draw",
    )
    assert signed_in.post(f"/clients/{client_id}/cm-programs", data=form).status_code == 303
    [program] = _programs(app, client_id)
    assert program.target_substances == ["kratom", "methamphetamine", "tramadol"]
    assert program.params == {"max_draws": 4}
    assert program.annual_cap_cents == 50000


def test_a_start_refused_shows_each_message_beside_its_field(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    _plan(signed_in, client_id)
    form = _start_form(
        signed_in,
        client_id=client_id,
        start_dollars="lots",
        bonus_dollars="2000",
        bonus_every="0",
        cap_dollars="",
        ends_on="2020-01-01",
    )
    refused = signed_in.post(f"/clients/{client_id}/cm-programs", data=form)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    text = _text(refused)
    assert "There is a problem" in html
    assert 'id="target_substances-error"' in html and "Choose the substances a sample must be negative for" in text
    assert 'id="start_dollars-error"' in html and "Enter dollars and cents" in text
    assert 'id="cap_dollars-error"' in html and "Enter an amount in dollars, from $0 to $100,000." in text
    assert 'value="lots"' in html  # what was typed is kept
    assert '<details class="disclosure cm-start" id="start-program" open>' in html
    # The schema's ranges and the dates, in dollars and words, once the form's own checks pass.
    form.update(target_substances=["fentanyl"], start_dollars="2.50", cap_dollars="750")
    again = signed_in.post(f"/clients/{client_id}/cm-programs", data=form)
    assert again.status_code == 422
    text = _text(again)
    assert "Bonus: Must be between $0 and $1,000." in text
    assert 'id="bonus_every-error"' in again.get_data(as_text=True)
    # The dates are checked together once every field is right (the schema's own order).
    form.update(bonus_dollars="10", bonus_every="3")
    dates = signed_in.post(f"/clients/{client_id}/cm-programs", data=form)
    assert dates.status_code == 422
    assert "End date: Must not be before the start date." in _text(dates)
    assert 'id="ends_on-error"' in dates.get_data(as_text=True)
    assert _programs(app, client_id) == []


def test_without_an_open_plan_the_page_says_to_write_one(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    text = _text(signed_in.get(f"/clients/{client_id}/screens"))
    assert "A program is part of a treatment plan, and the client has no open plan. Write a plan first." in text


def test_a_running_program_is_ended_on_the_day_given(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    program_id = _program(signed_in, client_id)
    assert (
        signed_in.post(
            f"/clients/{client_id}/screens", data=_form(signed_in, 24, result_fentanyl="negative")
        ).status_code
        == 303
    )
    url = f"/clients/{client_id}/cm-programs/{program_id}/end"
    page = signed_in.get(f"/clients/{client_id}/screens").get_data(as_text=True)
    assert f'action="{url}"' in page and 'data-confirm="End this program on the day given?' in page
    too_early = (utcnow() - timedelta(days=3)).date().isoformat()
    refused = signed_in.post(url, data={"csrf_token": signed_in.csrf_token, "ends_on": too_early})
    assert refused.status_code == 422
    assert f'id="end-{program_id}-error"' in refused.get_data(as_text=True)
    assert "counts in this program: end it on" in _text(refused)
    assert f'value="{too_early}"' in refused.get_data(as_text=True)
    empty = signed_in.post(url, data={"csrf_token": signed_in.csrf_token, "ends_on": ""})
    assert empty.status_code == 422 and "Enter the program's last day." in _text(empty)
    since = _last_event_id(app)
    today = utcnow().date().isoformat()
    ended = signed_in.post(url, data={"csrf_token": signed_in.csrf_token, "ends_on": today})
    assert ended.status_code == 303
    assert "cm_program.update" in _actions(app, since, client_id)
    [program] = _programs(app, client_id)
    assert program.ends_on.isoformat() == today
    text = _text(signed_in.get(ended.headers["Location"]))
    assert "Program ended." in text and f"to {program.ends_on:%b} {program.ends_on.day}, {program.ends_on.year}" in text


def test_an_ended_program_has_no_end_form_and_ending_it_again_is_refused(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    program_id = _program(signed_in, client_id, ends_on=yesterday)
    url = f"/clients/{client_id}/cm-programs/{program_id}/end"
    page = signed_in.get(f"/clients/{client_id}/screens").get_data(as_text=True)
    assert f'action="{url}"' not in page
    refused = signed_in.post(url, data={"csrf_token": signed_in.csrf_token, "ends_on": yesterday})
    assert refused.status_code == 409 and f"This program already ended on {yesterday}." in _text(refused)


# --- a screen entered in error ---------------------------------------------------------------------


def test_a_screen_is_corrected_from_its_row_and_shown_struck(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    program_id = _program(signed_in, client_id)
    for hours in (72, 48):
        form = _form(signed_in, hours, collection="observed", result_fentanyl="negative")
        assert signed_in.post(f"/clients/{client_id}/screens", data=form).status_code == 303
    wrong = signed_in.get(f"/api/v1/clients/{client_id}/drug-screens").get_json()["items"][0]
    page = signed_in.get(f"/clients/{client_id}/screens").get_data(as_text=True)
    link = f"/clients/{client_id}/screens/{wrong['id']}/entered-in-error"
    assert f'href="{link}">Correct' in page
    since = _last_event_id(app)
    asked = signed_in.get(link)
    assert asked.status_code == 200
    text = _text(asked)
    assert "Correct a drug screen" in text and "fentanyl: Negative" in text
    # It earned $3.75: handed to the client, it stays.
    assert "Escalating voucher (fentanyl): a voucher of $3.75" in text
    assert {"drug_screen.read", "cm_program.read"} <= set(_actions(app, since, client_id))
    blank = signed_in.post(link, data={"csrf_token": signed_in.csrf_token, "reason": "  "})
    assert blank.status_code == 422
    assert 'id="reason-error"' in blank.get_data(as_text=True) and "Say why the screen was entered in error." in _text(
        blank
    )
    long = signed_in.post(link, data={"csrf_token": signed_in.csrf_token, "reason": "x" * 2001})
    assert long.status_code == 422 and 'id="reason-error"' in long.get_data(as_text=True)
    missing = signed_in.post(link, data={"csrf_token": signed_in.csrf_token})
    assert missing.status_code == 422 and "Say why the screen was entered in error." in _text(missing)
    done = signed_in.post(link, data={"csrf_token": signed_in.csrf_token, "reason": "Fentanyl strip was positive."})
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"done=corrected&screen={wrong['id']}#record-title")
    assert "drug_screen.update" in _actions(app, since, client_id)
    shown = signed_in.get(done.headers["Location"])
    html = shown.get_data(as_text=True)
    text = _text(shown)
    assert "Screen marked entered in error" in text
    row = html[html.index(f'id="screen-{wrong["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert "Entered in error" in row and "Fentanyl strip was positive." in row and "<s>fentanyl: Negative</s>" in row
    assert "Correct" not in row
    assert "2 screens (1 entered in error)" in text
    # The record form starts from the wrong screen's collection time, for the right result.
    when = to_local(datetime.fromisoformat(wrong["collected_at"]), ZONE)
    assert f'name="collected_date" type="date" value="{when.date().isoformat()}"' in html
    assert f'name="collected_time" type="time" value="{when:%H:%M}"' in html
    # The voucher it paid is kept, marked, in the ledger.
    assert "Voucher kept: Screen entered in error handed to the client before the correction" in text
    ledger = signed_in.get(f"/api/v1/cm-programs/{program_id}/ledger").get_json()
    assert [(e["amount_cents"], e["kept"]) for e in ledger["entries"]] == [(250, False), (375, True)]
    # The right result, recorded at the same time, is a new screen.
    right = _form(signed_in, 0, collection="observed", result_fentanyl="positive")
    right.update(collected_date=when.date().isoformat(), collected_time=f"{when:%H:%M}")
    assert signed_in.post(f"/clients/{client_id}/screens", data=right).headers["Location"].endswith("done=recorded")
    # Marking it again is refused on the page.
    again = signed_in.post(link, data={"csrf_token": signed_in.csrf_token, "reason": "Again."})
    assert again.status_code == 409 and "already marked entered in error" in _text(again)


def test_only_clinicians_correct_and_only_their_clients_screens(
    signed_in: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., Session],
    make_site: Callable[..., Site],
) -> None:
    client_id = _client(signed_in, site)
    assert (
        signed_in.post(
            f"/clients/{client_id}/screens", data=_form(signed_in, 2, result_fentanyl="negative")
        ).status_code
        == 303
    )
    screen_id = signed_in.get(f"/api/v1/clients/{client_id}/drug-screens").get_json()["items"][0]["id"]
    other_client = _client(signed_in, site)
    assert signed_in.get(f"/clients/{other_client}/screens/{screen_id}/entered-in-error").status_code == 404
    intake = login(make_user("intake", sites=[site]))
    assert intake.get(f"/clients/{client_id}/screens/{screen_id}/entered-in-error").status_code == 403
    elsewhere = login(make_user("clinician", sites=[make_site()]))
    assert elsewhere.get(f"/clients/{client_id}/screens/{screen_id}/entered-in-error").status_code == 404
    refused = elsewhere.post(
        f"/clients/{client_id}/screens/{screen_id}/entered-in-error",
        data={"csrf_token": elsewhere.csrf_token, "reason": "Not mine."},
    )
    assert refused.status_code == 404
    assert signed_in.get(f"/api/v1/clients/{client_id}/drug-screens").get_json()["items"][0]["entered_in_error"] is None
