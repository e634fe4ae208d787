"""Report charts as a program administrator reads them: names instead of codes, the rate each report
is about, every zero visible, and no label on top of another."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from clinic.reports.charts import chart_figure, text_overlaps
from clinic.reports.labels import display_name, format_value
from clinic.reports.registry import Report, all_reports, get_report
from clinic.reports.render import svg_chart

#: snake_case codes such as buprenorphine_naloxone or cancelled_by_clinic.
CODE = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")


def svg_texts(svg: str) -> list[str]:
    """Every line of text drawn in the SVG (matplotlib writes each before its glyphs, as a comment)."""
    return [html.unescape(found.strip()) for found in re.findall(r"<!--(.*?)-->", svg, re.S)]


def report(name: str) -> Report:
    found = get_report(name)
    assert found is not None
    return found


def document(name: str, rows: list[dict[str, Any]], summary: dict[str, Any], **params: Any) -> dict[str, Any]:
    found = report(name)
    return {
        "name": name,
        "title": found.title,
        "params": {"from": "2025-11-01", "to": "2026-11-30", "site_id": None, **params},
        "generated_at": datetime.now(UTC).isoformat(),
        "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in found.columns],
        "rows": rows,
        "summary": summary,
    }


def drug_screen_rows() -> list[dict[str, Any]]:
    """13 months x 5 substances, minus a few months without screens: 60 rows (the old chart: 60 bars)."""
    months = [f"{2025 + (10 + i) // 12}-{(10 + i) % 12 + 1:02d}" for i in range(13)]
    rows = []
    for s, substance in enumerate(("buprenorphine", "cocaine", "fentanyl", "methamphetamine", "opiates")):
        for m, month in enumerate(months):
            if (s + m) % 13 == 5:
                continue  # no screens for it that month: a gap, not a zero
            screens = 3 if m == 0 else 60
            positives = 0 if substance == "cocaine" and m % 4 == 0 else (s * 7 + m) % screens
            rows.append(
                {
                    "month": month,
                    "substance": substance,
                    "screens": screens,
                    "positives": positives,
                    "positivity_rate": round(positives / screens, 4),
                }
            )
    return rows


def test_display_names_and_numbers() -> None:
    assert display_name("buprenorphine_naloxone", "medication") == "Buprenorphine/naloxone"
    assert display_name("cancelled_by_clinic", "appointment_kind") == "Cancelled by clinic"  # unknown: spaced
    assert display_name("1-OTP", "asam_level") == "1 Opioid treatment program"
    assert display_name("Dr. ito", None) == "Dr. ito"  # names of people and sites stay as written
    assert format_value(0.1459, "fraction 0..1") == "14.6%"
    assert format_value(0.25, "fraction") == "25%"
    assert format_value(None, "fraction") == "n/a"
    assert format_value(69075, "cents") == "$690.75"
    assert format_value(6.5, "days") == "6.5 days"
    assert format_value(1545, "appointments") == "1,545"


def test_drug_screens_are_small_multiples_by_month_with_names_and_rates() -> None:
    rows = drug_screen_rows()
    doc = document("drug-screens", rows, {"screens": 3843, "positives": 1000, "positivity_rate": 0.2602})
    figure = chart_figure(report("drug-screens"), doc)
    assert text_overlaps(figure) == []
    panels = [
        axes
        for axes in figure.findobj(lambda a: hasattr(a, "get_title"))
        if axes.get_visible() and axes.get_title(loc="left")
    ]
    assert len(panels) == 5  # one panel per substance, not 60 bars
    texts = svg_texts(svg_chart(report("drug-screens"), doc))
    assert {"Buprenorphine", "Cocaine", "Fentanyl", "Methamphetamine", "Opiates"} <= set(texts)
    assert "Positive, all substances: 26%   ·   Screens: 3,843   ·   Positive: 1,000" in texts
    cocaine = [r for r in rows if r["substance"] == "cocaine"]
    overall = sum(r["positives"] for r in cocaine) / sum(r["screens"] for r in cocaine)
    assert (
        f"{format_value(round(overall, 4), 'fraction')} positive of {sum(r['screens'] for r in cocaine):,} screens"
        in texts
    )
    assert {"Nov", "2025", "Jan", "2026"} <= set(texts)  # months on the axis, the year where it changes
    # Cocaine had months with screens and no positive: drawn as points on the 0% line.
    [cocaine_axes] = [a for a in panels if a.get_title(loc="left").startswith("Cocaine")]
    plotted = [tuple(p) for c in cocaine_axes.collections for p in c.get_offsets()]
    assert any(y == 0 for _x, y in plotted)


def test_codes_are_shown_by_name_with_the_rate_and_zeros_visible() -> None:
    rows = [
        {"medication": "buprenorphine_naloxone", "new_starts": 20, "eligible": 8, "continuous_180": 1, "rate": 0.125},
        {"medication": "naltrexone_oral", "new_starts": 2, "eligible": 1, "continuous_180": 0, "rate": 0.0},
        {"medication": "naltrexone_xr", "new_starts": 3, "eligible": 0, "continuous_180": 0, "rate": None},
    ]
    summary = {"new_starts": 25, "eligible": 9, "continuous_180": 1, "rate": 0.1111}
    doc = document("mat-continuity", rows, summary)
    figure = chart_figure(report("mat-continuity"), doc)
    assert text_overlaps(figure) == []
    texts = svg_texts(svg_chart(report("mat-continuity"), doc))
    assert {"Buprenorphine/naloxone", "Naltrexone (oral)", "Naltrexone XR (injection)"} <= set(texts)
    assert not [t for t in texts if CODE.search(t)]
    assert "Continuity rate" in texts  # the rate has its own panel
    assert {"12.5%", "0%", "n/a"} <= set(texts)  # each medication's rate; a zero rate is not an undefined one
    assert "Continuity rate: 11.1%   ·   Covered 180 days: 1   ·   Starts at least 180 days old: 9" in texts
    assert texts.count("0") >= 4  # every zero count is labelled
    # ... and marked on its baseline, where a bar of zero length would draw nothing.
    zero_marks = [line for line in figure.findobj(lambda a: hasattr(a, "get_marker")) if line.get_marker() == "|"]
    assert len(zero_marks) >= 4
    assert all(line.get_xdata()[0] == 0 for line in zero_marks)


def test_the_funnel_shows_each_stage_by_name_with_its_rates_and_no_overlaps() -> None:
    counts = [142, 108, 94, 94, 71]
    stages = ["calls", "converted", "assessed", "admitted", "mat_started"]
    labels = ["Calls", "Registered as clients", "Intake assessment completed", "Admitted", "Started medication"]
    rows = [
        {"stage": s, "label": label, "count": n, "rate_from_previous": None if i == 0 else round(n / counts[i - 1], 4)}
        for i, (s, label, n) in enumerate(zip(stages, labels, counts, strict=True))
    ]
    summary = {
        **dict(zip(stages, counts, strict=True)),
        "median_days_call_to_admission": 8.0,
        "median_days_call_to_mat": 13,
    }
    doc = document("intake-funnel", rows, summary)
    figure = chart_figure(report("intake-funnel"), doc)
    assert text_overlaps(figure) == []
    texts = svg_texts(svg_chart(report("intake-funnel"), doc))
    assert set(labels) <= set(texts)
    assert "94  (66.2% of calls; 87% of the stage before)" in texts
    assert "Calls: 142   ·   Median from call to admission: 8 days   ·   to medication: 13 days" in texts


def test_many_long_categories_each_get_their_own_line() -> None:
    rows = [
        {
            "clinician_id": i,
            "clinician": f"Dr. Maria-Fernanda Rodriguez-Villanueva {i} (Riverside Health)",
            "clients": i % 4,
        }
        for i in range(30)
    ]
    doc = document("caseload", rows, {"clients": 45, "clinicians": 30, "unassigned": 0})
    figure = chart_figure(report("caseload"), doc)
    assert text_overlaps(figure) == []
    texts = svg_texts(svg_chart(report("caseload"), doc))
    assert "On 2026-11-30 · all sites in scope" in texts  # a census-like count is on a day
    assert "0 (0%)" in texts


def test_the_overlap_check_sees_overlapping_labels() -> None:
    """The check the tests rely on: texts drawn on top of each other are reported."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    axes = figure.subplots()
    axes.set_xticks(range(12), [f"label number {i}" for i in range(12)])
    assert text_overlaps(figure)


