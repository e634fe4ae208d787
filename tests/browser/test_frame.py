"""The console's frame in a real browser: signing in and out, the layout, errors, keyboard, headers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from clinic.demo.loader import DEMO_PASSWORD
from tests.browser.conftest import ADMIN, LiveServer, create_user, running_server, sign_in


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


IDLE_SECONDS = 8


@pytest.fixture(scope="module")
def short_idle_server() -> Iterator[LiveServer]:
    """A server of its own whose sessions end after IDLE_SECONDS without a request."""
    with running_server(clients=4, SESSION_IDLE_TIMEOUT=timedelta(seconds=IDLE_SECONDS)) as server:
        yield server


def test_the_idle_sign_out_warns_first_and_keeps_what_was_typed(open_session: Any, short_idle_server: LiveServer) -> None:
    email = "idle.intake@demo.example.org"
    create_user(short_idle_server, email=email, role="intake", site_names=("Riverside Recovery Center",))
    session = open_session(None, server=short_idle_server)
    page = session.page
    sign_in(page, short_idle_server, email)
    page.goto(short_idle_server.url + "/intake/calls/new")
    page.get_by_label("Caller's name").fill("Jordan Example")
    page.get_by_label("Reason for calling").fill("Wants to start treatment")
    warning = page.get_by_role("alertdialog")
    warning.wait_for(state="visible", timeout=IDLE_SECONDS * 1000)
    assert "You will be signed out soon" in warning.inner_text()
    assert page.evaluate("document.activeElement.id") == "idle-stay"
    session.screenshot("idle-warning", full_page=False)
    # No answer: signed out, on the sign-in page, which says why.
    page.wait_for_url("**/login?idle=1**", timeout=IDLE_SECONDS * 2000)
    assert "without activity" in page.get_by_role("status").inner_text()
    # The session really ended on the server: the form is not reachable without signing in.
    assert page.request.get(short_idle_server.url + "/intake/calls/new", max_redirects=0).status == 303
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/intake/calls/new")
    assert page.get_by_label("Caller's name").input_value() == "Jordan Example"
    assert page.get_by_label("Reason for calling").input_value() == "Wants to start treatment"
    assert "put back" in page.get_by_role("status").first.inner_text()


def test_stay_signed_in_keeps_the_session(open_session: Any, short_idle_server: LiveServer) -> None:
    email = "idle.stayer@demo.example.org"
    create_user(short_idle_server, email=email, role="intake", site_names=("Riverside Recovery Center",))
    session = open_session(None, server=short_idle_server)
    page = session.page
    sign_in(page, short_idle_server, email)
    page.goto(short_idle_server.url + "/account")
    warning = page.get_by_role("alertdialog")
    warning.wait_for(state="visible", timeout=IDLE_SECONDS * 1000)
    page.keyboard.press("Enter")  # "Stay signed in" has the focus
    warning.wait_for(state="hidden")
    assert page.url.endswith("/account")


def _client_of(server: LiveServer, site_name: str) -> int:
    from sqlalchemy import select

    from clinic.auth.models import Site
    from clinic.clients.models import Client
    from clinic.extensions import db

    with server.app.app_context():
        return int(db.session.scalars(
            select(Client.id).join(Site, Site.id == Client.site_id).where(Site.name == site_name).order_by(Client.id)
        ).first() or 0)


@pytest.mark.parametrize("width", [640, 768], ids=["200-percent-zoom", "tablet"])
def test_pages_reflow_at_200_percent_zoom_and_on_a_tablet(open_session: Any, live_server: LiveServer, width: int) -> None:
    """At 640 CSS pixels (a 1280-pixel screen at 200%) and a tablet's 768, no page scrolls sideways:
    wide tables and the week grid scroll inside their own box, the rest reflows."""
    client_id = _client_of(live_server, "Riverside Recovery Center")
    pages = {
        "intake1.riverside": ["/intake", "/intake/calls/new", "/clients?q=a", f"/appointments/new?client_id={client_id}"],
        "clinician1.riverside": ["/today", f"/clients/{client_id}", "/schedule?view=week&clinician_id=", "/schedule", "/alerts"],
        "admin@": ["/admin", "/admin/users/new"],
    }
    for prefix, paths in pages.items():
        session = open_session(live_server.account(prefix), viewport=(width, 900))
        for path in paths:
            response = session.go(path)
            assert response.status == 200, path
            overflow = session.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at {width}px"
        if width == 640 and prefix.startswith("clinician"):
            session.go(f"/clients/{client_id}")
            session.screenshot("chart-at-200-percent-zoom", full_page=False)
