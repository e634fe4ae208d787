"""The console's frame in a real browser: signing in and out, the layout, errors, keyboard, headers."""

from __future__ import annotations

from typing import Any

from clinic.demo.loader import DEMO_PASSWORD
from tests.browser.conftest import ADMIN, LiveServer, create_user, sign_in


def test_wrong_password_says_the_same_whatever_the_cause(open_session: Any, live_server: LiveServer) -> None:
    session = open_session(None)
    page = session.page
    sign_in(page, live_server, ADMIN, password="not-the-password")
    assert "/login" in page.url
    wrong_password = page.get_by_role("alert").inner_text()
    sign_in(page, live_server, "nobody@demo.example.org", password="not-the-password")
    assert page.get_by_role("alert").inner_text() == wrong_password
    assert "Wrong email or password" in wrong_password
    session.screenshot("sign-in-error", full_page=False)


def test_signing_in_returns_to_the_page_asked_for_and_signing_out_clears_it(
    open_session: Any, live_server: LiveServer
) -> None:
    session = open_session(None)
    page = session.page
    session.go("/account")
    assert "/login?next=%2Faccount" in page.url
    session.screenshot("sign-in", full_page=False)
    session.check_accessibility()
    page.get_by_label("Email address").fill(ADMIN)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/account")
    assert page.get_by_role("heading", level=1).inner_text() == "Your account"
    session.check_accessibility()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login?signed_out=1")
    page.go_back()
    # The account page is not shown again from the browser's memory: it asks for a sign-in.
    assert "/login" in page.url


def test_every_console_page_sends_a_strict_content_security_policy(open_session: Any) -> None:
    session = open_session(None)
    response = session.go("/login")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["cache-control"] == "no-store"


def test_a_user_changes_their_password_and_signs_in_with_the_new_one(
    open_session: Any, live_server: LiveServer
) -> None:
    email = "password.changer@demo.example.org"
    create_user(live_server, email=email, role="clinician", site_names=("Lakeview Outpatient Clinic",))
    session = open_session(email)
    page = session.page
    session.go("/account")
    page.get_by_label("Current password").fill(DEMO_PASSWORD)
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password again").fill("short")
    page.get_by_role("button", name="Change password").click()
    # Refused beside the field, with the summary focused so it is read out first.
    summary = page.get_by_role("alert")
    assert "New password" in summary.inner_text()
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    session.screenshot("account-password-error", full_page=False)
    session.check_accessibility()
    new_password = "a brand new passphrase for the clinic"
    page.get_by_label("Current password").fill(DEMO_PASSWORD)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("New password again").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/login?password_changed=1")
    assert "Your password has been changed" in page.get_by_role("status").inner_text()
    sign_in(page, live_server, email, password=DEMO_PASSWORD)
    assert "/login" in page.url  # the old password no longer works
    sign_in(page, live_server, email, password=new_password)
    assert "/login" not in page.url


def test_a_signed_out_page_request_keeps_nothing_from_another_origin(open_session: Any) -> None:
    """The login page loads its stylesheet, script and htmx from clinic itself, and they are cacheable."""
    session = open_session(None)
    session.go("/login")
    assets = [url for url in session.requests if "/assets/" in url]
    assert any("console.css" in url for url in assets)
    assert any("htmx" in url for url in assets)
    assert session.page.evaluate("typeof htmx") == "object"
