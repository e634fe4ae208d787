"""Clients in a real browser: the top bar's search (typing, and the keyboard alone), registering,
the chart, admitting and discharging, consents, and another site's clinician kept out."""

from __future__ import annotations

import random
import re
import string
from typing import Any

from sqlalchemy import func, select

from clinic.auth.models import Site
from clinic.clients.models import Client, Episode
from clinic.extensions import db
from clinic.intake.models import IntakeCall
from clinic.plans.models import Medication, Plan, PlanStatus
from tests.browser.conftest import LiveServer

RIVERSIDE = "clinician1.riverside"
LAKEVIEW = "clinician1.lakeview"


def _family_name() -> str:
    """A family name no other test (and no demo client) has."""
    return "Quill" + "".join(random.choices(string.ascii_lowercase, k=6))  # noqa: S311 - not a secret


def test_register_then_find_the_client_by_typing_in_the_top_bar(open_session: Any, live_server: LiveServer) -> None:
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    family = _family_name()

    # The register form: a mistake first, shown beside its field with what was typed kept.
    session.go("/clients")
    page.get_by_role("link", name="Register a client").click()
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Date of birth").fill("1984-09-17")
    page.get_by_role("button", name="Register client").click()
    assert "Given name: " in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Family name").input_value() == family
    session.check_accessibility()
    session.screenshot("clients-register-errors")
    page.get_by_label("Given name").fill("Rosalind")
    page.get_by_label("Female", exact=True).check()
    page.get_by_role("button", name="Register client").click()
    page.wait_for_url(re.compile(r".*/clients/\d+\?registered=1$"))
    chart_path = "/" + page.url.split("?")[0].split("/", 3)[3]
    assert page.get_by_role("status").inner_text().startswith("Client registered with MRN")

    # From any page, typing in the top bar finds the client as you type.
    session.go("/clients")
    search = page.get_by_role("searchbox", name="Find a client")
    search.click()
    search.press_sequentially(family[:8].lower(), delay=40)
    match = page.locator("#client-search-results a", has_text=family.upper())
    match.wait_for()
    assert "Sep 17, 1984" in match.inner_text() and "MRN" in match.inner_text()
    session.check_accessibility()
    session.screenshot("clients-search-as-you-type", full_page=False)
    match.click()
    page.wait_for_url(f"**{chart_path}")
    assert page.get_by_role("heading", level=1).inner_text() == "Chart"
    assert page.title().startswith("Client chart ")  # no name in the title

    # Enter in the box opens the full results.
    search = page.get_by_role("searchbox", name="Find a client")
    search.fill(family)
    search.press("Enter")
    page.wait_for_url("**/clients?q=*")
    row = page.get_by_role("row").filter(has_text=family.upper())
    assert "Sep 17, 1984" in row.inner_text()
    assert "Prospective" in row.inner_text()
    session.check_accessibility()


def test_the_keyboard_alone_finds_and_opens_a_client(open_session: Any, live_server: LiveServer) -> None:
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    family = _family_name()
    session.go("/clients/new")
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Given name").fill("Theo")
    page.get_by_label("Date of birth").fill("1991-01-30")
    page.get_by_label("Date of birth").press("Enter")  # Enter submits
    page.wait_for_url(re.compile(r".*/clients/\d+\?registered=1$"))
    chart_path = "/" + page.url.split("?")[0].split("/", 3)[3]

    session.go("/clients")
    page.locator("body").press("/")  # "/" focuses the client search
    assert page.evaluate("document.activeElement.id") == "client-search"
    page.keyboard.type(family.lower(), delay=30)
    page.locator("#client-search-results a").first.wait_for()
    box, results = (page.locator(name).bounding_box() for name in ("#client-search", "#client-search-results"))
    assert box and results  # the results open under the box, as wide as it (not under its label)
    assert abs(results["x"] - box["x"]) <= 1 and abs(results["width"] - box["width"]) <= 1
    assert results["y"] >= box["y"] + box["height"] - 1
    page.keyboard.press("Escape")  # Escape closes them, the focus stays in the box with what was typed
    assert page.locator("#client-search-results a").count() == 0
    assert page.evaluate("document.activeElement.id") == "client-search"
    assert page.locator("#client-search").input_value() == family.lower()
    page.keyboard.press("ArrowDown")  # Down opens them again
    page.locator("#client-search-results a").first.wait_for()
    page.keyboard.press("Tab")  # Tab goes into the results; leaving the search closes them
    assert page.evaluate("document.getElementById('client-search-results').contains(document.activeElement)")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.locator("#client-search-results a").count() == 0
    page.locator("body").press("/")  # back in the box, what it held selected: typing replaces it
    page.keyboard.type(family.lower()[:-1], delay=30)
    page.locator("#client-search-results a").first.wait_for()
    page.keyboard.press("ArrowDown")
    assert family.upper() in page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{chart_path}")
    assert family.upper() in page.locator(".banner__name").inner_text()


