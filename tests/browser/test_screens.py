"""Drug screens and CM, and overdose prevention, in a real browser: a clinician records a screen with
the keyboard and sees the CM ledger (equal to the API's), records naloxone and an overdose, and is
asked once before a death is confirmed."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select

from clinic.auth.models import Site
from clinic.clients.models import Client, ClientStatus
from clinic.core.time import to_local
from clinic.extensions import db
from clinic.plans.models import CMProgram, CMSchedule
from tests.browser.conftest import LiveServer

RIVERSIDE = "clinician1.riverside"


def _client_with_a_voucher_program(server: LiveServer) -> tuple[int, int]:
    """A Riverside client in treatment with an escalating-voucher CM program running: (client id, program id).

    The demo's own program when one runs, else one started under the client's plan (the operation).
    """
    from clinic.auth.models import User
    from clinic.core.unit_of_work import unit_of_work
    from clinic.plans import cm
    from clinic.plans.models import Plan, PlanStatus

    with server.app.app_context():
        riverside = select(Site.id).where(Site.name.like("Riverside%")).scalar_subquery()
        running = db.session.execute(
            select(Client.id, CMProgram.id)
            .join(CMProgram, CMProgram.client_id == Client.id)
            .where(
                Client.site_id == riverside,
                Client.status == ClientStatus.ACTIVE,
                CMProgram.schedule == CMSchedule.ESCALATING_VOUCHER,
                CMProgram.ends_on.is_(None),
            )
            .order_by(Client.id)
        ).first()
        if running is not None:
            db.session.remove()
            return int(running[0]), int(running[1])
        with unit_of_work():
            plan = db.session.scalars(
                select(Plan)
                .join(Client, Client.id == Plan.client_id)
                .where(
                    Client.site_id == riverside,
                    Client.status == ClientStatus.ACTIVE,
                    Plan.status.in_([PlanStatus.ACTIVE, PlanStatus.DRAFT]),
                )
                .order_by(Client.id)
            ).first()
            assert plan is not None, "the demo data has a Riverside client with a plan"
            actor = db.session.scalars(select(User).where(User.email.startswith(RIVERSIDE))).one()
            program = cm.create_program(
                plan, actor=actor, target_substances=["fentanyl"], schedule=CMSchedule.ESCALATING_VOUCHER
            )
            found = (plan.client_id, program.id)
        db.session.remove()
    return found


def _dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def test_a_clinician_records_a_screen_with_the_keyboard_and_sees_the_ledger(
    open_session: Any, live_server: LiveServer
) -> None:
    client_id, program_id = _client_with_a_voucher_program(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    session.go(f"/clients/{client_id}/screens")
    assert page.get_by_role("heading", level=1).inner_text() == "Drug screens and contingency management"
    program = page.locator(f"#program-{program_id}")
    before = program.locator(".cm-ledger tbody tr").count()

    # The keyboard alone: arrows choose each result, Enter in a field records the screen.
    page.get_by_label("Observed: staff watched the sample given").focus()
    page.keyboard.press("Space")
    for substance in ("Fentanyl", "Opiates (morphine, heroin)", "Cocaine", "Methamphetamine"):
        page.get_by_role("group", name=substance, exact=True).get_by_label("Not tested").focus()
        page.keyboard.press("ArrowRight")  # Not tested → Negative
    page.get_by_role("group", name="Cocaine", exact=True).get_by_label("Negative").focus()
    page.keyboard.press("ArrowRight")  # Negative → Positive
    page.get_by_label("Time collected").press("Enter")
    page.wait_for_url(re.compile(r".*/screens\?done=recorded$"))
    assert "Drug screen recorded." in page.get_by_role("status").inner_text()
    assert program.locator(".cm-ledger tbody tr").count() == before + 1

    # The numbers are the API's ledger.
    ledger = page.request.get(f"{live_server.url}/api/v1/cm-programs/{program_id}/ledger").json()
    assert _dollars(ledger["total_cents"]) == program.locator(".cm-total").inner_text()
    assert program.locator(".cm-cap").inner_text().startswith(_dollars(ledger["cap_remaining_cents"]))
    assert program.locator(".cm-ledger tbody tr").last.locator("td").last.inner_text() == _dollars(
        ledger["total_cents"]
    )
    assert "if the next sample is negative for fentanyl" in program.locator(".cm-next").inner_text()
    newest = (
        page.locator("table", has=page.locator("caption", has_text="Drug screens, newest first"))
        .locator("tbody tr")
        .first
    )
    assert "Positive for cocaine" in newest.inner_text() and "Observed" in newest.inner_text()
    session.check_accessibility()
    session.screenshot("screens-cm")


def test_a_clinician_records_naloxone_and_an_overdose(open_session: Any, live_server: LiveServer) -> None:
    client_id, _program = _client_with_a_voucher_program(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    session.go(f"/clients/{client_id}/overdose")
    assert page.get_by_role("heading", level=1).inner_text() == "Overdose prevention"

    # Naloxone with the keyboard: the date is today, a formulation and the teaching chosen with the arrows.
    page.get_by_label("Nasal spray, 4 mg").focus()
    page.keyboard.press("Space")
    page.get_by_role("group", name="Overdose response taught").get_by_label("Yes").focus()
    page.keyboard.press("Space")
    page.get_by_label("Units handed over").fill("2")
    page.get_by_label("Units handed over").press("Enter")
    page.wait_for_url(re.compile(r".*/overdose\?done=naloxone$"))
    assert "Naloxone dispense recorded." in page.get_by_role("status").inner_text()
    assert "Holds naloxone" in page.locator(".naloxone-status").inner_text()

    # A fatal overdose reported by an emergency department: recorded, nothing closed until confirmed.
    page.get_by_label("Yes, the client died").check()
    page.get_by_role("group", name="Was naloxone used?").get_by_label("Not known").check()
    page.get_by_label("Substances").fill("fentanyl, xylazine")
    page.get_by_label("An emergency department").check()
    page.get_by_role("button", name="Record overdose").click()
    page.wait_for_url(re.compile(r".*/overdose\?done=fatal$"))
    confirm = page.get_by_role("button", name="Confirm death and discharge (TEDS 6)")
    message = confirm.get_attribute("data-confirm") or ""
    assert "TEDS reason 6 (death)" in message and "every appointment ahead is cancelled" in message
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    confirm.click()
    assert asked == [message]  # asked once, saying what happens; cancelled, nothing is sent
    assert page.url.endswith("done=fatal")
    assert "None open" not in page.locator(".banner").inner_text()
    session.check_accessibility()
    session.screenshot("overdose")

    # The chart's card.
    page.get_by_role("navigation", name="Client pages").get_by_role("link", name="Chart").click()
    card = page.locator("section.card", has=page.get_by_role("heading", name="Overdose prevention"))
    assert "Last dispensed" in card.inner_text() and "Fatal" in card.inner_text()


def test_both_pages_fit_a_narrow_screen(open_session: Any, live_server: LiveServer) -> None:
    client_id, _program = _client_with_a_voucher_program(live_server)
    session = open_session(live_server.account(RIVERSIDE), viewport=(640, 900))
    for path in (f"/clients/{client_id}/screens", f"/clients/{client_id}/overdose"):
        session.go(path)
        wide = session.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, f"{path} scrolls sideways by {wide}px at 640px"


def test_a_clinician_starts_a_program_and_corrects_a_screen_with_the_keyboard(
    open_session: Any, live_server: LiveServer
) -> None:
    client_id, _program = _client_with_a_voucher_program(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    session.go(f"/clients/{client_id}/screens")

    # Start a prize-draw program: the disclosure opened with Enter, boxes ticked with Space, the
    # schedule chosen with the arrows, Enter in a field starts it.
    summary = page.get_by_text("Start a contingency management program", exact=True)
    summary.focus()
    page.keyboard.press("Enter")
    form = page.get_by_role("form", name="Start a contingency management program")
    targets = form.get_by_role("group", name=re.compile("^Target substances"))
    for substance in ("Cocaine", "Methamphetamine"):
        targets.get_by_label(substance, exact=True).focus()
        page.keyboard.press("Space")
    form.get_by_label("Escalating voucher", exact=True).focus()
    page.keyboard.press("ArrowDown")  # Escalating voucher → Prize draw
    draws = form.get_by_label("Most draws per sample")
    draws.focus()
    page.keyboard.press("Control+a")
    page.keyboard.type("4")
    session.check_accessibility()
    session.screenshot("screens-start-program")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/screens\?done=started#program-\d+$"))
    assert "Contingency management program started." in page.get_by_role("status").inner_text()
    started = int(page.url.rsplit("#program-", 1)[1])
    heading = page.locator(f"#program-{started}-title").inner_text()
    assert heading.startswith("Prize draw: negative for cocaine and methamphetamine")
    with live_server.app.app_context():
        program = db.session.get_one(CMProgram, started)
        assert (program.schedule, program.params, program.annual_cap_cents) == (
            CMSchedule.PRIZE_DRAW,
            {"max_draws": 4},
            75000,
        )
        db.session.remove()

    # Correct the newest screen: its row's link, the reason typed, the button asked once.
    newest = (
        page.locator("table", has=page.locator("caption", has_text="Drug screens, newest first"))
        .locator("tbody tr")
        .first
    )
    screen_id = int((newest.get_attribute("id") or "").removeprefix("screen-"))
    newest.get_by_role("link", name=re.compile("^Correct the screen of")).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/screens/{screen_id}/entered-in-error$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Correct a drug screen"
    page.get_by_label("Why was it entered in error?").focus()
    page.keyboard.type("Results of another client's cup.")
    session.check_accessibility()
    session.screenshot("screens-correct")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.keyboard.press("Tab")  # to "Mark entered in error"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf".*/screens\?done=corrected&screen={screen_id}#record-title$"))
    assert asked and asked[0].startswith("Mark this screen entered in error?")
    assert "Screen marked entered in error" in page.get_by_role("status").inner_text()
    row = page.locator(f"#screen-{screen_id}")
    assert "Entered in error" in row.inner_text() and "Results of another client's cup." in row.inner_text()
    assert row.get_by_role("link", name=re.compile("^Correct")).count() == 0
    listed = page.request.get(f"{live_server.url}/api/v1/clients/{client_id}/drug-screens").json()["items"]
    marked = next(s for s in listed if s["id"] == screen_id)
    assert marked["entered_in_error"]["reason"] == "Results of another client's cup."
    # The record form starts from that screen's collection time, for the right result.
    with live_server.app.app_context():
        zone = db.session.get_one(Site, db.session.get_one(Client, client_id).site_id).timezone
        db.session.remove()
    collected = to_local(datetime.fromisoformat(marked["collected_at"]), zone)
    assert page.get_by_label("Date collected").input_value() == collected.date().isoformat()
    assert page.get_by_label("Time collected").input_value() == collected.strftime("%H:%M")
    session.check_accessibility()
    session.screenshot("screens-corrected")
