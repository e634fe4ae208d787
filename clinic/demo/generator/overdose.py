# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Overdose prevention (docs/overdose.md): naloxone handed to clients, and the overdoses reported about them.

About two in three clients on an opioid agonist hold naloxone from a dispense in the last year (fewer
of the others), with overdose education; refills come every six to eleven months and after an
overdose. Overdoses are reported at a few per hundred clients a year, mostly non-fatal, from mixed
sources, each alerting the client's clinician. A death (TEDS reason 6) is sometimes a fatal
overdose, confirmed by a clinician, which is what discharged the episode.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from clinic.demo.generator.alerts import add_safety_alert
from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.medications import AGONISTS, NALTREXONE, Order
from clinic.demo.generator.sites import SiteStaff

#: Non-fatal overdoses per client and year in treatment, by medication (none, naltrexone, agonist).
OVERDOSE_RATES = {"none": 0.07, "naltrexone": 0.05, "agonist": 0.03}
#: Share of clients holding naloxone, by medication.
NALOXONE_RATES = {"none": 0.4, "naltrexone": 0.5, "agonist": 0.66}
SOURCES = (("client_report", 40), ("ed_notice", 30), ("family", 20), ("other", 10))
SETTINGS = (("home", 40), ("friend's home", 15), ("street", 15), ("shelter", 10), ("car", 5), (None, 15))
SUBSTANCE_MIXES: tuple[tuple[list[str], int], ...] = (
    (["fentanyl"], 45),
    (["fentanyl", "xylazine"], 20),
    (["fentanyl", "cocaine"], 10),
    (["fentanyl", "benzodiazepines"], 8),
    (["heroin"], 5),
    (["oxycodone"], 4),
    (["alcohol", "fentanyl"], 4),
    ([], 4),
)
FORMULATIONS = (("nasal_4mg", 78), ("nasal_8mg", 8), ("im_0_4mg", 10), ("other", 4))
#: Deaths (TEDS reason 6) that were a fatal overdose: the first in a demo, then this share, at most one
#: per this many clients (so the default demo of 200 has one).
FATAL_OVERDOSE_SHARE = 0.35
FATAL_OVERDOSE_PER_CLIENTS = 400


def _group(order: Order | None) -> str:
    if order is None:
        return "none"
    return "agonist" if order.name in AGONISTS else "naltrexone" if order.name in NALTREXONE else "none"


def _poisson(ctx: Context, mean: float) -> int:
    """A Poisson count (Knuth's method: means here are small)."""
    limit, count, product = math.exp(-mean), 0, ctx.record_rng.random()
    while product > limit:
        count += 1
        product *= ctx.record_rng.random()
    return count


def _naloxone(ctx: Context, chunk: Chunk, site: SiteStaff, client_id: int, day: date, clinician_id: int) -> None:
    rng = ctx.record_rng
    formulation = weighted(rng, FORMULATIONS)
    at = ctx.instant(day, rng.randrange(9, 17), rng.randrange(0, 60), site)
    ctx.add(
        chunk,
        "naloxone_dispenses",
        {
            "id": ctx.ids.take("naloxone_dispenses"),
            "client_id": client_id,
            "site_id": site.site_id,
            "dispensed_on": day,
            "formulation": formulation,
            "quantity": weighted(rng, ((2, 80), (1, 8), (4, 12))) if formulation != "im_0_4mg" else 2,
            "education_given": rng.random() < 0.95,
            "recorded_by_id": clinician_id,
            "created_at": at,
            "updated_at": at,
        },
    )


