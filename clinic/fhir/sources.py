"""Where exported resources come from: one source per table, shared by both exports.

A ``Source`` knows how to select its rows for a ``Scope`` (one client for ``GET
/clients/{id}/fhir``; a site, with an optional ``_since``, for the bulk ``$export``) and how to map
one row to FHIR resources. The per-client Bundle (``clinic.fhir.bundle``) and the bulk export's
NDJSON files (``clinic.fhir.bulk``) both walk ``SOURCES`` through :func:`resources` (or
:func:`walk`): one mapping, one implementation, and every resource checked by
``clinic.fhir.validate.check`` on its way out.

Rows are read in batches (``yield_per``); a source's ``select`` joins what its mapping reads, and
what cannot be joined (a medication order's dose history) is loaded by its ``enrich`` once per
batch. So an export issues a fixed number of statements per batch, and its memory does not grow
with the data.

Resource ids
------------
Every id is ``<prefix>-<row id>``, the prefix naming the table, so ids are stable (the same row
always gets the same id, in every export) and unique per resource type even where two tables map
to one type: ``patient-12`` (clients), ``episode-3`` (episodes), ``consent-7`` (consents),
``careplan-5`` (plans), ``goal-5-g1a2b3c4d`` (a goal or objective of plan 5, by its node id),
``medication-9`` (medication orders), ``appointment-40`` (individual appointments),
``appointment-attendee-8`` (a client's seat in a group session), ``assessment-…`` and
``drug-screen-…`` (instruments and screens). References are relative, ``Patient/patient-12``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, and_, or_, true

from clinic.extensions import db
from clinic.fhir.validate import check

#: A statement of any columns (SQLAlchemy's ``Select`` is generic over each column's type).
AnySelect: TypeAlias = Select[*tuple[Any, ...]]

#: Rows read per round trip; the enrich hooks load their extras once per batch of this size.
BATCH_SIZE = 500


@dataclass(frozen=True)
class Scope:
    """Which clients' records: one client, or every client of a site (``None``: every site)."""

    client_id: int | None = None
    site_id: int | None = None
    #: Only rows changed at or after this moment (``_since``).
    since: datetime | None = None
    #: A disclosure under one consent (the per-client Bundle): of the client's consents, only this
    #: one is sent; the recipient learns nothing of the client's other consents and their recipients.
    consent_id: int | None = None

    def where(self, *, client: Any, site: Any, changed: Sequence[Any] = ()) -> ColumnElement[bool]:
        """The scope as a condition on a source's own client, site and change-time columns."""
        conditions: list[ColumnElement[bool]] = []
        if self.client_id is not None:
            conditions.append(client == self.client_id)
        if self.site_id is not None:
            conditions.append(site == self.site_id)
        if self.since is not None and changed:
            conditions.append(or_(*(column >= self.since for column in changed)))
        if not conditions:
            return true()
        return and_(*conditions)


@dataclass(frozen=True)
class Source:
    #: A short name for logs and docs, such as ``"assessments"``.
    name: str
    #: The FHIR resource types ``to_fhir`` produces, such as ``("QuestionnaireResponse", "Observation")``.
    produces: tuple[str, ...]
    #: The statement selecting this source's rows in the scope, in a stable order.
    select: Callable[[Scope], AnySelect]
    #: One row to its resources, each a FHIR JSON dict already labelled. The row is what the
    #: statement returns (the entity when it selects one entity, else a ``Row``), or what
    #: ``enrich`` made of it.
    to_fhir: Callable[[Any], Iterable[dict[str, Any]]]
    #: Optional: one batch of rows to the rows ``to_fhir`` receives, loading in one statement what
    #: the select could not join (a medication order's dose history).
    enrich: Callable[[Sequence[Any]], Sequence[Any]] | None = None


#: Filled by the mapping modules (``clinic.fhir.mapping.*``); :func:`walk` takes them in ``ORDER``.
SOURCES: list[Source] = []

#: The order of a client's Bundle: the record, care, then instruments and screens (by the first type
#: each source produces; a type not listed goes last).
ORDER: tuple[str, ...] = (
    "Patient",
    "EpisodeOfCare",
    "Consent",
    "CarePlan",
    "Goal",
    "MedicationRequest",
    "Appointment",
    "QuestionnaireResponse",
    "Observation",
)


def register(source: Source) -> Source:
    SOURCES.append(source)
    return source


def batches(source: Source, scope: Scope, *, batch_size: int = BATCH_SIZE) -> Iterator[Sequence[Any]]:
    """The source's rows in the scope, ``batch_size`` at a time, each batch already enriched."""
    stmt = source.select(scope)
    result = db.session.execute(stmt.execution_options(yield_per=batch_size))
    rows: Any = result.scalars() if len(stmt.column_descriptions) == 1 else result
    for partition in rows.partitions(batch_size):
        batch: Sequence[Any] = list(partition)
        if source.enrich is not None:
            batch = source.enrich(batch)
        yield batch


def resources(source: Source, scope: Scope, *, batch_size: int = BATCH_SIZE) -> Iterator[dict[str, Any]]:
    """Every resource the source makes of its rows in the scope, each checked (``validate.check``)."""
    for batch in batches(source, scope, batch_size=batch_size):
        for row in batch:
            for resource in source.to_fhir(row):
                yield check(resource)


def walk(scope: Scope, *, batch_size: int = BATCH_SIZE) -> Iterator[tuple[Source, dict[str, Any]]]:
    """Every source's resources in the scope, in ``ORDER``, each with the source it came from."""
    import clinic.fhir.mapping  # noqa: F401 - registers the sources

    for source in ordered_sources():
        for resource in resources(source, scope, batch_size=batch_size):
            yield source, resource


def ordered_sources() -> list[Source]:
    """``SOURCES`` in ``ORDER`` (registration order among sources of the same rank)."""
    import clinic.fhir.mapping  # noqa: F401 - registers the sources

    def rank(source: Source) -> int:
        first = source.produces[0] if source.produces else ""
        return ORDER.index(first) if first in ORDER else len(ORDER)

    return sorted(SOURCES, key=rank)