@pytest.fixture
def demo(app: Flask) -> date:
    from clinic.core.time import today
    from clinic.demo.loader import seed
    from clinic.extensions import db

    with app.app_context():
        seed(clients=150, seed=1, today=today())
        db.session.commit()
        return today()


def test_every_chart_of_the_demo_data_is_legible(app: Flask, demo: date, client, make_user, bearer) -> None:
    headers = bearer(make_user("admin"))
    for name in [r.name for r in all_reports()]:
        found = report(name)
        query = {"from": (demo - timedelta(days=365)).isoformat(), "to": demo.isoformat()}
        doc = client.get(f"/api/v1/reports/{name}", headers=headers, query_string=query).get_json()
        svg = client.get(f"/api/v1/reports/{name}", headers=headers, query_string={**query, "format": "svg"})
        assert svg.status_code == 200, name
        texts = svg_texts(svg.get_data(as_text=True))
        assert not [t for t in texts if CODE.search(t)], (name, [t for t in texts if CODE.search(t)])
        headline = "   ·   ".join(
            f"{label}: {format_value(doc['summary'].get(key), found.summary_units.get(key, ''))}"
            for key, label in found.chart.headline
        )
        assert headline in texts, (name, headline)
        if found.chart.rate and found.chart.kind == "bars":
            column = next(c for c in found.columns if c.key == found.chart.rate)
            assert column.label in texts, name  # the rate's own panel
            for row in doc["rows"]:
                assert format_value(row[found.chart.rate], column.unit) in texts, (name, row)
        with app.app_context():
            assert text_overlaps(chart_figure(found, doc)) == [], name


def test_the_chart_names_the_site_it_counts(client, make_site, make_user, bearer) -> None:
    site = make_site(name="Harbor Street Clinic")
    headers = bearer(make_user("admin"))
    svg = client.get("/api/v1/reports/census", headers=headers, query_string={"site_id": site.id, "format": "svg"})
    texts = svg_texts(svg.get_data(as_text=True))
    assert any(t.startswith("On ") and t.endswith(" · Harbor Street Clinic") for t in texts), texts
    assert "No data in this range" in texts
