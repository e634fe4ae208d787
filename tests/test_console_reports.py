"""The console's reports: the list, each report's figures and table as the API counts them, the
chart and CSV from the API, runs in the background for long ranges, and who may see what."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.extensions import db
from clinic.reports.labels import format_value
from clinic.reports.registry import all_reports
from tests.conftest import Session

TODAY = datetime.now(UTC).date()


def days(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


@pytest.fixture
def setting(
    make_site: Callable[..., Site], make_user: Callable[..., User], login: Callable[..., Session]
) -> dict[str, Any]:
    site, other = make_site(name="North Clinic"), make_site(name="South Clinic")
    clinician = make_user("clinician", sites=[site], name="Dr. Ito", is_supervisor=True)
    admin = make_user("admin", name="Ada Admin")
    as_clinician = login(clinician)
    for first, level in (("One", "1"), ("Two", "1-OTP"), ("Three", "1")):
        made = as_clinician.post(
            "/api/v1/clients?allow_duplicate=true",
            json={"site_id": site.id, "first_name": first, "last_name": "Zebulon", "date_of_birth": "1980-01-01"},
        )
        assert made.status_code == 201, made.get_json()
        episode = as_clinician.post(
            f"/api/v1/clients/{made.get_json()['id']}/episodes", json={"admitted_on": days(-30), "level_of_care": level}
        )
        assert episode.status_code == 201, episode.get_json()
    return {
        "site": site,
        "other": other,
        "clinician": as_clinician,
        "admin": login(admin),
        "intake": login(make_user("intake", sites=[site])),
    }


def _main(response: Any) -> str:
    html = response.get_data(as_text=True)
    return html[html.index("<main") : html.index("</main>")]


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace("&amp;", "&").replace("&#39;", "'")


def test_the_list_names_every_report_and_what_it_counts(setting):
    response = setting["admin"].get("/reports")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    text = _text(_main(response))
    for report in all_reports():
        assert report.title in text
        assert f'href="/reports/{report.name}"' in _main(response)
    assert setting["intake"].get("/reports").status_code == 403


def test_each_report_shows_the_figures_the_api_counts(setting):
    session = setting["admin"]
    params = {"from": days(-60), "to": days(0), "site_id": setting["site"].id}
    for report in all_reports():
        response = session.get(f"/reports/{report.name}", query_string=params)
        assert response.status_code == 200, (report.name, _text(_main(response))[:400])
        main = _main(response)
        assert "Zebulon" not in main  # aggregates only: no client is named
        api = session.get(f"/api/v1/reports/{report.name}", query_string=params).get_json()
        for key, _label in report.chart.headline:
            if key in api["summary"]:
                expected = format_value(api["summary"][key], report.summary_units.get(key, ""))
                assert f'report-figures__value">{expected}<' in main, (report.name, key, expected)
        # The table: a header row of the API's column labels and one row per API row.
        if api["rows"]:
            for column in api["columns"]:
                assert f">{column['label']}</th>" in main.replace("&#39;", "'"), (report.name, column["label"])
            assert main.count("<tr>") == 1 + len(api["rows"])
        else:
            assert "Nothing to count in this range." in main
        # The chart and the CSV are the API's renderings of the same range, same origin.
        assert re.search(rf'<img src="/api/v1/reports/{report.name}\?[^"]*format=svg"', main)
        assert re.search(rf'href="/api/v1/reports/{report.name}\?[^"]*format=csv"', main)


def test_census_table_and_csv_and_chart_through_the_session(setting):
    session = setting["clinician"]
    response = session.get("/reports/census", query_string={"to": days(0), "site_id": setting["site"].id})
    main = _main(response)
    text = _text(main)
    assert "Clients in treatment 3" in text
    assert "1 Outpatient 2" in text and "1 Opioid treatment program 1" in text
    # No client is named on a report page.
    assert "Zebulon" not in main
    csv_url = re.search(r'href="(/api/v1/reports/census\?[^"]*format=csv)"', main).group(1).replace("&amp;", "&")
    download = session.get(csv_url)
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.get_data(as_text=True).splitlines() == ["level_of_care,clients", "1,2", "1-OTP,1"]
    svg_url = re.search(r'<img src="([^"]*)"', main).group(1).replace("&amp;", "&")
    chart = session.get(svg_url)
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"


def test_the_range_defaults_to_the_last_90_days_and_errors_sit_beside_the_fields(setting):
    session = setting["clinician"]
    main = _main(session.get("/reports/discharges"))
    assert f'name="from" value="{days(-90)}"' in main and f'name="to" value="{days(0)}"' in main
    bad = session.get("/reports/discharges", query_string={"from": days(0), "to": days(-5)})
    assert bad.status_code == 422
    assert "There is a problem" in _main(bad) and 'id="from-error"' in _main(bad)
    typo = session.get("/reports/discharges", query_string={"from": "yesterday"})
    assert typo.status_code == 422 and 'id="from-error"' in _main(typo)
    # Another site, or text in its place, is the page-not-found page; so is an unknown report.
    assert session.get("/reports/census", query_string={"site_id": setting["other"].id}).status_code == 404
    assert session.get("/reports/census", query_string={"site_id": "x"}).status_code == 404
    assert session.get("/reports/no-such-report").status_code == 404


def test_viewing_a_report_is_audited_as_the_api_read(app: Flask, setting):
    with app.app_context():
        since = int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)
    setting["admin"].get("/reports/census", query_string={"to": days(0)})
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.id > since)))
    assert [(e.action, e.resource_id) for e in events if e.action.startswith("report.")] == [("report.read", "census")]


def test_a_long_range_runs_in_the_background_with_its_progress(app: Flask, setting):
    session = setting["admin"]
    params = {"from": days(-800), "to": days(0), "site_id": setting["site"].id}
    page = session.get("/reports/census", query_string=params)
    assert page.status_code == 200
    main = _main(page)
    assert "Run in the background" in main and "<img" not in main
    queued = session.post("/reports/census/runs", data={**params, "csrf_token": session.csrf_token})
    assert queued.status_code == 303
    run_url = queued.headers["Location"]
    run_id = int(run_url.rsplit("/", 1)[1])
    waiting = _main(session.get(run_url))
    assert "Waiting to start" in waiting and 'hx-trigger="every 2s"' in waiting and ">Refresh</a>" in waiting
    from clinic.reports.tasks import run_report

    with app.app_context():
        assert run_report.apply(args=[run_id]).get() == "done"
    fragment = session.get(run_url + "?fragment=status", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert "<main" not in html and "hx-trigger" not in html and "Ready" in html
    assert f'href="/api/v1/report-runs/{run_id}/download?format=csv"' in html
    assert "Clients in treatment" in _text(html)
    download = session.get(f"/api/v1/report-runs/{run_id}/download?format=csv")
    assert download.get_data(as_text=True).splitlines()[0] == "level_of_care,clients"
    # The run is listed under the report; someone else's run is not found.
    assert f"/reports/census/runs/{run_id}" in _main(session.get("/reports/census"))
    assert setting["clinician"].get(run_url).status_code == 404


def test_a_run_with_a_bad_range_goes_back_to_the_form(setting):
    session = setting["admin"]
    refused = session.post(
        "/reports/census/runs", data={"from": days(0), "to": days(-3), "csrf_token": session.csrf_token}
    )
    assert refused.status_code == 303 and refused.headers["Location"].startswith("/reports/census?")
    assert session.get(refused.headers["Location"]).status_code == 422