def test_a_clinician_admits_and_discharges_a_client(open_session: Any, live_server: LiveServer) -> None:
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    family = _family_name()
    session.go("/clients/new")
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Given name").fill("Ines")
    page.get_by_label("Date of birth").fill("1979-05-05")
    page.get_by_role("button", name="Register client").click()
    page.wait_for_url(re.compile(r".*/clients/\d+\?registered=1$"))

    page.get_by_role("navigation", name="Client pages").get_by_role("link", name="Episodes").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Episodes of care"
    page.get_by_label("Level of care").select_option("1-OTP")
    page.get_by_label("Referred by").fill("emergency department")
    page.get_by_role("button", name="Admit client").click()
    assert "The client is now active" in page.get_by_role("status").inner_text()
    banner = page.locator(".banner").inner_text()
    assert "level of care 1-OTP" in banner
    session.check_accessibility()
    session.screenshot("clients-episodes")

    # The discharge asks once, saying what will happen; the TEDS reasons are radios.
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("group", name="Reason for discharge").get_by_label("Transferred").check()
    page.get_by_role("button", name="Discharge client").click()
    page.wait_for_url("**/episodes?done=discharged")
    assert len(asked) == 1 and "cannot be undone" in asked[0]
    assert "Discharged." in page.get_by_role("status").inner_text()
    assert "Transferred" in page.get_by_role("table").inner_text()
    assert "None open (discharged)" in page.locator(".banner").inner_text()
    session.check_accessibility()


def test_consents_are_recorded_listed_and_revoked(open_session: Any, live_server: LiveServer) -> None:
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    page.on("dialog", lambda dialog: dialog.accept())
    family = _family_name()
    session.go("/clients/new")
    page.get_by_label("Family name").fill(family)
    page.get_by_label("Given name").fill("Amara")
    page.get_by_label("Date of birth").fill("1996-12-01")
    page.get_by_role("button", name="Register client").click()
    page.wait_for_url(re.compile(r".*/clients/\d+\?registered=1$"))
    page.get_by_role("navigation", name="Client pages").get_by_role("link", name="Consents & disclosures").click()

    page.get_by_role("link", name="Record a contact consent").click()
    page.get_by_label("Text messages (SMS)").check()
    page.get_by_label("How consent was given").fill("Signed form scanned to the chart")
    page.get_by_role("button", name="Record contact consent").click()
    assert page.get_by_role("status").inner_text() == "Consent recorded."

    page.get_by_role("link", name="Record a disclosure consent").click()
    page.get_by_label("Recipient").fill("Dr. Lee, Harbor Primary Care")
    page.get_by_label("Purpose of the disclosure").fill("Coordination of care")
    page.get_by_label("Information that may be disclosed").fill("Medications and doses")
    page.get_by_label("Expiry event").fill("End of treatment")
    session.check_accessibility()
    session.screenshot("clients-consent-form")
    page.get_by_role("button", name="Record disclosure consent").click()
    assert "Right to revoke: " in page.get_by_role("alert").inner_text()
    page.get_by_label("The client was told they can revoke this consent").check()
    page.get_by_role("button", name="Record disclosure consent").click()
    assert page.get_by_role("status").inner_text() == "Consent recorded."
    table = page.get_by_role("table", name="Consents")
    assert "Disclosure to Dr. Lee, Harbor Primary Care" in table.inner_text()
    assert page.get_by_role("heading", name="Accounting of disclosures").is_visible()
    session.check_accessibility()
    session.screenshot("clients-consents")

    sms = page.get_by_role("row").filter(has_text="Contact by text message")
    sms.get_by_role("button", name="Revoke").click()
    page.wait_for_url("**/consents?done=revoked")
    assert "Revoked" in page.get_by_role("row").filter(has_text="Contact by text message").inner_text()


