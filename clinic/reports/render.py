"""The three renderings of a report: JSON, CSV streamed row by row, and an SVG chart."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from clinic.reports.registry import Report


def csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A header line, then one line per row, produced as the rows are consumed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate(0)
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        yield buffer.getvalue()


def _label(report: Report, key: str) -> str:
    column = next((c for c in report.columns if c.key == key), None)
    if column is None:
        return key
    return f"{column.label} ({column.unit})" if column.unit else column.label


def svg_chart(report: Report, document: dict[str, Any]) -> str:
    """A chart of the report's numbers, with a title, labelled axes and units."""
    chart = report.chart
    rows = document["rows"]
    params = document["params"]
    figure: Figure = plt.figure(figsize=(9, 5), dpi=100)
    try:
        axes = figure.add_subplot(1, 1, 1)
        xs = [str(r.get(chart.x)) for r in rows] if chart.kind == "bar" else [r.get(chart.x) for r in rows]
        if not rows:
            axes.text(0.5, 0.5, "No data in this range", ha="center", va="center", transform=axes.transAxes)
        elif chart.kind == "line":
            for key in chart.y:
                axes.step(xs, [r.get(key) for r in rows], where="post", label=_label(report, key))
            axes.set_ylim(0, 1.05)
        else:
            width = 0.8 / max(1, len(chart.y))
            positions = range(len(xs))
            for index, key in enumerate(chart.y):
                values = [r.get(key) or 0 for r in rows]
                axes.bar([p + index * width for p in positions], values, width=width, label=_label(report, key))
            axes.set_xticks([p + width * (len(chart.y) - 1) / 2 for p in positions])
            axes.set_xticklabels(xs, rotation=30 if len(xs) > 6 else 0, ha="right" if len(xs) > 6 else "center")
        if len(chart.y) > 1 and rows:
            axes.legend()
        axes.set_xlabel(chart.x_label)
        axes.set_ylabel(chart.y_label)
        scope = f"site {params['site_id']}" if params.get("site_id") else "all sites in scope"
        figure.suptitle(report.title, fontsize=14)
        axes.set_title(f"{params['from']} to {params['to']} · {scope}", fontsize=10)
        figure.tight_layout()
        out = io.StringIO()
        figure.savefig(out, format="svg")
        return out.getvalue()
    finally:
        plt.close(figure)
