"""An administrator's reports and audit trail in a real browser, with the keyboard: three reports
run over their ranges, a CSV downloaded, the audit trail filtered by user and action, then by a
client's MRN, which no address the browser sends or keeps ever holds."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from clinic.auth.models import User
from clinic.clients.models import Client
from clinic.extensions import db
from tests.browser.conftest import ADMIN, LiveServer


def _chart_drawn(page: Any) -> bool:
    """The chart's <img> (the API's SVG) has loaded and has a size."""
    page.wait_for_function(
        "() => { const img = document.querySelector('.report-chart img'); "
        "return img !== null && img.complete && img.naturalWidth > 0; }"
    )
    return True


def test_an_admin_runs_three_reports_downloads_a_csv_and_filters_the_audit_trail(
    open_session: Any, live_server: LiveServer
) -> None:
    session = open_session(ADMIN)
    page = session.page
    today = datetime.now(UTC).date()

    # The reports: each named in words with what it counts.
    page.get_by_role("navigation").get_by_role("link", name="Reports").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports")
    assert page.get_by_role("heading", level=1).inner_text() == "Reports"
    assert page.get_by_role("link", name="Census").is_visible()
    session.check_accessibility()
    session.screenshot("reports")

    # 1. The census at Riverside: the figures, the chart (the API's SVG) and the table.
    page.get_by_role("link", name="Census").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports/census")
    page.get_by_label("Site (optional)").focus()
    page.get_by_label("Site (optional)").select_option(label="Riverside Recovery Center")
    page.keyboard.press("Tab")  # to "Show report"
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports/census?*site_id=*")
    page.wait_for_load_state("load")
    assert "Clients in treatment" in page.locator(".report-figures").inner_text()
    assert page.locator("table.report-table thead th").first.inner_text() == "ASAM level of care"
    assert _chart_drawn(page)
    session.check_accessibility()

    # The CSV, downloaded with the keyboard: a header row, then the table's rows.
    page.get_by_role("link", name="Download CSV").focus()
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    download = info.value
    assert download.suggested_filename.startswith("census_")
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.reader(io.StringIO(handle.read())))
    assert rows[0] == ["level_of_care", "clients"]
    assert len(rows) - 1 == page.locator("table.report-table tbody tr").count()

    # 2. Discharges over the last 180 days, every site.
    session.go("/reports")
    page.get_by_role("link", name="Discharges").click()
    page.wait_for_url("**/reports/discharges")
    page.get_by_label("From", exact=True).fill((today - timedelta(days=180)).isoformat())
    page.get_by_role("button", name="Show report").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports/discharges?*")
    page.wait_for_load_state("load")
    assert page.get_by_role("heading", level=2).first.inner_text().startswith("Discharges")
    assert _chart_drawn(page)
    session.check_accessibility()

    # 3. Drug screens over the default range (the last 90 days): the page with a full table.
    session.go("/reports")
    page.get_by_role("link", name="Drug screen positivity").click()
    page.wait_for_url("**/reports/drug-screens")
    page.get_by_role("button", name="Show report").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports/drug-screens?*")
    assert page.locator(".report-figures").inner_text()
    assert _chart_drawn(page)
    session.check_accessibility()
    session.screenshot("report")

    # A range too long to count while waiting is offered as a run in the background.
    page.get_by_label("From", exact=True).fill((today - timedelta(days=700)).isoformat())
    page.get_by_role("button", name="Show report").click()
    page.get_by_role("button", name="Run in the background").wait_for()
    page.get_by_role("button", name="Run in the background").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports/drug-screens/runs/*")
    assert "Waiting to start" in page.get_by_role("status").inner_text()
    # The worker computes it; the page, polling every 2 seconds, shows the result when it is ready.
    with page.expect_request(lambda request: "fragment=status" in request.url):
        pass
    run_id = int(page.url.rsplit("/", 1)[1])
    # The worker's task, on the live server's own application (its database), whatever app ran last.
    celery = live_server.app.extensions["celery"]
    celery.loader.import_default_modules()
    assert celery.tasks["clinic.reports.tasks.run_report"].apply(args=[run_id]).get() == "done"
    page.get_by_role("link", name="Download CSV").wait_for()
    assert "Ready" in page.get_by_role("status").inner_text()
    _chart_drawn(page)
    session.check_accessibility()

    # The audit trail: filtered by a user, by name, and an action; the chain's panel beside it.
    page.get_by_role("navigation").get_by_role("link", name="Audit").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit")
    assert page.get_by_role("heading", level=2, name="The chain").is_visible()
    # The sealer (the worker's job) chains the entries; the administrator verifies the chain.
    from clinic.audit.operations import seal_pending

    with live_server.app.app_context():
        seal_pending()
    page.get_by_role("button", name="Verify the chain now").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit?verified=intact")
    assert "every entry is intact" in page.get_by_role("status").first.inner_text()
    assert "Intact" in page.locator(".audit-chain").inner_text()
    # The administrator looks for their own reading of reports: the user chosen by name.
    chosen = page.get_by_label("User (optional)").evaluate(
        "select => [...select.options].map(option => option.text).find(text => text.endsWith('(admin)'))"
    )
    page.get_by_label("User (optional)").focus()
    page.get_by_label("User (optional)").select_option(label=chosen)
    page.get_by_label("Action (optional)").focus()
    page.keyboard.type("report.read")
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit?*action=report.read*")
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() >= 1
    who = chosen.rsplit(" (", 1)[0]
    for index in range(rows.count()):
        text = rows.nth(index).inner_text()
        assert who in text and "report.read" in text
    session.check_accessibility()
    session.screenshot("audit")

    # A client by MRN: a clinician reads the client's chart, the administrator types the MRN. The
    # form is posted and answered by the list's address with the client's id: the MRN is in no URL.
    clinician_email = live_server.account("clinician1.riverside")
    with live_server.app.app_context():
        sites = db.session.scalars(select(User).where(User.email == clinician_email)).one().sites
        client_id, mrn = db.session.execute(
            select(Client.id, Client.mrn).where(Client.site_id.in_([site.id for site in sites])).limit(1)
        ).one()
    clinician = open_session(clinician_email).page
    clinician.goto(f"{live_server.url}/clients/{client_id}")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    page.get_by_role("link", name="Clear the filters").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit")
    page.get_by_label("Client (optional)").focus()
    page.keyboard.type(mrn)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/audit?client_id={client_id}")
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() >= 1
    for index in range(rows.count()):
        assert str(client_id) in rows.nth(index).inner_text()
    assert page.get_by_label("Client (optional)").input_value() == str(client_id)
    assert sent and all(mrn not in url for url in sent), sent
    assert mrn not in page.url
