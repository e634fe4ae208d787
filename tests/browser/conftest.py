"""Browser tests of the staff console: Debian's chromium driven by Playwright, against a live server.

One server for the whole run, on the demo data (``flask demo seed``'s generator, 60 clients, today's
date), on a throw-away PostgreSQL database when PostgreSQL is configured (CI), else on an SQLite file.
Each test gets a fresh browser context signed in as a demo account; when it ends, the context must
have logged no console error and sent no request to another origin.

No browser is downloaded: the tests use the chromium on the machine (``apt-get install chromium``), or
the one ``CLINIC_CHROMIUM`` names. Without one they are skipped with that advice, and fail when
``CLINIC_REQUIRE_SERVICES=1`` (CI). ``CLINIC_SCREENSHOTS=1`` writes each screen's screenshot to
docs/screenshots/ for docs/console.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import make_server

from clinic.core.unit_of_work import unit_of_work
from clinic.demo.loader import DEMO_PASSWORD, seed
from clinic.extensions import db
from tests.conftest import TempPostgres, make_test_app, postgres_base_url, services_required

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: The demo accounts the tests sign in as (clinic.demo.loader).
ADMIN = "admin@demo.example.org"
DEMO_CLIENTS = 60


def _chromium() -> str | None:
    named = os.environ.get("CLINIC_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _chromium() is not None or services_required():
        return
    skip = pytest.mark.skip(
        reason="no chromium found: install Debian's (apt-get install chromium) or set CLINIC_CHROMIUM to a browser"
    )
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    app: Flask
    url: str
    accounts: dict[str, str] = field(default_factory=dict)

    def account(self, prefix: str) -> str:
        """The email of the demo account that starts with ``prefix`` (e.g. ``clinician1.riverside``)."""
        return next(email for email in self.accounts if email.startswith(prefix))


@contextmanager
def running_server(*, clients: int = DEMO_CLIENTS, **overrides: Any) -> Iterator[LiveServer]:
    """A live server on its own database, seeded with ``clients`` demo clients (settings ``overrides``)."""
    base = postgres_base_url()
    temp = TempPostgres(base) if base else None
    workdir = tempfile.mkdtemp(prefix="clinic-browser-")
    if temp is not None:
        temp.create()
        url = temp.url
    else:
        url = f"sqlite:///{workdir}/console.db"
    port = _free_port()
    app = make_test_app(url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **overrides)
    with app.app_context():
        upgrade()
        with unit_of_work():
            report = seed(clients=clients, seed=1, today=datetime.now(UTC).date(), force=True, progress=None)
        db.session.remove()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{port}", accounts={a[0]: a[1] for a in report.accounts})
    finally:
        server.shutdown()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if temp is not None:
            temp.drop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """The server every browser test shares: the demo data of DEMO_CLIENTS clients, two sites."""
    with running_server() as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        pytest.fail("CLINIC_REQUIRE_SERVICES=1 needs a browser: apt-get install chromium (or set CLINIC_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Session:
    """A signed-in browser page, and what it did: requests, console messages, page errors."""

    page: Any
    server: LiveServer
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        response = self.page.goto(self.server.url + path)
        return response

    def screenshot(self, name: str, *, full_page: bool = True) -> None:
        """docs/screenshots/<name>.png, when CLINIC_SCREENSHOTS=1 (the images docs/console.md shows)."""
        if os.environ.get("CLINIC_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            # caret="initial": hiding the caret leaves style="" on every input, which htmx would then copy
            # onto a swapped-in element of the same id, a change the console's CSP refuses (a console error).
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, caret="initial")

    def check_accessibility(self) -> None:
        """axe-core (from the axe-playwright-python package, injected by the test only): no serious violations."""
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        serious = [
            f"{violation['id']} ({violation['impact']}): {violation['help']} — "
            + "; ".join(node["target"][0] if isinstance(node["target"][0], str) else str(node["target"]) for node in violation["nodes"][:5])
            for violation in results.response["violations"]
            if violation.get("impact") in ("serious", "critical")
        ]
        assert not serious, f"axe-core on {self.page.url}:\n" + "\n".join(serious)


def sign_in(page: Any, server: LiveServer, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.fixture
def open_session(browser: Any, live_server: LiveServer) -> Iterator[Callable[..., Session]]:
    """``open_session(email)``: a new browser context signed in as ``email`` (None: signed out).

    When the test ends, every context it opened must have logged no console error and requested
    nothing from another origin.
    """
    opened: list[tuple[Any, Session]] = []

    def open_(email: str | None, *, viewport: tuple[int, int] = (1280, 900), server: LiveServer | None = None) -> Session:
        server = server or live_server
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="en-US",
                                      timezone_id="America/New_York")
        context.set_default_timeout(10_000)
        page = context.new_page()
        session = Session(page=page, server=server)
        page.on("request", lambda request: session.requests.append(request.url))
        page.on("console", lambda message: session.console_errors.append(message.text) if message.type == "error" else None)
        # A page answered 4xx on purpose (a form refused, the out-of-scope 404) is not a fault; any
        # other resource (a stylesheet, a script, an htmx fragment) that fails is.
        page.on("response", lambda response: session.failed_resources.append(f"{response.status} {response.url}")
                if response.status >= 500
                or (response.status >= 400 and response.request.resource_type not in ("document", "xhr", "fetch"))
                else None)
        page.on("pageerror", lambda error: session.console_errors.append(str(error)))
        opened.append((context, session))
        if email is not None:
            sign_in(page, server, email)
        return session

    yield open_
    problems = []
    for context, session in opened:
        origin = urlsplit(session.server.url).netloc
        foreign = [url for url in session.requests if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != origin]
        if foreign:
            problems.append(f"requests to another origin: {foreign}")
        # Chromium logs every 4xx answer as a console error: the responses are checked instead.
        errors = [text for text in session.console_errors if not text.startswith("Failed to load resource")]
        if errors:
            problems.append(f"console errors: {errors}")
        if session.failed_resources:
            problems.append(f"resources that failed to load: {session.failed_resources}")
        context.close()
    assert not problems, "\n".join(problems)


def create_user(server: LiveServer, *, email: str, role: str = "clinician", site_names: tuple[str, ...] = (),
                password: str = DEMO_PASSWORD) -> int:
    """A user made through the operations in the live server's database; returns its id."""
    from sqlalchemy import select

    from clinic.auth import operations as auth_ops
    from clinic.auth.models import Role, Site

    with server.app.app_context(), unit_of_work():
        site_ids = list(db.session.scalars(select(Site.id).where(Site.name.in_(site_names))))
        name = email.partition("@")[0].replace(".", " ").title()
        user = auth_ops.create_user(email=email, name=name, role=Role(role), site_ids=site_ids, password=password,
                                    audit=False)
        return user.id