def _busy_client(live_server: LiveServer) -> int:
    """A Riverside demo client with an open episode, an active plan, a medication in force, and a risk
    flag from an intake call when one has all of these."""
    with live_server.app.app_context():
        riverside = db.session.scalars(select(Site).where(Site.name == "Riverside Recovery Center")).one()
        with_medication = select(Medication.client_id).where(Medication.end_on.is_(None))
        with_plan = select(Plan.client_id).where(Plan.status == PlanStatus.ACTIVE)
        open_episode = select(Episode.client_id).where(Episode.discharged_on.is_(None))
        in_care = select(Client.id).where(
            Client.site_id == riverside.id, Client.id.in_(with_medication), Client.id.in_(with_plan),
            Client.id.in_(open_episode),
        )
        flagged_calls = db.session.scalars(
            select(IntakeCall).where(IntakeCall.has_risk_flags.is_(True), IntakeCall.client_id.in_(in_care))
            .order_by(IntakeCall.client_id)
        )
        found = next((call.client_id for call in flagged_calls if set(call.risk_flags) - {"pregnant"}), None)
        found = found or db.session.scalar(in_care.order_by(Client.id))
        found = found or db.session.scalar(select(func.min(Client.id)).where(Client.site_id == riverside.id))
        assert found is not None
        return int(found)


def test_the_chart_of_a_demo_client_and_another_sites_clinician_kept_out(
    open_session: Any, live_server: LiveServer
) -> None:
    client_id = _busy_client(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    session.go("/clients")
    assert page.get_by_role("heading", level=1).inner_text() == "Clients"
    assert page.get_by_role("link", name="Next").is_visible()
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/clients?*status=active*")
    assert page.get_by_role("row").nth(1).get_by_text("Active", exact=True).is_visible()
    session.check_accessibility()
    session.screenshot("clients-search")

    session.go(f"/clients/{client_id}")
    banner = page.locator(".banner")
    for label in ("Born", "MRN", "Site", "Episode"):
        assert banner.get_by_text(label, exact=True).is_visible()
    assert "Riverside Recovery Center" in banner.inner_text()
    assert page.get_by_role("heading", name="Care").is_visible()
    assert page.get_by_role("heading", name="Timeline").is_visible()
    session.check_accessibility()
    session.screenshot("clients-chart")

    older = page.get_by_role("link", name="Older entries")
    if older.count():
        before = page.locator(".timeline__item").count()
        older.focus()
        page.keyboard.press("Enter")
        page.locator(".timeline__item").nth(before).wait_for()  # the next entries, under the first
        # The link is gone: the keyboard carries on from the first of the entries it brought.
        page.wait_for_function(
            "n => document.activeElement === document.querySelectorAll('.timeline__item')[n]", arg=before
        )
        assert page.url.endswith(f"/clients/{client_id}")  # the same page, not a new one

    # A clinician of another site: the same "page not found" as for a client that does not exist.
    elsewhere = open_session(live_server.account(LAKEVIEW))
    response = elsewhere.go(f"/clients/{client_id}")
    assert response.status == 404
    assert elsewhere.page.get_by_role("heading", level=1).inner_text() == "Page not found"
    assert "Riverside" not in elsewhere.page.locator("main").inner_text()
    elsewhere.check_accessibility()
