"""Report definitions: what each report is called, its columns, its chart, and how it is computed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, true


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    #: Shown on chart axes and in the docs: "clients", "days", "fraction 0..1", "cents".
    unit: str = ""


@dataclass(frozen=True)
class Chart:
    kind: str  # "bar" | "line"
    x: str
    y: tuple[str, ...]
    x_label: str
    y_label: str


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
        REPORTS[name] = Report(name, title, description, tuple(columns), chart, compute, summary_units or {})
        return compute

    return register


def get_report(name: str) -> Report | None:
    from clinic.reports import definitions  # noqa: F401 - registers every report

    return REPORTS.get(name)


def all_reports() -> list[Report]:
    from clinic.reports import definitions  # noqa: F401

    return list(REPORTS.values())
