"""The client banner: who the client is, at the top of every client page, always in the same order.

FAMILY name, Given name; date of birth and age; MRN; site; open episode and level of care; flags
as labelled chips (CONSOLE.md, "Client banner"). Two identifiers — name and date of birth — are
on screen before any action that records care.

A page that shows the banner loads the client with ``load_client(client_id, audit_read=True)``:
the banner shows the registration record, a read audited as the API's ``GET /clients/{id}``.
The banner reads the open episode as the API's list of episodes does (``episode.read``), for the
roles that may read clinical data, and asks the domains above clients for the client's flags
(``client_flags``), each receiver auditing its own reads.

The chart also shows the client's care in force, which plans (above clients) answers through
``client_summary``; its answer is a :class:`CareSummary`. Other domains answer the same signal with
a :class:`ChartCard` each (overdose prevention), which the chart shows after the care.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from flask import current_app, request, url_for

from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, has_permission
from clinic.clients import operations as ops
from clinic.clients.models import Client, Episode
from clinic.core.signals import client_flags, client_summary, values_from
from clinic.core.time import to_local, utcnow
from clinic.extensions import db


@dataclass(frozen=True)
class Flag:
    """One chip of the banner: its words say what it is (never colour alone)."""

    label: str
    #: What kind of flag: "safety" (an alert not yet acknowledged), "risk" (reported at intake).
    kind: str
    #: 0 is the most urgent; chips are shown in this order.
    rank: int = 50
    #: The tag's colour (console.css ``tag--<tone>``), a second cue beside the words.
    tone: str = "red"
    #: A longer explanation, read out after the label and shown in the chip's list.
    detail: str | None = None


@dataclass(frozen=True)
class ActivePlan:
    """The plan in force (or, when none is, the newest draft) and when it is due for review."""

    id: int
    status: str
    revision: int
    next_review_on: date | None
    last_reviewed_on: date | None
    review_overdue: bool


@dataclass(frozen=True)
class ActiveMedication:
    """A medication order in force today."""

    id: int
    name: str
    dose: Decimal
    unit: str
    frequency: str
    phase: str
    start_on: date


@dataclass(frozen=True)
class ChartCard:
    """A card a domain above clients adds to the chart (a ``client_summary`` answer besides the care).

    ``template`` (kept in the domain's own templates folder) is included in a ``section.card``
    under ``title``, with ``card`` (this object, so ``card.values``) and the chart's context.
    """

    title: str
    template: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CareSummary:
    """What the chart shows of the client's care: the plan and the medications in force."""

    plan: ActivePlan | None
    medications: list[ActiveMedication] = field(default_factory=list)
    #: How many plans the client has in all (drafts and closed ones included).
    plan_count: int = 0
    #: The other domains' cards (:class:`ChartCard`), in the order their receivers answered.
    cards: list[ChartCard] = field(default_factory=list)


#: The client's pages, in the sub-navigation's order: (endpoint, label, permission needed).
#: Pages added later append here; an endpoint not registered (yet) is left out.
CLIENT_PAGES: list[tuple[str, str, Permission]] = [
    ("client_pages.chart", "Chart", Permission.CLIENTS_READ),
    ("client_pages.episodes", "Episodes", Permission.CLINICAL_READ),
    ("assessment_pages.client_assessments", "Assessments", Permission.CLINICAL_READ),
    ("plan_pages.client_plans", "Plans", Permission.CLINICAL_READ),
    ("medication_pages.client_medications", "Medications", Permission.CLINICAL_READ),
    ("dosing_pages.client_doses", "Doses", Permission.CLINICAL_READ),
    ("screen_pages.client_screens", "Screens & CM", Permission.CLINICAL_READ),
    ("overdose_pages.client_overdose", "Overdose prevention", Permission.CLINICAL_READ),
    ("client_pages.consents", "Consents & disclosures", Permission.CLIENTS_READ),
]


@dataclass(frozen=True)
class Banner:
    client: Client
    site: Site
    #: Today on the site's calendar, and the client's age on it.
    on: date
    age: int | None
    #: Whether the reader may see clinical data (episodes, levels of care, safety alerts).
    clinical: bool
    open_episode: Episode | None
    flags: list[Flag]
    #: The sub-navigation: (url, label, current).
    tabs: list[tuple[str, str, bool]]


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def client_tabs(client: Client, user: User, *, current: str | None = None) -> list[tuple[str, str, bool]]:
    """The sub-navigation of a client's pages the user may open; ``current`` defaults to this page."""
    current = current or request.endpoint
    tabs = []
    for endpoint, label, permission in CLIENT_PAGES:
        if endpoint not in current_app.view_functions or not has_permission(user, permission):
            continue
        tabs.append((url_for(endpoint, client_id=client.id), label, endpoint == current))
    return tabs


def client_banner(
    client: Client, user: User, *, episodes: Sequence[Episode] | None = None, current: str | None = None
) -> Banner:
    """The banner of ``client`` as ``user`` may see it (pass ``episodes`` when the page listed them already)."""
    site = db.session.get_one(Site, client.site_id)
    on = to_local(utcnow(), site.timezone).date()
    clinical = has_permission(user, Permission.CLINICAL_READ)
    open_episode = None
    if clinical:
        listed = episodes if episodes is not None else ops.list_episodes(client)
        open_episode = next((episode for episode in listed if episode.is_open), None)
    answers: list[list[Flag]] = values_from(client_flags, client, user=user)
    flags = sorted((flag for answer in answers for flag in answer), key=lambda flag: flag.rank)
    return Banner(
        client=client,
        site=site,
        on=on,
        age=_age(client.date_of_birth, on),
        clinical=clinical,
        open_episode=open_episode,
        flags=flags,
        tabs=client_tabs(client, user, current=current),
    )


def banner_context(client: Client, user: User, **kwargs: Any) -> dict[str, Any]:
    """The template context of ``clients/_banner.html``: ``{"banner": ...}``."""
    return {"banner": client_banner(client, user, **kwargs)}


def care_summary(client: Client, user: User) -> CareSummary | None:
    """The client's plan and medications in force, for roles that may read clinical data."""
    if not has_permission(user, Permission.CLINICAL_READ):
        return None
    answers: list[Any] = values_from(client_summary, client, user=user)
    care = next((answer for answer in answers if isinstance(answer, CareSummary)), None)
    cards = [answer for answer in answers if isinstance(answer, ChartCard)]
    if care is None and not cards:
        return None
    return replace(care or CareSummary(plan=None), cards=cards)
