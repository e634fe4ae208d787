"""Medications in a real browser: a clinician starts an order that breaks an overridable safety rule,
overrides it with the keyboard, and schedules a dose change."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from clinic.auth.models import Site
from clinic.clients.models import Client
from clinic.console.dates import long_date
from clinic.core.time import local_today
from clinic.extensions import db
from clinic.plans.models import Medication, Plan, PlanStatus
from tests.browser.conftest import LiveServer

RIVERSIDE = "clinician1.riverside"


def _client_without_medication(server: LiveServer) -> tuple[int, Any]:
    """A Riverside client with an active plan and no order in force: (id, the site's today)."""
    with server.app.app_context():
        site = db.session.scalars(select(Site).where(Site.name.like("Riverside%"))).one()
        today = local_today(site.timezone)
        running = select(Medication.client_id).where(
            Medication.start_on <= today, or_(Medication.end_on.is_(None), Medication.end_on >= today)
        )
        client_id = db.session.scalar(
            select(Client.id)
            .join(Plan, and_(Plan.client_id == Client.id, Plan.status == PlanStatus.ACTIVE))
            .where(Client.site_id == site.id, Client.id.not_in(running))
            .order_by(Client.id)
            .limit(1)
        )
        assert client_id is not None, "the demo has a Riverside client with an active plan and no medication"
        return client_id, today


def test_a_clinician_overrides_a_safety_rule_with_the_keyboard_and_schedules_a_change(
    open_session: Any, live_server: LiveServer
) -> None:
    client_id, today = _client_without_medication(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    session.go(f"/clients/{client_id}/medications")
    assert page.get_by_role("heading", level=1).inner_text() == "Medications"
    page.get_by_role("link", name="Start a medication").click()
    page.wait_for_url(f"**/clients/{client_id}/medications/new")

    # A buprenorphine induction 2 days ahead, with no COWS that day: the rule refuses it, overridably.
    start_on = today + timedelta(days=2)
    page.get_by_label("Buprenorphine", exact=True).check()
    page.get_by_label("Dose", exact=True).fill("2")
    page.get_by_label("Induction").check()
    page.get_by_label("Start date").fill(start_on.isoformat())
    page.get_by_role("button", name="Start medication").click()
    summary = page.get_by_role("alert")
    assert "A buprenorphine induction needs a COWS of 8 or more" in summary.inner_text()
    assert "You may override this rule with a reason." in page.locator("#phase").inner_text()
    assert page.get_by_label("Dose", exact=True).input_value() == "2"
    session.check_accessibility()
    session.screenshot("medications-override")

    # With the keyboard: the error summary has the focus; its link to the reason takes the focus there.
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "#override_reason":
            break
    page.keyboard.press("Enter")
    page.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg="override_reason")
    page.keyboard.type("Low-dose induction while still using fentanyl; not waiting for withdrawal.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Start with override"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/clients/\d+/medications\?done=started.*"))
    status = page.get_by_role("status")
    assert "Medication started." in status.inner_text()
    order = page.locator("section.med-order").filter(has_text="Starts " + long_date(start_on))
    assert (
        "Induction without a COWS of withdrawal: “Low-dose induction while still using fentanyl" in order.inner_text()
    )

    # A change 7 days after the start is scheduled: shown from its day, the dose in force kept.
    order.get_by_role("link", name=re.compile("Change dose, phase or end")).click()
    changes_on = start_on + timedelta(days=7)
    page.get_by_label("Takes effect on").fill(changes_on.isoformat())
    page.get_by_label("Dose", exact=True).fill("8")
    page.get_by_label("Stabilization").check()
    page.get_by_label("Reason for the change").fill("Stable on the low dose")
    session.check_accessibility()
    session.screenshot("medications-change")
    page.get_by_role("button", name="Save change").click()
    page.wait_for_url(re.compile(r".*done=scheduled.*"))
    order = page.locator("section.med-order").filter(has_text="Starts " + long_date(start_on))
    text = order.inner_text()
    assert f"From {long_date(changes_on)}: 8 mg daily, stabilization" in text
    assert f"Scheduled from {long_date(changes_on)}" in text
    assert "Dose from the start\n2 mg, daily" in text

    # The change was mistyped: marked entered in error (asked once), it stays struck through.
    mistyped = order.get_by_role("row").filter(has_text="Stable on the low dose")
    mistyped.get_by_role("link", name=re.compile("Mark entered in error")).click()
    page.get_by_label("Why was it entered in error?").fill("Typed 8 mg for 6 mg")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Mark entered in error").click()
    page.wait_for_url(re.compile(r".*done=error.*"))
    order = page.locator("section.med-order").filter(has_text="Starts " + long_date(start_on))
    row = order.get_by_role("row").filter(has_text="Typed 8 mg for 6 mg")
    assert "Entered in error" in row.inner_text()
    assert row.locator("s").first.is_visible()
    order.get_by_role("link", name=re.compile("Change dose, phase or end")).click()
    page.get_by_label("Takes effect on").fill(changes_on.isoformat())
    page.get_by_label("Dose", exact=True).fill("6")
    page.get_by_label("Stabilization").check()
    page.get_by_role("button", name="Save change").click()
    page.wait_for_url(re.compile(r".*done=scheduled.*"))
    order = page.locator("section.med-order").filter(has_text="Starts " + long_date(start_on))
    assert f"From {long_date(changes_on)}: 6 mg daily, stabilization" in order.inner_text()
    session.check_accessibility()
    session.screenshot("medications")

    # At 200% zoom (640 CSS pixels) the page reflows: each history entry a block, nothing off screen.
    page.set_viewport_size({"width": 640, "height": 900})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the medications page scrolls sideways by {overflow}px at 640px"
    order = page.locator("section.med-order").filter(has_text="Starts " + long_date(start_on))
    order.scroll_into_view_if_needed()
    session.screenshot("medications-at-200-percent-zoom", full_page=False)
