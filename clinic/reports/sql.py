"""Portable SQL pieces: date arithmetic and medians that read the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Date, Float, Integer, String, and_, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class days_between(FunctionElement[int]):  # noqa: N801 - reads like the SQL function it stands for
    """``b - a`` in whole days for two dates."""

    type = Integer()
    inherit_cache = True


@compiles(days_between, "postgresql")
def _days_pg(element: Any, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"(({compiler.process(b, **kw)})::date - ({compiler.process(a, **kw)})::date)"


@compiles(days_between, "sqlite")
def _days_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"CAST(julianday({compiler.process(b, **kw)}) - julianday({compiler.process(a, **kw)}) AS INTEGER)"


class add_days(FunctionElement[Any]):  # noqa: N801
    """A date plus a number of days."""

    type = Date()
    inherit_cache = True


@compiles(add_days, "postgresql")
def _add_pg(element: Any, compiler: Any, **kw: Any) -> str:
    day, n = list(element.clauses)
    return f"(({compiler.process(day, **kw)})::date + ({compiler.process(n, **kw)})::integer)"


@compiles(add_days, "sqlite")
def _add_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    day, n = list(element.clauses)
    return f"date({compiler.process(day, **kw)}, printf('%+d days', {compiler.process(n, **kw)}))"


class utc_date(FunctionElement[Any]):  # noqa: N801
    """The UTC calendar date of a stored instant."""

    type = Date()
    inherit_cache = True


@compiles(utc_date, "postgresql")
def _utc_date_pg(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"(({compiler.process(value, **kw)}) AT TIME ZONE 'UTC')::date"


@compiles(utc_date, "sqlite")
def _utc_date_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"date({compiler.process(value, **kw)})"


class utc_month_start(FunctionElement[Any]):  # noqa: N801
    """The month of a stored instant, in UTC, as a value to group by.

    On PostgreSQL ``date_trunc('month', instant AT TIME ZONE 'UTC')``: an immutable expression,
    so statistics can be kept on it (migration 0007) and the planner knows how few months there
    are. Turn it into ``YYYY-MM`` with :func:`month_text` after grouping.
    """

    inherit_cache = True


@compiles(utc_month_start, "postgresql")
def _month_start_pg(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"date_trunc('month', ({compiler.process(value, **kw)}) AT TIME ZONE 'UTC')"


@compiles(utc_month_start, "sqlite")
def _month_start_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"strftime('%Y-%m', {compiler.process(value, **kw)})"


class month_text(FunctionElement[str]):  # noqa: N801
    """``YYYY-MM`` of a :class:`utc_month_start` value."""

    type = String()
    inherit_cache = True


@compiles(month_text, "postgresql")
def _month_text_pg(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"to_char({compiler.process(value, **kw)}, 'YYYY-MM')"


@compiles(month_text, "sqlite")
def _month_text_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return compiler.process(value, **kw)  # type: ignore[no-any-return]


def median_by(subquery: Any, value: str, groups: list[str]) -> Any:
    """``SELECT groups..., median(value)`` over a subquery, with window functions only."""
    cols = [subquery.c[g] for g in groups]
    ranked = select(
        *cols,
        subquery.c[value].label("v"),
        func.row_number().over(partition_by=cols or None, order_by=subquery.c[value]).label("rn"),
        func.count().over(partition_by=cols or None).label("cnt"),
    ).subquery()
    rcols = [ranked.c[g] for g in groups]
    middle = and_(
        ranked.c.rn >= (ranked.c.cnt + 1) // 2,  # floor division: the middle one or two rows
        ranked.c.rn <= (ranked.c.cnt + 2) // 2,
    )
    return select(*rcols, func.avg(func.cast(ranked.c.v, Float)).label("median")).where(middle).group_by(*rcols)


def rate(numerator: int, denominator: int) -> float | None:
    """A fraction 0..1, or None when there is nothing to divide by."""
    return None if not denominator else round(numerator / denominator, 4)


def as_int(value: Any) -> int:
    return int(value or 0)


__all__ = [
    "ColumnElement",
    "add_days",
    "as_int",
    "days_between",
    "literal",
    "median_by",
    "month_text",
    "rate",
    "utc_date",
    "utc_month_start",
]


class json_has_text(FunctionElement[bool]):  # noqa: N801
    """Whether a JSON array of strings contains a value."""

    type = Boolean()
    inherit_cache = True


@compiles(json_has_text, "postgresql")
def _json_has_pg(element: Any, compiler: Any, **kw: Any) -> str:
    array, value = list(element.clauses)
    return f"(({compiler.process(array, **kw)})::jsonb ? ({compiler.process(value, **kw)}))"


@compiles(json_has_text, "sqlite")
def _json_has_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    array, value = (compiler.process(clause, **kw) for clause in element.clauses)
    # Compiled SQL expressions only: no user text reaches this string.
    return f"EXISTS (SELECT 1 FROM json_each({array}) WHERE json_each.value = {value})"  # noqa: S608


class json_length(FunctionElement[int]):  # noqa: N801
    type = Integer()
    inherit_cache = True


@compiles(json_length, "postgresql")
def _json_length_pg(element: Any, compiler: Any, **kw: Any) -> str:
    (array,) = list(element.clauses)
    return f"json_array_length(({compiler.process(array, **kw)})::json)"


@compiles(json_length, "sqlite")
def _json_length_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (array,) = list(element.clauses)
    return f"json_array_length({compiler.process(array, **kw)})"


class json_int(FunctionElement[int]):  # noqa: N801
    """An integer member of a JSON object: ``json_int(column, 'key')``."""

    type = Integer()
    inherit_cache = True


@compiles(json_int, "postgresql")
def _json_int_pg(element: Any, compiler: Any, **kw: Any) -> str:
    obj, key = list(element.clauses)
    return f"((({compiler.process(obj, **kw)})::json ->> {compiler.process(key, **kw)})::integer)"


@compiles(json_int, "sqlite")
def _json_int_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    obj, key = list(element.clauses)
    return f"CAST(json_extract({compiler.process(obj, **kw)}, '$.' || {compiler.process(key, **kw)}) AS INTEGER)"


class utc_year(FunctionElement[int]):  # noqa: N801
    type = Integer()
    inherit_cache = True


@compiles(utc_year, "postgresql")
def _year_pg(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST(EXTRACT(YEAR FROM ({compiler.process(value, **kw)}) AT TIME ZONE 'UTC') AS INTEGER)"


@compiles(utc_year, "sqlite")
def _year_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (value,) = list(element.clauses)
    return f"CAST(strftime('%Y', {compiler.process(value, **kw)}) AS INTEGER)"
