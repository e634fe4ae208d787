"""Assessments in a real browser: a clinician scores a COWS and a PHQ-9 with item 9 using the keyboard
alone, sees the server's score preview and the safety steps, signs, and reads the trends."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.auth.models import Site
from clinic.clients.models import Client
from clinic.extensions import db
from clinic.notify.models import StaffNotification
from tests.browser.conftest import LiveServer

RIVERSIDE = "clinician1.riverside"


def _client_with_most_phq9(server: LiveServer) -> int:
    """The Riverside client with the most signed PHQ-9s: the longest trend line."""
    with server.app.app_context():
        row = db.session.execute(
            select(Assessment.client_id, func.count(Assessment.id).label("n"))
            .join(Client, Client.id == Assessment.client_id)
            .join(Site, Site.id == Client.site_id)
            .where(
                Site.name.like("Riverside%"),
                Assessment.instrument == "PHQ-9",
                Assessment.status == AssessmentStatus.SIGNED,
            )
            .group_by(Assessment.client_id)
            .order_by(func.count(Assessment.id).desc(), Assessment.client_id)
            .limit(1)
        ).one()
        return int(row[0])


def _answer_with_keys(page: Any, first: str, choices: list[int]) -> None:
    """From the first question's first answer, Tab from radio group to group and pick each answer with the arrows.

    (The date and time fields before it are left as they are: the time field's own Tab stops are the
    browser's hours, minutes and AM/PM.)
    """
    page.locator(f"#answers-{first}-1").focus()
    for number, index in enumerate(choices):
        if number:
            page.keyboard.press("Tab")
        page.keyboard.press("Space")  # the group's first answer, then down the list
        for _ in range(index):
            page.keyboard.press("ArrowDown")


def _start(page: Any, instrument: str) -> None:
    select = page.get_by_label("Instrument")
    select.focus()
    select.select_option(instrument)  # a select is chosen with the arrows; Playwright sets it as they would
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/assessments/new\?instrument="))


def _sign(page: Any) -> None:
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Sign assessment").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/assessments/\d+\?done=signed$"))


def test_a_clinician_scores_a_cows_and_a_phq9_with_item_9_by_keyboard(
    open_session: Any, live_server: LiveServer
) -> None:
    client_id = _client_with_most_phq9(live_server)
    session = open_session(live_server.account(RIVERSIDE))
    page = session.page
    session.go(f"/clients/{client_id}/assessments")
    assert page.get_by_role("heading", level=1).inner_text() == "Assessments"
    session.check_accessibility()

    # COWS: eleven items answered with Tab and the arrow keys; the server's preview follows.
    _start(page, "COWS")
    _answer_with_keys(page, "pulse", [2, 1, 2, 1, 2, 1, 2, 1, 1, 2, 1])
    preview = page.locator("#score-preview-body")
    preview.get_by_text("19").first.wait_for()
    assert "Total 19 of 48" in " ".join(preview.inner_text().split())
    assert "Moderate" in preview.inner_text()
    session.check_accessibility()
    page.keyboard.press("Tab")  # past the last question: the form's one primary button
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/assessments/\d+\?done=saved$"))
    assert "Saved as a draft" in page.get_by_role("status").inner_text()
    _sign(page)
    assert "Signed" in page.get_by_role("status").inner_text()

    # PHQ-9 with item 9 above 0: the safety steps appear as soon as it is chosen, and after saving.
    session.go(f"/clients/{client_id}/assessments")
    _start(page, "PHQ-9")
    _answer_with_keys(page, "q1", [1, 2, 1, 1, 0, 1, 0, 1, 1])
    steps = preview.get_by_text("Safety: thoughts of death or self-harm")
    steps.wait_for()
    assert "988" in preview.inner_text()
    preview.get_by_text("Total 8").wait_for()
    session.check_accessibility()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    session.screenshot("assessment-form")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/assessments/\d+\?done=saved$"))
    assessment_id = int(re.search(r"/assessments/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    notice = page.locator("#safety-steps")
    assert "The client's clinician has been alerted" in notice.inner_text()
    assert "call or text 988" in notice.inner_text()
    session.check_accessibility()
    _sign(page)
    with live_server.app.app_context():
        alerts = db.session.scalar(
            select(func.count(StaffNotification.id)).where(StaffNotification.resource_id == str(assessment_id))
        )
        assert alerts
        assert db.session.get_one(Assessment, assessment_id).status is AssessmentStatus.SIGNED

    # The trends: the new scores are the last points of PHQ-9's and COWS's lines, in a table too.
    session.go(f"/clients/{client_id}/assessments")
    phq9 = page.get_by_role("region", name=re.compile("^PHQ-9"))
    assert phq9.locator("svg.trend circle").count() >= 2
    assert phq9.get_by_role("table").locator("tbody tr").last.locator("td").nth(1).inner_text() == "8"
    session.check_accessibility()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    session.screenshot("assessment-trend")
