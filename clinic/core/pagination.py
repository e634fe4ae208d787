"""Keyset pagination: ``{"items": [...], "next_cursor": ...}`` with an opaque, signed cursor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from marshmallow import Schema, fields, validate
from sqlalchemy import ColumnElement, Select, inspect, literal, select, tuple_, union
from sqlalchemy.orm import InstrumentedAttribute

from clinic.core.errors import field_error
from clinic.extensions import db

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageArgsSchema(Schema):
    """The ``limit`` and ``cursor`` query parameters every list accepts."""

    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None, validate=validate.Length(max=512))


def page_schema(item_schema: type[Schema] | Schema, name: str) -> type[Schema]:
    """A list envelope schema ``{items, next_cursor}`` for ``item_schema``."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
        name=name,
    )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="clinic.cursor")


def _dump_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    return value


def _load_value(value: Any) -> Any:
    if isinstance(value, dict) and "dt" in value:
        return datetime.fromisoformat(value["dt"])
    if isinstance(value, dict) and "d" in value:
        return date.fromisoformat(value["d"])
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    return str(_serializer().dumps([_dump_value(v) for v in values]))


def decode_cursor(cursor: str, width: int) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor`; a forged or stale one is a 422 on ``cursor``."""
    try:
        raw = _serializer().loads(cursor)
        if not isinstance(raw, list) or len(raw) != width:
            raise ValueError("wrong width")
        return [_load_value(v) for v in raw]
    except (BadSignature, ValueError, TypeError, KeyError):
        field_error("cursor", "Not a cursor this list returned.")


def keyset_page(
    stmt: Select[Any],
    *,
    keys: Sequence[InstrumentedAttribute[Any]],
    limit: int,
    cursor: str | None,
    descending: bool = False,
    any_of: Sequence[ColumnElement[bool]] = (),
) -> Page[Any]:
    """Run ``stmt`` ordered by ``keys`` (unique together) and return one page of entities.

    ``any_of``: rows must match at least one of these conditions. Each is run as a query of its
    own, ordered and limited, and the page is taken from their union: with an index per condition
    every branch is a short index range scan, where one query with an OR would walk one index in
    order and filter (slow when few rows match).
    """
    if cursor:
        values = decode_cursor(cursor, len(keys))
        row = tuple_(*keys)
        bound = tuple_(*(literal(v, key.type) for v, key in zip(values, keys, strict=True)))
        stmt = stmt.where(row < bound if descending else row > bound)
    order = [key.desc() if descending else key.asc() for key in keys]
    if any_of:
        entity = stmt.column_descriptions[0]["entity"]
        (primary_key,) = inspect(entity).primary_key
        branches = [
            select(branch.c[primary_key.key])
            for branch in (
                stmt.where(condition).with_only_columns(primary_key).order_by(*order).limit(limit + 1).subquery()
                for condition in any_of
            )
        ]
        stmt = select(entity).where(primary_key.in_(union(*branches)))
    rows = list(db.session.scalars(stmt.order_by(*order).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, key.key) for key in keys])
    return Page(items=rows, next_cursor=next_cursor)
