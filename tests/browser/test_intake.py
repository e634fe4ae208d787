"""An intake coordinator's day in a real browser: the queue, a risk-flagged call, a caller who is already a client."""

from __future__ import annotations

import random
import re
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from clinic.auth.models import User
from clinic.clients.operations import register_client
from clinic.core.time import utcnow
from clinic.core.unit_of_work import unit_of_work
from clinic.extensions import db
from clinic.intake.operations import log_call
from tests.browser.conftest import LiveServer

GIVEN_NAMES = ("Dana", "Marisol", "Theo", "Imani", "Rowan", "Elena", "Jonah", "Priya")
FAMILY_NAMES = ("Whitfield", "Quintero", "Okafor", "Lindqvist", "Baptiste", "Novak", "Harlan", "Serrano")


def _coordinator(live_server: LiveServer) -> str:
    return live_server.account("intake1.")


def _prepare(live_server: LiveServer, email: str) -> dict[str, Any]:
    """What the walk needs and the demo may not have: a registered client the caller turns out to be,
    and a call whose follow-up is due (with a risk, so it is on the queue's first page)."""
    rng = random.Random(uuid.uuid4().int)  # noqa: S311 - names for a test, not secrets
    first, last = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES) + "-" + rng.choice(FAMILY_NAMES)
    born = date(1965, 1, 1) + timedelta(days=rng.randrange(0, 35 * 365))
    callback_name = f"{rng.choice(GIVEN_NAMES)} {rng.choice(FAMILY_NAMES)}"
    with live_server.app.app_context():
        with unit_of_work():
            user = db.session.scalars(select(User).where(User.email == email)).one()
            site_id = user.site_ids[0]
            client = register_client(actor=user, site_id=site_id, first_name=first, last_name=last,
                                     date_of_birth=born, allow_duplicate=True)
            due = log_call(
                actor=user, site_id=site_id, direction="outbound", occurred_at=utcnow() - timedelta(days=2),
                caller_name=callback_name, caller_relation="family", callback_phone="+12125550188",
                referral_source="court", reason="asking about treatment for her brother", substances=["fentanyl"],
                risk_flags=["withdrawal_now"], outcome="callback_requested",
                follow_up_at=utcnow() - timedelta(hours=20),
            )
            prepared = {"first": first, "last": last, "born": born, "mrn": client.mrn, "client_id": client.id,
                        "due_call_id": due.id, "due_name": callback_name}
        db.session.remove()
    return prepared


