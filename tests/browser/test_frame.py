"""The console's frame in a real browser: signing in and out, the layout, errors, keyboard, headers."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import ADMIN, LiveServer, sign_in


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
    page.get_by_label("Password").fill(__import__("clinic.demo.loader", fromlist=["x"]).DEMO_PASSWORD)
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
