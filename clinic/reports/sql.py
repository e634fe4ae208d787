"""Report SQL helpers: medians, rates and numbers as reports present them.

The portable SQL functions the reports use (dates, JSON) are in :mod:`clinic.core.sql`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, func, select


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


