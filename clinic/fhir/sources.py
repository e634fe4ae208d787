"""Where exported resources come from: one source per table, shared by both exports.

A ``Source`` knows how to select its rows for a ``Scope`` (one client for ``GET
/clients/{id}/fhir``; a site, with an optional ``_since``, for the bulk ``$export``) and how to map
one row to FHIR resources. The per-client Bundle (``clinic.fhir.bundle``) and the bulk export's
NDJSON files (``clinic.fhir.bulk``) both walk ``SOURCES``: one mapping, one implementation.

Rows are read in batches (``yield_per``) and a source's ``select`` loads everything its mapping
reads (joins or ``selectinload``), so an export issues a fixed number of statements per batch and
its memory does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select


@dataclass(frozen=True)
class Scope:
    """Which clients' records: one client, or every client of a site (``None``: every site)."""

    client_id: int | None = None
    site_id: int | None = None
    #: Only rows changed at or after this moment (``_since``).
    since: datetime | None = None


@dataclass(frozen=True)
class Source:
    #: A short name for logs and docs, such as ``"assessments"``.
    name: str
    #: The FHIR resource types ``to_fhir`` produces, such as ``("QuestionnaireResponse", "Observation")``.
    produces: tuple[str, ...]
    #: The statement selecting this source's rows in the scope, in a stable order.
    select: Callable[[Scope], Select[Any]]
    #: One row (as the statement returns it) to its resources, each a FHIR JSON dict already labelled.
    to_fhir: Callable[[Any], Iterable[dict[str, Any]]]


#: Filled by the mapping modules (``clinic.fhir.mapping.*``), in the Bundle's order.
SOURCES: list[Source] = []


def register(source: Source) -> Source:
    SOURCES.append(source)
    return source
