"""The three renderings of a report: JSON, CSV streamed row by row, and an SVG chart."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import matplotlib

from clinic.core.spreadsheet import as_text
from clinic.reports.charts import chart_figure
from clinic.reports.registry import Report


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return as_text(value) if isinstance(value, str) else value


def csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A header line, then one line per row, produced as the rows are consumed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate(0)
        writer.writerow([_cell(row.get(c)) for c in columns])
        yield buffer.getvalue()


def svg_chart(report: Report, document: dict[str, Any], *, scope: str = "all sites in scope") -> str:
    """The report's chart as SVG: title, range and scope, the headline rate, and panels with their units."""
    figure = chart_figure(report, document, scope=scope)
    out = io.StringIO()
    # A fixed salt and no date: the same numbers give the same file.
    with matplotlib.rc_context({"svg.hashsalt": report.name}):
        figure.savefig(out, format="svg", metadata={"Date": None, "Title": report.title})
    return out.getvalue()
