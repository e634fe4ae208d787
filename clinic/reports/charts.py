"""Charts of reports, drawn so that a program administrator can read them.

Every chart names coded values by their display names, shows the rate its report is about, marks
zero values (a labelled 0 on a baseline tick) apart from undefined ones (n/a), and leaves no two
texts on top of each other: category labels get a row each, month labels are thinned until they
fit, and value labels get room at the end of their bars. :func:`text_overlaps` checks the last.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from itertools import combinations, pairwise
from typing import Any

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from clinic.reports.labels import display_name, format_value
from clinic.reports.registry import Chart, Report

#: Okabe-Ito colours: told apart with every common colour-vision deficiency.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#999999")
RATE_COLOUR = "#333333"
FONT_SIZE = 9
WIDTH_IN = 10.0
HEADER_IN = 1.0
ROW_IN = 0.36
CATEGORY_WRAP = 30
#: Behind a value label, so that a reference line never runs through its digits.
LABEL_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.9}
#: A month's rate on fewer screens than this is drawn hollow: too few to read much into.
FEW = 10


# --- what to draw ---------------------------------------------------------------------------------


def _column(report: Report, key: str) -> tuple[str, str]:
    """A column's label and unit."""
    for column in report.columns:
        if column.key == key:
            return column.label, column.unit
    return key.replace("_", " ").capitalize(), ""


def _unit(report: Report, key: str) -> str:
    return _column(report, key)[1]


def _axis_formatter(unit: str) -> FuncFormatter:
    if unit.startswith("fraction"):
        return FuncFormatter(lambda v, _pos: f"{round(v * 100, 1):g}%")
    if unit == "cents":
        return FuncFormatter(lambda v, _pos: f"${v / 100:,.0f}")
    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def _subtitle(report: Report, document: dict[str, Any], scope: str) -> str:
    params = document["params"]
    shown = f"On {params['to']}" if report.chart.on_date else f"{params['from']} to {params['to']}"
    return f"{shown} · {scope}{_undefined_note(report, document)}"


def _undefined_note(report: Report, document: dict[str, Any]) -> str:
    """Why a rate reads n/a, when one does."""
    chart = report.chart
    summary = document.get("summary") or {}
    undefined = any(summary.get(key, 0) is None for key, _label in chart.headline) or (
        chart.kind == "bars"
        and chart.rate is not None
        and any(row.get(chart.rate, 0) is None for row in document["rows"])
    )
    return f" · n/a: {chart.undefined}" if undefined and chart.undefined else ""


def _headline(report: Report, summary: dict[str, Any]) -> str:
    parts = []
    for key, label in report.chart.headline:
        unit = report.summary_units.get(key, "")
        parts.append(f"{label}: {format_value(summary.get(key), unit)}")
    return "   ·   ".join(parts)


# --- layout ---------------------------------------------------------------------------------------


def _extent(text: Text, renderer: Any) -> Any:
    return text.get_window_extent(renderer)


def _undrawn_tick_labels(figure: Figure) -> set[int]:
    """Tick labels outside their axis's view: laid out by matplotlib, but never drawn."""
    hidden: set[int] = set()
    for axes in figure.findobj(Axes):
        if not isinstance(axes, Axes):
            continue
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            margin = (high - low) * 1e-6
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not low - margin <= tick.get_loc() <= high + margin:
                    hidden.update({id(tick.label1), id(tick.label2)})
    return hidden


def _visible_texts(figure: Figure) -> Iterator[Text]:
    """The texts a reader sees: visible, not empty, inside nothing hidden, and drawn."""
    hidden = _undrawn_tick_labels(figure)
    pending: list[Artist] = [figure]
    while pending:
        artist = pending.pop()
        if not artist.get_visible() or id(artist) in hidden:
            continue
        if isinstance(artist, Text) and artist.get_text().strip():
            yield artist
        pending.extend(artist.get_children())


def _renderer(figure: Figure) -> Any:
    """The renderer that measures texts as the SVG will draw them (the same fonts and dpi)."""
    return FigureCanvasAgg(figure).get_renderer()  # type: ignore[no-untyped-call]  # matplotlib leaves it untyped


