"""Portable SQL functions: date arithmetic and JSON access that read the same on SQLite and PostgreSQL.

Shared by the reports and by the one SQL implementation of the contingency-management rules
(clinic.plans.cm_ledger).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Date, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


def _portable(function: type[FunctionElement[Any]], *, postgresql: str, sqlite: str) -> None:
    """Compile ``function`` from one SQL template per dialect; ``{0}``, ``{1}``, ... are its compiled arguments.

    Templates are this module's constants and the arguments compiled SQL expressions (bound
    parameters, columns), so no user text ever reaches the string.
    """
    for dialect, template in (("postgresql", postgresql), ("sqlite", sqlite)):

        def _compile(element: Any, compiler: Any, _template: str = template, **kw: Any) -> str:
            return _template.format(*(compiler.process(clause, **kw) for clause in element.clauses))

        compiles(function, dialect)(_compile)


class days_between(FunctionElement[int]):  # noqa: N801 - reads like the SQL function it stands for
    """``days_between(a, b)``: ``b - a`` in whole days for two dates."""

    type = Integer()
    inherit_cache = True


_portable(
    days_between,
    postgresql="(({1})::date - ({0})::date)",
    sqlite="CAST(julianday({1}) - julianday({0}) AS INTEGER)",
)


class add_days(FunctionElement[Any]):  # noqa: N801
    """``add_days(day, n)``: a date plus a number of days."""

    type = Date()
    inherit_cache = True


_portable(add_days, postgresql="(({0})::date + ({1})::integer)", sqlite="date({0}, printf('%+d days', {1}))")


class utc_date(FunctionElement[Any]):  # noqa: N801
    """The UTC calendar date of a stored instant."""

    type = Date()
    inherit_cache = True


_portable(utc_date, postgresql="(({0}) AT TIME ZONE 'UTC')::date", sqlite="date({0})")


class utc_year(FunctionElement[int]):  # noqa: N801
    """The UTC calendar year of a stored instant."""

    type = Integer()
    inherit_cache = True


_portable(
    utc_year,
    postgresql="CAST(EXTRACT(YEAR FROM ({0}) AT TIME ZONE 'UTC') AS INTEGER)",
    sqlite="CAST(strftime('%Y', {0}) AS INTEGER)",
)


class utc_month_start(FunctionElement[Any]):  # noqa: N801
    """The month of a stored instant, in UTC, as a value to group by.

    On PostgreSQL ``date_trunc('month', instant AT TIME ZONE 'UTC')``: an immutable expression,
    so statistics can be kept on it (migration 0007) and the planner knows how few months there
    are. Turn it into ``YYYY-MM`` with :func:`month_text` after grouping.
    """

    inherit_cache = True


_portable(utc_month_start, postgresql="date_trunc('month', ({0}) AT TIME ZONE 'UTC')", sqlite="strftime('%Y-%m', {0})")


class month_text(FunctionElement[str]):  # noqa: N801
    """``YYYY-MM`` of a :class:`utc_month_start` value."""

    type = String()
    inherit_cache = True


_portable(month_text, postgresql="to_char({0}, 'YYYY-MM')", sqlite="{0}")


class json_has_text(FunctionElement[bool]):  # noqa: N801
    """``json_has_text(array, value)``: whether a JSON array of strings contains a value."""

    type = Boolean()
    inherit_cache = True


_portable(
    json_has_text,
    postgresql="(({0})::jsonb ? ({1}))",
    sqlite="EXISTS (SELECT 1 FROM json_each({0}) WHERE json_each.value = {1})",
)


class json_length(FunctionElement[int]):  # noqa: N801
    """The number of elements of a JSON array."""

    type = Integer()
    inherit_cache = True


_portable(json_length, postgresql="json_array_length(({0})::json)", sqlite="json_array_length({0})")


class json_int(FunctionElement[int]):  # noqa: N801
    """An integer member of a JSON object: ``json_int(column, 'key')``."""

    type = Integer()
    inherit_cache = True


_portable(
    json_int,
    postgresql="((({0})::json ->> {1})::integer)",
    sqlite="CAST(json_extract({0}, '$.' || {1}) AS INTEGER)",
)
