"""The dosing window in a real browser, worked with the keyboard only, as at a counter: find a client
on the day's list by MRN (the row found opens), confirm their name and date of birth, record the observed
dose and then a take-home supply on the same row; open another row from its button and record one part of
a split dose; enter yesterday's forgotten dose late; open a client's doses. Each row is swapped in place
(htmx) and says what was recorded; axe finds no serious violation."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import LiveServer

CLINICIAN = "clinician1.riverside"


def _tab_to(page: Any, selector: str, *, most: int = 60) -> None:
    """Press Tab until the element ``selector`` has the focus (as a user does), at most ``most`` times."""
    for _ in range(most):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def _rows(page: Any) -> list[dict[str, Any]]:
    """What each row of the list says: its id, MRN, status, its button (where it opens), the medication."""
    return list(
        page.evaluate("""() => Array.from(document.querySelectorAll('.dosing__table tbody tr')).map(tr => ({
        id: tr.id,
        mrn: (tr.querySelector('td .muted.nowrap') || {}).textContent || '',
        due: !!tr.querySelector('.tag--orange'),
        open: (tr.querySelector('a.button') || {href: ''}).href,
        button: (tr.querySelector('a.button') || {textContent: ''}).textContent.trim(),
        methadone: tr.textContent.includes('Methadone'),
        doses: tr.querySelector('a.dosing__who').getAttribute('href'),
    }))""")
    )


def _offers_take_home(page: Any, row: dict[str, Any]) -> bool:
    """The row, once opened, offers a take-home supply today (the client may take doses home)."""
    return bool(
        page.evaluate("url => fetch(url).then(r => r.text()).then(t => t.includes('value=\"take_home\"'))", row["open"])
    )


def _find(page: Any, mrn: str) -> None:
    """The filter box has the focus on arrival: type the MRN, Enter."""
    page.keyboard.press("Control+a")
    page.keyboard.type(mrn.replace("MRN ", "").strip())
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_a_nurse_doses_the_day_with_the_keyboard(open_session: Any, live_server: LiveServer) -> None:
    session = open_session(live_server.account(CLINICIAN))
    page = session.page
    session.go("/dosing")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dosing window")
    expect(page.locator(".dosing__table form")).to_have_count(0)  # light rows: a button each, no form
    session.check_accessibility()
    rows = _rows(page)
    eligible = next(row for row in rows if row["due"] and _offers_take_home(page, row))
    split = next(row for row in rows if row["due"] and row["methadone"] and row["id"] != eligible["id"])

    # Find by MRN: the one row found opens, its identity check has the focus; Space, Tab to the lot, Enter.
    expect(page.locator("#dosing-q")).to_be_focused()
    _find(page, eligible["mrn"])
    row = page.locator(f"#{eligible['id']}")
    expect(page.locator(".dosing__table tbody tr")).to_have_count(1)
    expect(page.locator(f"#{eligible['id']}-identity")).to_be_focused()
    page.keyboard.press("Space")
    _tab_to(page, f"#{eligible['id']}-lot")
    page.keyboard.press("Enter")
    expect(row).to_contain_text(re.compile(r"Recorded: [\d.]+ mg observed at"))
    expect(row.locator(".dosing__done")).to_be_focused()
    expect(row).to_contain_text("Dosed")
    # Then the take-home supply of the same visit, on the same row.
    _tab_to(page, f"#{eligible['id']}-identity")
    page.keyboard.press("Space")
    _tab_to(page, f"#{eligible['id']}-days")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(row).to_contain_text(re.compile(r"Recorded: Take-home: 2 daily doses of [\d.]+ mg"))
    expect(row.locator("form")).to_have_count(0)  # nothing left to record today

    # From the list: the row's Dose button (reached with Tab) opens the row in place, the identity check focused.
    session.go("/dosing")
    row = page.locator(f"#{split['id']}")
    row.locator("a.button").focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#{split['id']}-identity")).to_be_focused()
    expect(page.locator(".dosing__table tbody tr").first).to_be_visible()
    assert len(_rows(page)) == len(rows)  # the list stays; one row opened
    # Identity not confirmed: the row says so beside the checkbox and nothing is recorded.
    _tab_to(page, f"#{split['id']}-lot")
    page.keyboard.press("Enter")
    expect(row).to_contain_text("Confirm the client's name and date of birth")
    expect(page.locator(f"#{split['id']}-identity")).to_be_focused()

    # One part of a split dose: a smaller amount, the split box ticked.
    ordered = float(page.locator(f"#{split['id']}-amount").input_value())
    part = ordered / 2
    page.keyboard.press("Space")
    _tab_to(page, f"#{split['id']}-amount")
    page.keyboard.press("Control+a")
    page.keyboard.type(f"{part:g}")
    _tab_to(page, f"#{split['id']}-split")
    page.keyboard.press("Space")
    _tab_to(page, f"#{split['id']}-lot")
    page.keyboard.press("Enter")
    expect(row).to_contain_text(re.compile(rf"Part given: {part:g} of {ordered:g} mg"))
    expect(page.locator(f"#{split['id']}-amount")).to_have_value(f"{ordered - part:g}")
    session.check_accessibility()
    session.go("/dosing")
    expect(page.locator(f"#{split['id']}")).to_contain_text("Part given")
    session.screenshot("dosing-window")
    page.get_by_role("link", name="The day's dispensing log (print)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dispensing log")
    log = page.locator(".dosing__log tbody")
    expect(log).to_contain_text("Take-home, 2 days")
    expect(log).to_contain_text("Observed (split)")
    session.check_accessibility()

    # The client's doses: today's entries on top, eligibility and the review form.
    session.go(eligible["doses"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Doses and take-homes")
    expect(page.locator("#history ~ .table-wrap tbody tr").first).to_contain_text("take-home")
    session.check_accessibility()
    session.screenshot("dosing-client", full_page=False)

    # A correction: the newest entry (today's take-home) voided with a reason, after one confirmation.
    first = page.locator("#history ~ .table-wrap tbody tr").first
    first.locator("summary").focus()
    page.keyboard.press("Enter")
    first.get_by_label("Reason it was entered in error").fill("Wrong number of days")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        first.get_by_role("button", name="Mark entered in error").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("marked entered in error")
    expect(page.locator("#history ~ .table-wrap tbody tr").first).to_contain_text(
        "Entered in error: Wrong number of days"
    )


def test_a_dose_given_yesterday_is_entered_late_with_the_keyboard(open_session: Any, live_server: LiveServer) -> None:
    """Yesterday's list: a row with no dose recorded opens as a late entry (the time it was given, why it is
    entered late), recorded with the keyboard; the row then says it was entered late."""
    session = open_session(live_server.account(CLINICIAN))
    page = session.page
    session.go("/dosing")
    today = page.locator("#date").input_value()
    yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
    session.go(f"/dosing?date={yesterday}")
    expect(page.locator(".page-head__meta")).to_contain_text("a past day")
    late = next(row for row in _rows(page) if row["button"].startswith("Enter late") and row["due"])
    row = page.locator(f"#{late['id']}")
    row.locator("a.button").focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#{late['id']}-identity")).to_be_focused()
    expect(row).to_contain_text("Late entry for")
    page.keyboard.press("Space")
    _tab_to(page, f"#{late['id']}-time")
    page.keyboard.type("0830AM")
    expect(page.locator(f"#{late['id']}-time")).to_have_value("08:30")
    _tab_to(page, f"#{late['id']}-reason")
    page.keyboard.type("Given during the outage, on the paper log")
    session.check_accessibility()
    session.screenshot("dosing-late-entry")
    page.keyboard.press("Enter")
    expect(row).to_contain_text(re.compile(r"Recorded: [\d.]+ mg observed at 8:30 AM"))
    expect(row).to_contain_text("Entered late on")
    expect(row).to_contain_text("Given during the outage, on the paper log")
    expect(row.locator(".dosing__done")).to_be_focused()
    session.go(f"/dosing/log?date={yesterday}")
    expect(page.locator(".dosing__log tbody")).to_contain_text("08:30")


def test_the_window_fits_a_tablet(open_session: Any, live_server: LiveServer) -> None:
    """At tablet width the rows stack, each cell under its column's name, and nothing runs off the page."""
    session = open_session(live_server.account(CLINICIAN), viewport=(768, 1024))
    page = session.page
    session.go("/dosing")
    expect(page.locator(".dosing__table tbody tr").first).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    session.check_accessibility()