def add_overdose_prevention(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client: Row,
    episode: Row,
    order: Order | None,
    clinician_id: int,
    *,
    fatal: bool,
) -> None:
    """Naloxone and overdoses over the episode; ``fatal``: it ends with a fatal overdose on its discharge day."""
    if not ctx.with_overdose:
        return
    rng = ctx.record_rng
    admitted_on: date = episode["admitted_on"]
    discharged_on: date | None = episode["discharged_on"]
    last = discharged_on or ctx.today
    group = _group(order)
    dispenses: list[date] = []
    if rng.random() < NALOXONE_RATES[group]:
        day = admitted_on + timedelta(days=rng.randrange(0, 21))
        while day <= last:
            dispenses.append(day)
            day += timedelta(days=rng.randrange(180, 330))
    events = sorted(
        admitted_on + timedelta(days=rng.randrange(0, (last - admitted_on).days + 1))
        for _ in range(_poisson(ctx, OVERDOSE_RATES[group] * ((last - admitted_on).days + 1) / 365))
    )
    if fatal and discharged_on is not None:
        events = [d for d in events if d < discharged_on]
    if discharged_on is None and (last - admitted_on).days >= 30 and ctx.showcase("recent_overdose", first=1, rate=0):
        events.append(ctx.today - timedelta(days=rng.randrange(1, 6)))  # what the console's alerts show first
    for day in events:
        _event(ctx, chunk, site, client, day, clinician_id, fatal=False)
        refill = day + timedelta(days=rng.randrange(1, 8))
        if refill <= last and not any(abs((refill - d).days) < 30 for d in dispenses):
            dispenses.append(refill)
    if fatal and discharged_on is not None:
        _event(ctx, chunk, site, client, discharged_on, clinician_id, fatal=True, episode=episode)
    for day in sorted(dispenses):
        _naloxone(ctx, chunk, site, client["id"], day, clinician_id)


def _event(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client: Row,
    day: date,
    clinician_id: int,
    *,
    fatal: bool,
    episode: Row | None = None,
) -> None:
    rng = ctx.record_rng
    source = "ed_notice" if fatal and rng.random() < 0.6 else weighted(rng, SOURCES)
    if fatal and source == "client_report":
        source = "family"
    reported_on = day + timedelta(days=0 if fatal else weighted(rng, ((0, 40), (1, 35), (3, 15), (7, 10))))
    at = ctx.instant(min(reported_on, ctx.today), rng.randrange(9, 17), rng.randrange(0, 60), site)
    if at > ctx.now:
        at = ctx.now - timedelta(hours=rng.randrange(1, 8), minutes=rng.randrange(0, 60))
    event_id = ctx.ids.take("overdose_events")
    row = ctx.add(
        chunk,
        "overdose_events",
        {
            "id": event_id,
            "client_id": client["id"],
            "site_id": site.site_id,
            "occurred_on": day,
            "fatal": fatal,
            "naloxone_used": weighted(rng, ((True, 65), (False, 15), (None, 20))) if not fatal else False,
            "substances": sorted(weighted(rng, SUBSTANCE_MIXES)),
            "setting": weighted(rng, SETTINGS),
            "source": source,
            "note": None,
            "recorded_by_id": clinician_id,
            "death_confirmed_at": None,
            "death_confirmed_by_id": None,
            "discharged_episode_id": None,
            "created_at": at,
            "updated_at": at,
        },
    )
    reported = f"Reported on {day.isoformat()} (source: {source.replace('_', ' ')})."
    if fatal:
        title = "Fatal overdose reported"
        body = f"{reported} Confirm the death to discharge the open episode with TEDS reason 6."
        confirmed_at = at + timedelta(hours=rng.randrange(1, 5))
        row.update(death_confirmed_at=confirmed_at, death_confirmed_by_id=clinician_id, updated_at=confirmed_at)
        if episode is not None:
            row["discharged_episode_id"] = episode["id"]
            episode.update(discharge_note="Death confirmed after a fatal overdose.", updated_at=confirmed_at)
    else:
        title = "Overdose reported"
        body = f"{reported} Contact the client, review naloxone and the treatment plan."
    # Most alerts were acknowledged within the hour, some late (escalated); some recent ones are still open.
    acknowledged: timedelta | None = weighted(
        rng, ((timedelta(minutes=rng.randrange(5, 60)), 75), (timedelta(hours=rng.randrange(5, 30)), 25))
    )
    if fatal:
        acknowledged = confirmed_at - at
    elif at > ctx.now - timedelta(days=14) and ctx.showcase("open_overdose_alert", first=1, rate=0.3):
        acknowledged = None
    add_safety_alert(
        ctx,
        chunk,
        site,
        client,
        "overdose",
        title,
        body,
        "overdose_event",
        event_id,
        f"overdose_event:{event_id}",
        at,
        acknowledged_after=acknowledged,
    )