def text_overlaps(figure: Figure, *, padding_px: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of visible texts whose boxes overlap once the figure is laid out (none, when legible)."""
    renderer = _renderer(figure)
    figure.draw_without_rendering()
    boxes = [(t.get_text(), _extent(t, renderer).expanded(1, 1).padded(-padding_px)) for t in _visible_texts(figure)]
    return [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]


def _thin_x_ticks(axes: Axes, renderer: Any) -> None:
    """Hide every second (third, ...) tick label until neighbours no longer touch."""
    labels = [t for t in axes.get_xticklabels() if t.get_text()]
    for step in range(1, len(labels) + 1):
        shown = labels[::step]
        for index, label in enumerate(labels):
            label.set_visible(index % step == 0)
        boxes = [_extent(t, renderer).padded(3) for t in shown]
        if not any(a.overlaps(b) for a, b in pairwise(boxes)):
            return


def _fit_value_labels(figure: Figure, axes: Axes, labels: Sequence[Text], renderer: Any) -> None:
    """Widen the value axis until every label at a bar's end is inside the panel."""
    for _ in range(4):
        right = axes.get_window_extent(renderer).x1
        overflow = max((_extent(t, renderer).x1 - right for t in labels), default=0.0)
        if overflow <= 0:
            return
        low, high = axes.get_xlim()
        width_px = axes.get_window_extent(renderer).width
        axes.set_xlim(low, high + (high - low) * (overflow + 6) / max(width_px, 1.0))
        figure.draw_without_rendering()


def _finish(figure: Figure, value_labels: dict[Axes, list[Text]]) -> None:
    """Lay the figure out, give value labels room, thin crowded tick labels, then keep that layout."""
    renderer = _renderer(figure)
    figure.draw_without_rendering()
    for axes, labels in value_labels.items():
        _fit_value_labels(figure, axes, labels, renderer)
    for axes in figure.findobj(Axes):
        if isinstance(axes, Axes):
            _thin_x_ticks(axes, renderer)
    figure.draw_without_rendering()
    # Saved exactly as laid out and checked here, and without laying it out a second time.
    figure.set_layout_engine("none")


def _frame(report: Report, document: dict[str, Any], scope: str, body_height_in: float) -> tuple[Figure, SubFigure]:
    """A figure with the header (title, range and scope, the headline rate) over a body for the panels."""
    height = HEADER_IN + body_height_in
    figure = Figure(figsize=(WIDTH_IN, height), dpi=100, layout="constrained")
    parts = figure.subfigures(2, 1, height_ratios=[HEADER_IN, body_height_in], squeeze=False)
    header, body = parts[0][0], parts[1][0]
    header.text(0.01, 0.92, report.title, fontsize=14, weight="bold", va="top")
    header.text(0.01, 0.52, _subtitle(report, document, scope), fontsize=FONT_SIZE + 1, va="top", color="#444444")
    headline = _headline(report, document.get("summary") or {})
    if headline:
        header.text(0.01, 0.14, headline, fontsize=FONT_SIZE + 2, va="bottom")
    return figure, body


def _style(axes: Axes) -> None:
    axes.tick_params(labelsize=FONT_SIZE)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def _wrap(text: str) -> str:
    return textwrap.fill(text, CATEGORY_WRAP)


def _rows_height(labels: Sequence[str], *, row_in: float = ROW_IN) -> float:
    """Inches for the category rows: enough for the tallest (wrapped) label on each."""
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    return max(row_in, 0.17 * lines + 0.08) * len(labels)


# --- chart kinds ----------------------------------------------------------------------------------


def _bar_labels(
    axes: Axes,
    positions: Sequence[int],
    values: Sequence[Any],
    *,
    unit: str,
    colour: str,
    caption: Callable[[int, Any], str] | None = None,
) -> list[Text]:
    """Each bar's value at its end; a zero gets a tick on the baseline, an undefined value n/a."""
    labels: list[Text] = []
    for index, (position, value) in enumerate(zip(positions, values, strict=True)):
        text = caption(index, value) if caption else format_value(value, unit)
        if value is None:
            labels.append(
                axes.annotate(
                    text,
                    (0, position),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=FONT_SIZE,
                    color="#555555",
                    style="italic",
                    bbox=LABEL_BOX,
                )
            )
            continue
        if value == 0:
            axes.plot([0], [position], marker="|", markersize=12, markeredgewidth=2.5, color=colour, clip_on=False)
        labels.append(
            axes.annotate(
                text,
                (value, position),
                xytext=(5 if value else 7, 0),
                textcoords="offset points",
                va="center",
                fontsize=FONT_SIZE,
                bbox=LABEL_BOX,
            )
        )
    return labels


def _rate_ceiling(highest: float) -> float:
    """The end of a rate axis: the next quarter above the highest rate, so that small rates can be compared."""
    return min(1.0, max(0.25, math.ceil(highest * 1.1 / 0.25) * 0.25))


def _with_share(unit: str, total: float) -> Callable[[int, Any], str]:
    """A value label that also gives the value's share of the total: "21 (31.3%)"."""

    def caption(_index: int, value: Any) -> str:
        return f"{format_value(value, unit)} ({format_value(round((value or 0) / total, 4), 'fraction')})"

    return caption


def _bars(report: Report, document: dict[str, Any], scope: str) -> Figure:
    """A panel per count and one for the rate: each category a row, read across every panel."""
    chart: Chart = report.chart
    rows = document["rows"]
    categories = [_wrap(display_name(row.get(chart.x), chart.names)) for row in rows]
    keys = [*chart.y, *([chart.rate] if chart.rate else [])]
    figure, body = _frame(report, document, scope, max(2.2, 1.2 + _rows_height(categories)))
    panels = body.subplots(1, len(keys), sharey=True, squeeze=False)[0]
    positions = list(range(len(rows)))
    value_labels: dict[Axes, list[Text]] = {}
    total = sum(row.get(chart.y[0]) or 0 for row in rows)
    # Counts in the same unit share one scale, so that bar lengths compare across panels.
    tops: dict[str, float] = {}
    for key in chart.y:
        unit = _unit(report, key)
        tops[unit] = max(tops.get(unit, 0), *(row.get(key) or 0 for row in rows))
    for index, (axes, key) in enumerate(zip(panels, keys, strict=True)):
        label, unit = _column(report, key)
        is_rate = key == chart.rate
        colour = RATE_COLOUR if is_rate else COLOURS[index % len(COLOURS)]
        values = [row.get(key) for row in rows]
        axes.barh(positions, [v or 0 for v in values], height=0.6, color=colour)
        caption = _with_share(unit, total) if index == 0 and chart.share and total else None
        value_labels[axes] = _bar_labels(axes, positions, values, unit=unit, colour=colour, caption=caption)
        title = f"{label} ({unit})" if unit == "days" else label
        overall = (document.get("summary") or {}).get(key) if is_rate else None
        if is_rate:
            highest = max((v for v in values if v is not None), default=0)
            ceiling = _rate_ceiling(max(highest, overall or 0))
            axes.set_xlim(0, ceiling)
            axes.set_xticks([0, ceiling / 2, ceiling])
            if overall is not None:
                axes.axvline(overall, color="#888888", linestyle="--", linewidth=1)
                axes.set_xlabel(f"dashed line: all, {format_value(overall, unit)}", fontsize=FONT_SIZE, color="#444444")
        else:
            top = tops[unit]
            axes.set_xlim(0, top * 1.15 if top else 1)
            axes.xaxis.set_major_locator(MaxNLocator(3, integer=True))
        axes.xaxis.set_major_formatter(_axis_formatter(unit))
        axes.set_title(title, fontsize=FONT_SIZE + 1, loc="left")
        _style(axes)
        axes.tick_params(axis="y", length=0)
    first = panels[0]
    first.set_yticks(positions, categories)
    first.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    first.set_ylabel(chart.x_label, fontsize=FONT_SIZE + 1)
    _finish(figure, value_labels)
    return figure


def _funnel(report: Report, document: dict[str, Any], scope: str) -> Figure:
    """Stages from top to bottom, each with its count and its share of the stage it is measured against."""
    chart = report.chart
    rows = document["rows"]
    stages = [_wrap(display_name(row.get(chart.x), chart.names)) for row in rows]
    figure, body = _frame(report, document, scope, max(2.4, 1.0 + _rows_height(stages, row_in=0.5)))
    axes = body.subplots(1, 1)
    positions = list(range(len(rows)))
    count_key = chart.y[0]
    values = [row.get(count_key) for row in rows]
    unit = _unit(report, count_key)
    axes.barh(positions, [v or 0 for v in values], height=0.6, color=COLOURS[0])

    first = values[0] or 0
    first_name = display_name(rows[0].get(chart.x), chart.names).lower()

    def caption(index: int, value: Any) -> str:
        shown = format_value(value, unit)
        if index == 0:
            return shown
        parts = []
        if chart.share and first:
            parts.append(f"{format_value(round((value or 0) / first, 4), 'fraction')} of {first_name}")
        share = rows[index].get(chart.rate) if chart.rate else None
        if share is not None:
            parts.append(f"{format_value(share, 'fraction')} {chart.rate_phrase}")
        return f"{shown}  ({'; '.join(parts)})" if parts else shown

    labels = _bar_labels(axes, positions, values, unit=unit, colour=COLOURS[0], caption=caption)
    top = max((v or 0 for v in values), default=0)
    axes.set_xlim(0, top * 1.15 if top else 1)
    axes.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    axes.xaxis.set_major_formatter(_axis_formatter(unit))
    axes.set_yticks(positions, stages)
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.set_xlabel(chart.y_label, fontsize=FONT_SIZE + 1)
    axes.tick_params(axis="y", length=0)
    _style(axes)
    _finish(figure, {axes: labels})
    return figure


def _survival(report: Report, document: dict[str, Any], scope: str) -> Figure:
    """The share still in treatment by day, with the report's retention rates marked on it."""
    chart = report.chart
    rows = document["rows"]
    summary = document.get("summary") or {}
    figure, body = _frame(report, document, scope, 4.2)
    axes = body.subplots(1, 1)
    rate_key = chart.rate or chart.y[0]
    days = [row[chart.x] for row in rows]
    axes.step(
        days,
        [row[rate_key] for row in rows],
        where="post",
        color=COLOURS[0],
        linewidth=2,
        label="Still in treatment (Kaplan-Meier estimate)",
    )
    marked = [(day, float(summary[key])) for key, day in chart.marks if summary.get(key) is not None]
    if marked:
        axes.scatter(
            [d for d, _ in marked],
            [v for _, v in marked],
            color=COLOURS[3],
            zorder=3,
            s=36,
            label="Retention rate at 30, 90, 180 days (admissions at least that old)",
        )
        annotations = []
        for day, value in marked:
            # The curve only falls: under it and to the left, or over it and to the right, is clear of it.
            on_curve = next((row[rate_key] for row in reversed(rows) if row[chart.x] <= day), 1.0)
            below = value < on_curve
            annotations.append(axes.annotate(
                f"{format_value(value, 'fraction')} at {day} days",
                (day, value),
                xytext=(-6, -14) if below else (6, 8),
                ha="right" if below else "left",
                textcoords="offset points",
                fontsize=FONT_SIZE,
                color=COLOURS[3],
            ))
    axes.set_xlim(0, max([*days, *(d for _k, d in chart.marks)]) * 1.05)
    axes.set_ylim(0, 1.05)
    axes.yaxis.set_major_formatter(_axis_formatter("fraction"))
    if marked:
        _keep_inside(axes, annotations, _renderer(figure))
    axes.set_xlabel(chart.x_label, fontsize=FONT_SIZE + 1)
    axes.set_ylabel(chart.y_label, fontsize=FONT_SIZE + 1)
    axes.grid(axis="y", color="#dddddd", linewidth=0.8)
    axes.legend(loc="upper right", fontsize=FONT_SIZE, frameon=False)
    _style(axes)
    _finish(figure, {})
    return figure


def _keep_inside(axes: Axes, annotations: Sequence[Any], renderer: Any) -> None:
    """A mark's label that would reach past the left of the plot (onto the axis labels) goes over it, to its right.

    The curve only falls, so over the mark and to its right is clear of it too.
    """
    left = axes.get_window_extent(renderer).x0
    for annotation in annotations:
        if _extent(annotation, renderer).x0 < left:
            annotation.set_horizontalalignment("left")
            annotation.xyann = (6, 8)


def _months(params: dict[str, Any]) -> list[str]:
    start, end = date.fromisoformat(params["from"]), date.fromisoformat(params["to"])
    months, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _month_label(month: str, first: bool) -> str:
    shown = date.fromisoformat(f"{month}-01")
    return shown.strftime("%b\n%Y") if first or shown.month == 1 else shown.strftime("%b")


def _monthly(report: Report, document: dict[str, Any], scope: str) -> Figure:
    """Small multiples: a panel per substance with its rate by month, on the same scales."""
    chart = report.chart
    rows = document["rows"]
    rate_key = chart.rate or chart.y[0]
    count_key = chart.y[0]
    months = _months(document["params"])
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series.setdefault(str(row.get(chart.series)), []).append(row)
    names = sorted(series, key=lambda code: display_name(code, chart.names).lower())
    columns = 1 if len(names) == 1 else 2 if len(names) <= 4 else 3
    lines = math.ceil(len(names) / columns)
    figure, body = _frame(report, document, scope, 0.6 + 2.3 * lines)
    grid = body.subplots(lines, columns, sharex=True, sharey=True, squeeze=False)
    unit = _unit(report, rate_key)
    for index, code in enumerate(names):
        axes = grid[index // columns][index % columns]
        by_month = {row[chart.x]: row for row in series[code]}
        values = [
            by_month[m][rate_key] if m in by_month and by_month[m][rate_key] is not None else math.nan for m in months
        ]
        counts = [by_month[m].get(count_key) or 0 if m in by_month else 0 for m in months]
        xs = range(len(months))
        axes.plot(xs, values, color=COLOURS[0], linewidth=1.5)
        for hollow in (False, True):
            chosen = [i for i in xs if not math.isnan(values[i]) and (counts[i] < FEW) == hollow]
            axes.scatter(
                chosen,
                [values[i] for i in chosen],
                s=22,
                zorder=3,
                clip_on=False,
                linewidths=1.3,
                facecolors="white" if hollow else COLOURS[0],
                edgecolors=COLOURS[0],
            )
        counted = sum(row.get(count_key) or 0 for row in series[code])
        hits = sum(row.get(chart.numerator) or 0 for row in series[code]) if chart.numerator else None
        overall = format_value(None if hits is None or not counted else round(hits / counted, 4), unit)
        counted_as = f"{counted:,} {_unit(report, count_key)}"
        axes.set_title(
            f"{display_name(code, chart.names)}\n{overall} {chart.rate_phrase} of {counted_as}",
            fontsize=FONT_SIZE + 1,
            loc="left",
        )
        axes.grid(axis="y", color="#dddddd", linewidth=0.8)
        _style(axes)
    for index in range(len(names), lines * columns):
        grid[index // columns][index % columns].set_visible(False)
    for axes in grid.flat:
        axes.set_ylim(-0.04, 1.04)
        axes.yaxis.set_major_locator(MultipleLocator(0.5))
        axes.yaxis.set_major_formatter(_axis_formatter("fraction"))
        axes.set_xlim(-0.5, len(months) - 0.5)
        axes.set_xticks(range(len(months)), [_month_label(m, i == 0) for i, m in enumerate(months)])
        axes.tick_params(axis="x", labelbottom=True)
    body.supylabel(chart.y_label, fontsize=FONT_SIZE + 1)
    body.supxlabel(
        f"{chart.x_label}. Hollow points: fewer than {FEW} {_unit(report, count_key)} that month.",
        fontsize=FONT_SIZE + 1,
    )
    _finish(figure, {})
    return figure


def _empty(report: Report, document: dict[str, Any], scope: str) -> Figure:
    figure, body = _frame(report, document, scope, 2.0)
    axes = body.subplots(1, 1)
    axes.text(
        0.5, 0.5, "No data in this range", ha="center", va="center", fontsize=FONT_SIZE + 2, transform=axes.transAxes
    )
    axes.set_axis_off()
    _finish(figure, {})
    return figure


KINDS: dict[str, Callable[[Report, dict[str, Any], str], Figure]] = {
    "bars": _bars,
    "funnel": _funnel,
    "survival": _survival,
    "monthly": _monthly,
}


def chart_figure(report: Report, document: dict[str, Any], *, scope: str = "all sites in scope") -> Figure:
    """The figure of a report document (the JSON rendering, with dates as strings)."""
    if not document["rows"]:
        return _empty(report, document, scope)
    return KINDS[report.chart.kind](report, document, scope)
