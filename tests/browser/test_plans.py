"""Treatment plans in a real browser: a clinician writes a plan with MAT, CBT, contingency management
and peer support from the keyboard, loses an edit race and keeps their text, then signs it."""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import func, select

from clinic.auth.models import Site, User
from clinic.clients.models import Client
from clinic.core.unit_of_work import unit_of_work
from clinic.extensions import db
from clinic.plans import operations as plan_ops
from clinic.plans.models import Plan
from tests.browser.conftest import LiveServer

RIVERSIDE = "clinician1.riverside"
TREE = "#problems-0-goals-0-objectives-0-interventions-"


def _riverside_client(live_server: LiveServer) -> int:
    with live_server.app.app_context():
        riverside = db.session.scalars(select(Site).where(Site.name == "Riverside Recovery Center")).one()
        found = db.session.scalar(select(func.max(Client.id)).where(Client.site_id == riverside.id))
        assert found is not None
        return int(found)


def _press(page: Any, name: str) -> None:
    """Reach a button with the keyboard and press Enter (the form comes back with one more row)."""
    page.get_by_role("button", name=name, exact=True).last.focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()


def _someone_else_edits(live_server: LiveServer, plan_id: int) -> None:
    """A colleague saves the plan first: a peer support intervention, through the same operation."""
    with live_server.app.app_context(), unit_of_work():
        plan = db.session.get_one(Plan, plan_id)
        colleague = db.session.scalars(
            select(User).where(User.email.startswith("clinician2.riverside"))
        ).first() or db.session.get_one(User, plan.created_by_id)
        problems = copy.deepcopy(plan.content)
        objective = problems[0]["goals"][0]["objectives"][0]
        objective["interventions"] = [
            *objective["interventions"],
            {"kind": "peer_support", "description": "Weekly peer recovery coach"},
        ]
        plan_ops.update_plan(plan, {"problems": problems}, actor=colleague, if_match=plan_ops.etag(plan))


def test_a_clinician_writes_loses_a_race_keeps_their_text_and_signs(open_session: Any, live_server: LiveServer) -> None:
    client_id = _riverside_client(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page

    session.go(f"/clients/{client_id}/plans")
    assert page.get_by_role("heading", level=1).inner_text() == "Treatment plans"
    page.get_by_label("An empty plan").check()
    _press(page, "Write a new plan")
    page.wait_for_url(re.compile(r".*/plans/\d+/edit$"))
    plan_id = int(page.url.rsplit("/", 2)[1])

    # Build the tree row by row; each "Add" keeps what was typed.
    _press(page, "Add problem")
    page.locator("#problems-0-description").fill("Opioid use disorder, severe")
    _press(page, "Add goal")
    page.locator("#problems-0-goals-0-description").fill("Stop using fentanyl")
    page.locator("#problems-0-goals-0-client_words").fill("I want to be there for my kids")
    _press(page, "Add objective")
    page.locator("#problems-0-goals-0-objectives-0-description").fill("Attend dosing six days a week")
    kinds = [
        ("mat", "Methadone maintenance, daily dosing"),
        ("cbt", "Relapse prevention sessions"),
        ("contingency_management", "Vouchers for negative fentanyl screens"),
    ]
    for index, (kind, words) in enumerate(kinds):
        _press(page, "Add intervention")
        page.locator(f"{TREE}{index}-kind").select_option(kind)
        page.locator(f"{TREE}{index}-description").fill(words)
    assert page.locator("#problems-0-description").input_value() == "Opioid use disorder, severe"
    session.check_accessibility()
    _press(page, "Save plan")
    page.wait_for_url(f"**/plans/{plan_id}?done=saved")
    tree = page.locator(".plan-tree")
    for label in ("MAT", "CBT", "Contingency management"):
        assert tree.locator(".tag", has_text=label).count() == 1, label
    assert "“I want to be there for my kids”" in tree.inner_text()

    # An edit race: a colleague saves while the clinician is typing.
    page.get_by_role("link", name="Edit plan").click()
    page.wait_for_url(f"**/plans/{plan_id}/edit")
    page.locator("#problems-0-goals-0-client_words").fill("I want my kids to be proud of me")
    _someone_else_edits(live_server, plan_id)
    _press(page, "Save plan")
    alert = page.get_by_role("alert")
    assert "Someone else saved this plan" in alert.inner_text()
    theirs = page.get_by_role("region", name="Their saved version")
    assert "Weekly peer recovery coach" in theirs.inner_text()
    assert page.locator("#problems-0-goals-0-client_words").input_value() == "I want my kids to be proud of me"
    session.check_accessibility()
    session.screenshot("plan-conflict")

    # Carry their peer support over with one button (the typed text stays), then save again.
    theirs.get_by_role("button", name=re.compile("^Add theirs to yours")).focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.locator(f"{TREE}3-description").input_value() == "Weekly peer recovery coach"
    assert page.locator("#problems-0-goals-0-client_words").input_value() == "I want my kids to be proud of me"
    page.locator(f"{TREE}0-frequency").press("Enter")  # Enter in a field saves
    page.wait_for_load_state()
    page.wait_for_url(f"**/plans/{plan_id}?done=saved")
    assert page.locator(".plan-tree .tag", has_text="Peer support").count() == 1
    assert "I want my kids to be proud of me" in page.locator(".plan-tree").inner_text()

    # Sign: clinician, then the client in person with the attestation (each asks once).
    page.on("dialog", lambda dialog: dialog.accept())
    _press(page, "Sign as clinician")
    page.wait_for_url(f"**/plans/{plan_id}?done=signed-clinician#signatures")
    page.get_by_label("Name the client signed with").fill("Client in person")
    page.get_by_label(re.compile("signed it in person in front of me")).check()
    _press(page, "Record the client's signature")
    page.wait_for_url(f"**/plans/{plan_id}?done=signed-client#signatures")
    assert "Client (in person): Client in person" in page.locator("#signatures + ul").inner_text()
    session.check_accessibility()
    session.screenshot("plan")

    # The client's plans: this one active, version 4, signed by both.
    page.get_by_role("link", name="All plans of this client").click()
    row = page.get_by_role("row").filter(has_text=f"Plan {plan_id}")
    assert "Active" in row.inner_text() and "Client: yes" in row.inner_text()
    session.check_accessibility()
    session.screenshot("plan-list", full_page=False)
    row.get_by_role("link", name=f"Plan {plan_id}").click()

    # The revisions and what changed.
    page.get_by_role("link", name="Revisions and changes").click()
    page.get_by_role("link", name="Changes from version 3").click()
    assert "client words" in page.locator(".plan-diff").inner_text()
    assert "I want my kids to be proud of me" in page.locator(".plan-diff").inner_text()
    session.check_accessibility()
    session.screenshot("plan-revisions", full_page=False)
