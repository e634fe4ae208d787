"""An administrator's work in a real browser: a site and a user added, the user's role and sites set, then disabled."""

from __future__ import annotations

import uuid
from typing import Any

from tests.browser.conftest import ADMIN, LiveServer, sign_in

PASSWORD = "marble kettle orchard violin"


def test_an_admin_adds_a_site_and_a_user_changes_the_role_and_disables_the_account(
    open_session: Any, live_server: LiveServer
) -> None:
    tag = uuid.uuid4().hex[:6]
    site_name = f"Northgate Outpatient {tag}"
    user_name = f"Nadia Newhire {tag}"
    email = f"nadia.{tag}@example.org"
    session = open_session(ADMIN)
    page = session.page
    page.on("dialog", lambda dialog: dialog.accept())

    # The administrator's home: users and sites, a page at a time.
    assert page.url.endswith("/admin")
    assert page.get_by_role("heading", level=1).inner_text() == "Administration"
    assert page.get_by_role("link", name="Riverside Recovery Center").is_visible()
    session.check_accessibility()

    # A site, with its zone and a neutral name for the clients' messages.
    page.get_by_role("link", name="Add a site").click()
    assert page.get_by_text("must not reveal the kind of program").is_visible()
    page.get_by_label("Name", exact=True).fill(site_name)
    page.get_by_label("Name clients see").fill(f"Northgate Health {tag}")
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_label("Opioid treatment program (OTP)").check()
    page.get_by_role("button", name="Add site").click()
    page.wait_for_url("**/admin/sites/*?done=created")
    assert page.get_by_role("status").inner_text().startswith("The site has been added.")
    assert page.get_by_label("Time zone").input_value() == "America/Chicago"
    session.check_accessibility()
    session.screenshot("admin-site")

    # A user: a mistake first, shown beside its field with everything else kept.
    page.get_by_role("link", name="Back to administration").click()
    page.get_by_role("link", name="Add a user").click()
    page.get_by_label("Full name").fill(user_name)
    page.get_by_label("Email address").fill("nadia-at-example.org")
    page.get_by_label(site_name).check()
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    summary = page.get_by_role("alert")
    assert "Email address: Not a valid email address." in summary.inner_text()
    assert "Role: Choose a role." in summary.inner_text()
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")  # read out first
    assert page.get_by_label("Full name").input_value() == user_name
    assert page.get_by_label(site_name).is_checked()
    session.check_accessibility()
    session.screenshot("admin-user-form-errors")

    # The summary's link takes the keyboard to the field; the rest is done with the keyboard too.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.press("Control+A")
    page.keyboard.type(email)
    page.keyboard.press("Tab")  # the role radios: one stop, arrows choose
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    assert page.get_by_label("Clinician", exact=True).is_checked()
    page.get_by_label("Riverside Recovery Center").focus()
    page.keyboard.press("Space")
    page.get_by_label("Initial password").focus()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/users/*?done=created")
    assert page.get_by_role("heading", level=1).inner_text() == user_name
    assert "The account has been created." in page.get_by_role("status").inner_text()
    assert page.get_by_role("link", name="Working hours").first.get_attribute("href").endswith("/working-hours")
    sites_shown = page.locator(".summary").inner_text()
    assert site_name in sites_shown and "Riverside Recovery Center" in sites_shown
    session.check_accessibility()
    session.screenshot("admin-user")

    # Role and sites changed: an intake coordinator of the new site only.
    page.get_by_label("Intake coordinator").check()
    page.get_by_label("Riverside Recovery Center").uncheck()
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url("**?done=saved")
    summary_text = page.locator(".summary").inner_text()
    assert "Intake coordinator" in summary_text and "Riverside Recovery Center" not in summary_text

    # The new account works, until it is disabled (asked once, then signed out everywhere).
    theirs = open_session(None)
    sign_in(theirs.page, live_server, email.upper(), PASSWORD)
    assert "/login" not in theirs.page.url
    page.get_by_role("button", name="Disable account").click()
    page.wait_for_url("**?done=disabled")
    assert "The account has been disabled." in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="Enable account").is_visible()
    theirs.go("/account")
    assert "/login" in theirs.page.url
    sign_in(theirs.page, live_server, email, PASSWORD)
    assert "Wrong email or password" in theirs.page.get_by_role("alert").inner_text()

    page.get_by_role("link", name="Back to administration").click()
    row = page.get_by_role("row").filter(has_text=user_name)
    assert "Disabled" in row.inner_text()
    assert page.get_by_role("link", name=site_name).is_visible()
    session.screenshot("admin-home")


def test_an_admin_cannot_take_away_their_own_rights_and_is_told_why(open_session: Any) -> None:
    session = open_session(ADMIN)
    page = session.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row").filter(has_text=ADMIN).get_by_role("link").click()
    page.get_by_role("button", name="Disable account").click()
    alert = page.get_by_role("alert")
    assert "You cannot take away your own administrator rights; another administrator can." in alert.inner_text()
    assert page.get_by_role("button", name="Disable account").is_visible()
    session.check_accessibility()