def test_an_intake_coordinator_logs_a_risk_call_and_links_a_caller_who_is_already_a_client(
    open_session: Any, live_server: LiveServer
) -> None:
    email = _coordinator(live_server)
    known = _prepare(live_server, email)
    session = open_session(email)
    page = session.page

    # Home: the follow-up queue (due ones tagged in words) and the call log.
    assert page.url.endswith("/intake")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Intake")
    row = page.locator(f"#follow-up-{known['due_call_id']}")
    assert "Due today" in row.inner_text() or "Overdue" in row.inner_text()
    assert "In withdrawal now" in row.inner_text()
    assert page.get_by_role("heading", name="Call log").is_visible()
    session.check_accessibility()
    session.screenshot("intake-queue")

    # A call back recorded in the queue's row, with the keyboard: the row says what happened. Sent
    # without its outcome, the row says so beside the field, which takes the focus.
    row.get_by_role("button", name=re.compile("^Record call back")).focus()
    page.keyboard.press("Enter")
    row.locator(".field-error").wait_for()
    page.wait_for_function("id => document.activeElement.id === id", arg=f"outcome-{known['due_call_id']}")
    outcome = row.get_by_label(re.compile("^Outcome"))
    outcome.select_option("waitlisted")
    page.keyboard.press("Tab")  # "Follow up again" (closed)
    page.keyboard.press("Tab")  # the button
    assert page.evaluate("document.activeElement.textContent").startswith("Record call back")
    page.keyboard.press("Enter")
    done = page.locator(f"#follow-up-{known['due_call_id']}.row--done")
    done.wait_for()
    assert "Call back recorded: Put on the waiting list. No further follow-up." in done.inner_text()
    assert page.evaluate("document.activeElement.id") == f"follow-up-action-{known['due_call_id']}"
    session.check_accessibility()

    # A new call: the risk flag shows what to do at once; a forgotten outcome is named, the rest kept.
    page.get_by_role("link", name="Log a call").click()
    page.wait_for_url("**/intake/calls/new")
    caller = f"{known['first']} {known['last']}"
    page.get_by_label("Caller's name").fill(caller)
    page.get_by_label("The person seeking care").check()
    page.get_by_label("Phone number to call back").fill("(917) 555-0147")
    page.get_by_label("Referred by").fill("emergency department")
    page.get_by_label("Reason for calling").fill("Wants to start treatment; used fentanyl yesterday.")
    page.get_by_label("Substances used").fill("fentanyl, alcohol")
    steps = page.locator("#risk_flags-suicidal_ideation-steps")
    assert not steps.is_visible()
    page.get_by_label("Thoughts of suicide").focus()
    page.keyboard.press("Space")
    assert steps.is_visible()
    assert "Stay on the line." in steps.inner_text() and "988" in steps.inner_text()
    assert "Tell the clinician on duty" in steps.inner_text()
    session.check_accessibility()
    session.screenshot("intake-new-call")
    page.get_by_role("button", name="Record call").click()
    summary = page.get_by_role("alert")
    assert "Outcome of the call: Choose the outcome of the call." in summary.inner_text()
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    assert page.get_by_label("Caller's name").input_value() == caller
    assert page.get_by_label("Thoughts of suicide").is_checked() and steps.is_visible()
    session.check_accessibility()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the summary's link puts the focus on the question's first answer
    assert page.evaluate("document.activeElement.name") == "outcome"
    legend = page.get_by_text("Outcome of the call", exact=True).bounding_box()
    assert legend and legend["y"] >= 0 and legend["y"] < page.viewport_size["height"]  # with its legend scrolled into view
    for _ in range(4):
        page.keyboard.press("ArrowDown")
    assert page.get_by_label("Asked to be called back").is_checked()
    page.get_by_label("Notes").focus()
    page.keyboard.type("Warm handoff to 988 done; clinician on duty told.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Record call"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/intake/calls/\d+\?logged=1$"))

    # The call: what to do next, in a danger notice, before anything else.
    assert page.get_by_role("heading", level=1).inner_text() == "Intake call"
    assert page.get_by_role("status").inner_text() == "The call was recorded."
    notice = page.locator(".notice--danger")
    assert notice.get_by_role("heading", name="Thoughts of suicide: what to do now").is_visible()
    assert "warm handoff to the 988 Suicide & Crisis Lifeline" in notice.inner_text()
    assert page.title() == "Intake call \u2013 clinic"  # no client's name in the title
    session.check_accessibility()
    session.screenshot("intake-call")

    # Registering the caller finds the client already registered: the same person, linked in one click.
    page.get_by_role("link", name="Register the caller as a client").click()
    assert page.get_by_label("Given name").input_value() == known["first"]
    assert page.get_by_label("Family name").input_value() == known["last"]
    assert page.get_by_label("Phone number").input_value() == "(917) 555-0147"
    page.get_by_label("Date of birth").fill(known["born"].isoformat())
    page.get_by_role("button", name="Register client").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Is the caller already a client?"
    match = page.get_by_role("row").filter(has_text=known["mrn"])
    assert known["last"].upper() in match.inner_text()
    assert known["born"].strftime("%b %-d, %Y") in match.inner_text()
    assert page.get_by_role("button", name="Register as a new client").is_visible()
    session.check_accessibility()
    session.screenshot("intake-duplicates")
    match.get_by_role("button", name=re.compile("^This is the same person")).click()
    page.wait_for_url(re.compile(r".*/intake/calls/\d+\?linked=1$"))
    assert "The call is linked to the client" in page.get_by_role("status").inner_text()
    client_section = page.locator("section", has=page.get_by_role("heading", name="Client"))
    assert known["mrn"] in client_section.inner_text()
    book = page.get_by_role("link", name="Book an assessment")
    assert book.get_attribute("href") == f"/appointments/new?client_id={known['client_id']}&kind=assessment"
    assert page.get_by_role("link", name="Open the client's chart").get_attribute("href") == f"/clients/{known['client_id']}"
    assert page.get_by_role("link", name="Register the caller as a client").count() == 0
    session.check_accessibility()
    session.screenshot("intake-call-linked")

    # The log shows the call first among the newest risk calls, linked.
    page.get_by_role("link", name="Intake", exact=True).click()
    log_row = page.get_by_role("row").filter(has=page.get_by_role("link", name=caller)).first
    assert "Thoughts of suicide" in log_row.inner_text() and "Linked" in log_row.inner_text()


def test_another_sites_coordinator_gets_the_not_found_page(open_session: Any, live_server: LiveServer) -> None:
    email = _coordinator(live_server)
    known = _prepare(live_server, email)
    others = [a for a in live_server.accounts if a.startswith("intake1.") and a != email]
    session = open_session(others[0])
    response = session.go(f"/intake/calls/{known['due_call_id']}")
    assert response.status == 404
    assert session.page.get_by_role("heading", level=1).inner_text() == "Page not found"
    assert known["due_name"] not in session.page.content()
