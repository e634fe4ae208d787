"""Report definitions: what each report is called, its columns, its chart, and how it is computed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, false, select, text, true

from clinic.extensions import db


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    #: Shown on chart axes and in the docs: "clients", "days", "fraction 0..1", "cents".
    unit: str = ""


CHART_KINDS = ("bars", "funnel", "survival", "monthly")


@dataclass(frozen=True)
class Chart:
    """How a report is drawn (:mod:`clinic.reports.charts`).

    ``kind`` is one of
    - ``bars``: a row per category ``x``, read across a panel per count in ``y`` and one for ``rate``;
    - ``funnel``: a bar per stage ``x`` with its count ``y[0]`` and its ``rate`` (``rate_phrase``);
    - ``survival``: ``rate`` by day ``x``, with the summary rates ``marks`` (key, day) on the curve;
    - ``monthly``: a panel per ``series`` value with ``rate`` by month ``x``, and in its title the
      panel's overall rate (``numerator`` over ``y[0]`` summed).
    """

    kind: str
    x: str
    y: tuple[str, ...]
    x_label: str
    y_label: str
    #: The row key of the rate the report is about.
    rate: str | None = None
    #: The vocabulary of the codes in ``x`` (or ``series``) for their display names; None: shown as they are.
    names: str | None = None
    #: (summary key, label) pairs shown under the title; units from the report's ``summary_units``.
    headline: tuple[tuple[str, str], ...] = ()
    #: Each bar also shows its share of the total (bars), or of the first stage (funnel).
    share: bool = False
    rate_phrase: str = ""
    series: str | None = None
    numerator: str | None = None
    marks: tuple[tuple[str, int], ...] = ()
    #: The report counts on the day ``to`` rather than over the range.
    on_date: bool = False
    #: Why a rate can be undefined (n/a), said on the chart when one is.
    undefined: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CHART_KINDS:
            raise ValueError(f"chart kind {self.kind!r} is not one of {', '.join(CHART_KINDS)}")


@dataclass(frozen=True)
class Scope:
    """Whose data a report may count: sites, and for a clinician only their own caseload."""

    site_ids: frozenset[int] | None  # None: every site (administrators)
    clinician_id: int | None = None

    def sites(self, column: Any) -> ColumnElement[bool]:
        if self.site_ids is None:
            return true()
        if not self.site_ids:
            return false()
        return column.in_(sorted(self.site_ids))  # type: ignore[no-any-return]

    def caseload(self, primary_clinician_column: Any) -> ColumnElement[bool]:
        return true() if self.clinician_id is None else primary_clinician_column == self.clinician_id

    def caseload_clients(self, client_id_column: Any) -> ColumnElement[bool]:
        """:meth:`caseload` by client id, without joining clients when everyone's clients count."""
        if self.clinician_id is None:
            return true()
        from clinic.clients.models import Client

        mine = select(Client.id).where(Client.primary_clinician_id == self.clinician_id)
        return client_id_column.in_(mine)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Context:
    start: date
    end: date
    today: date
    scope: Scope

    def during(self, instant_column: Any) -> ColumnElement[bool]:
        """The instant falls on a UTC day from ``start`` to ``end``, as a range an index on it can serve."""
        first = datetime.combine(self.start, time.min, tzinfo=UTC)
        after_last = datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)
        return and_(instant_column >= first, instant_column < after_last)


@dataclass
class Result:
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    columns: tuple[Column, ...]
    chart: Chart
    compute: Callable[[Context], Result]
    #: Summary keys and their units, for the chart subtitle and the docs.
    summary_units: dict[str, str] = field(default_factory=dict)


REPORTS: dict[str, Report] = {}


def report(
    name: str,
    *,
    title: str,
    description: str,
    columns: Sequence[Column],
    chart: Chart,
    summary_units: dict[str, str] | None = None,
) -> Callable[[Callable[[Context], Result]], Callable[[Context], Result]]:
    """Register a report computed by the decorated function."""

    def register(compute: Callable[[Context], Result]) -> Callable[[Context], Result]:
        tuned = _with_report_settings(compute)
        REPORTS[name] = Report(name, title, description, tuple(columns), chart, tuned, summary_units or {})
        return compute

    return register


def _with_report_settings(compute: Callable[[Context], Result]) -> Callable[[Context], Result]:
    """Run a report's SQL with settings for analytic queries, for its transaction only (PostgreSQL).

    - ``jit = off``: the planner's costs for a report's window functions and correlated
      subqueries cross the JIT thresholds, and compiling took longer than the query itself
      (2.6 s of a 5.4 s report at 100,000 clients);
    - ``work_mem = REPORT_WORK_MEM``: sorts and hashes over millions of rows stay in memory
      instead of spilling to disk. Only report transactions get it, never the request path.
    """

    @functools.wraps(compute)
    def run(ctx: Context) -> Result:
        session = db.session()
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT set_config('jit', 'off', true), set_config('work_mem', :work_mem, true)"),
                {"work_mem": str(current_app.config["REPORT_WORK_MEM"])},
            )
        return compute(ctx)

    return run


def get_report(name: str) -> Report | None:
    from clinic.reports import definitions  # noqa: F401 - registers every report

    return REPORTS.get(name)


def all_reports() -> list[Report]:
    from clinic.reports import definitions  # noqa: F401

    return list(REPORTS.values())
