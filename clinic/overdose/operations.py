"""Overdose prevention: naloxone dispenses, overdose events, their alerts and the discharge on a death."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from clinic.audit.operations import audit, record
from clinic.auth.models import Site, User
from clinic.clients import operations as clients
from clinic.clients.models import TEDS_DEATH, Client, Episode
from clinic.clients.timeline import TimelineEntry
from clinic.core.errors import abort_problem
from clinic.core.signals import timeline_entries
from clinic.core.time import start_of_day, utcnow
from clinic.extensions import db
from clinic.notify.models import StaffNotificationKind
from clinic.notify.staff import safety_recipients, send_safety_alert
from clinic.overdose.models import NaloxoneDispense, NaloxoneFormulation, OverdoseEvent, OverdoseSource

# --- naloxone ----------------------------------------------------------------------------


def record_naloxone(
    client: Client,
    *,
    actor: User,
    dispensed_on: date,
    formulation: NaloxoneFormulation,
    quantity: int,
    education_given: bool,
) -> NaloxoneDispense:
    """Record naloxone handed to the client; each dispense is its own row."""
    most = int(current_app.config["NALOXONE_MAX_QUANTITY"])
    if not 1 <= quantity <= most:
        abort_problem(
            422,
            f"A naloxone dispense records 1 to {most} units.",
            errors={"quantity": [f"Must be between 1 and {most}."]},
        )
    dispense = NaloxoneDispense(
        client_id=client.id,
        site_id=client.site_id,
        dispensed_on=dispensed_on,
        formulation=formulation,
        quantity=quantity,
        education_given=education_given,
        recorded_by_id=actor.id,
    )
    db.session.add(dispense)
    db.session.flush()
    audit("create", dispense, details={"formulation": formulation.value, "quantity": quantity})
    return dispense


def list_naloxone(client: Client) -> Sequence[NaloxoneDispense]:
    """The client's naloxone dispenses, newest first."""
    record("naloxone_dispense.read", resource="naloxone_dispense", client_id=client.id, details={"via": "list"})
    return db.session.scalars(
        select(NaloxoneDispense)
        .where(NaloxoneDispense.client_id == client.id)
        .order_by(NaloxoneDispense.dispensed_on.desc(), NaloxoneDispense.id.desc())
    ).all()


def naloxone_status(dispenses: Sequence[NaloxoneDispense], on: date) -> dict[str, Any]:
    """Whether the client holds naloxone on ``on``, by the overdose-prevention report's rule.

    A client holds naloxone with a dispense in the ``NALOXONE_LOOKBACK_DAYS`` days up to ``on``;
    otherwise naloxone is due. ``{latest, due, due_on}``: the latest dispense up to ``on`` (None:
    never), whether naloxone is due, and the day it falls due (None when never dispensed).
    """
    lookback = int(current_app.config["NALOXONE_LOOKBACK_DAYS"])
    latest = max((d for d in dispenses if d.dispensed_on <= on), key=lambda d: (d.dispensed_on, d.id), default=None)
    due_on = latest.dispensed_on + timedelta(days=lookback) if latest is not None else None
    return {"latest": latest, "due": due_on is None or due_on <= on, "due_on": due_on, "lookback_days": lookback}


# --- overdose events ---------------------------------------------------------------------


def record_overdose(
    client: Client,
    *,
    actor: User,
    occurred_on: date,
    fatal: bool,
    naloxone_used: bool | None,
    substances: Sequence[str],
    source: OverdoseSource,
    setting: str | None = None,
    note: str | None = None,
) -> OverdoseEvent:
    """Record an overdose, whatever its source, and alert the client's clinician (safety alert ``overdose``).

    A fatal one discharges nothing yet: the answer carries the discharge a clinician confirms
    (:func:`confirm_death`).
    """
    event = OverdoseEvent(
        client_id=client.id,
        site_id=client.site_id,
        occurred_on=occurred_on,
        fatal=fatal,
        naloxone_used=naloxone_used,
        substances=sorted(set(substances)),
        setting=setting,
        source=source,
        note=note,
        recorded_by_id=actor.id,
    )
    db.session.add(event)
    db.session.flush()
    audit("create", event, details={"fatal": fatal, "source": source.value})
    _alert(client, event, actor=actor)
    return event


def _alert(client: Client, event: OverdoseEvent, *, actor: User) -> None:
    """Alert the client's clinician (else the site's supervisors, else its admins); without an active
    primary clinician the clinician who recorded the event gets it too, as for a PHQ-9 item 9 flag."""
    # No name in an alert: the recipient opens the client from it (resource and client_id).
    reported = f"Reported on {event.occurred_on.isoformat()} (source: {event.source.value.replace('_', ' ')})."
    if event.fatal:
        title = "Fatal overdose reported"
        body = f"{reported} Confirm the death to discharge the open episode with TEDS reason 6."
    else:
        title = "Overdose reported"
        body = f"{reported} Contact the client, review naloxone and the treatment plan."
    routed = safety_recipients(client.site_id, client.primary_clinician_id)
    has_clinician = client.primary_clinician_id is not None and routed == [client.primary_clinician_id]
    send_safety_alert(
        client,
        kind=StaffNotificationKind.OVERDOSE,
        title=title,
        body=body,
        resource="overdose_event",
        resource_id=event.id,
        dedupe_key=f"overdose_event:{event.id}",
        also_user_ids=() if has_clinician else (actor.id,),
    )


def list_overdoses(client: Client) -> Sequence[OverdoseEvent]:
    """The client's overdose events, newest first."""
    record("overdose_event.read", resource="overdose_event", client_id=client.id, details={"via": "list"})
    return db.session.scalars(
        select(OverdoseEvent)
        .where(OverdoseEvent.client_id == client.id)
        .order_by(OverdoseEvent.occurred_on.desc(), OverdoseEvent.id.desc())
    ).all()


def _open_episode(client_id: int) -> Episode | None:
    return db.session.scalars(
        select(Episode).where(Episode.client_id == client_id, Episode.discharged_on.is_(None))
    ).first()


def confirm_death(event: OverdoseEvent, *, actor: User, note: str | None = None) -> OverdoseEvent:
    """Confirm a fatal overdose: the client's open episode is discharged with TEDS reason 6 on its day.

    The discharge is the ordinary one (``clinic.clients.operations.discharge``). Confirming again
    changes nothing; a non-fatal event cannot be confirmed (409).
    """
    # Locked and read as it stands: two confirmations sent together discharge once.
    event = db.session.scalars(
        select(OverdoseEvent)
        .where(OverdoseEvent.id == event.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    if not event.fatal:
        abort_problem(409, "Only a fatal overdose can be confirmed as a death.", problem="overdose-not-fatal")
    if event.death_confirmed_at is not None:
        return event
    episode = _open_episode(event.client_id)
    if episode is not None:
        if event.occurred_on < episode.admitted_on:
            abort_problem(
                422,
                "The overdose is dated before the open episode's admission; correct the date first.",
                errors={"occurred_on": [f"Must be on or after {episode.admitted_on.isoformat()}."]},
            )
        clients.discharge(
            episode,
            actor=actor,
            discharged_on=event.occurred_on,
            reason_code=TEDS_DEATH,
            note=note or "Death confirmed after a fatal overdose.",
        )
        event.discharged_episode_id = episode.id
    event.death_confirmed_at = utcnow()
    event.death_confirmed_by_id = actor.id
    db.session.flush()
    audit("confirm_death", event, details={"discharged_episode_id": event.discharged_episode_id})
    return event


def discharge_prompts(events: Sequence[OverdoseEvent]) -> dict[int, dict[str, Any]]:
    """For each fatal event not yet confirmed whose client has an open episode: the discharge to confirm."""
    pending = [e for e in events if e.fatal and e.death_confirmed_at is None]
    if not pending:
        return {}
    open_episodes = select(Episode.client_id, Episode.id).where(
        Episode.client_id.in_(sorted({e.client_id for e in pending})), Episode.discharged_on.is_(None)
    )
    open_by_client: dict[int, int] = {row[0]: row[1] for row in db.session.execute(open_episodes)}
    return {
        e.id: {
            "episode_id": open_by_client[e.client_id],
            "reason_code": TEDS_DEATH,
            "discharged_on": e.occurred_on,
            "confirm_path": f"/api/v1/overdose-events/{e.id}/confirm-death",
        }
        for e in pending
        if e.client_id in open_by_client
    }


def serialise_events(events: Sequence[OverdoseEvent]) -> list[dict[str, Any]]:
    prompts = discharge_prompts(events)
    return [
        {
            **{
                c: getattr(e, c)
                for c in (
                    "id",
                    "client_id",
                    "site_id",
                    "occurred_on",
                    "fatal",
                    "naloxone_used",
                    "substances",
                    "setting",
                    "source",
                    "note",
                    "recorded_by_id",
                    "created_at",
                    "death_confirmed_at",
                    "death_confirmed_by_id",
                    "discharged_episode_id",
                )
            },
            "discharge": prompts.get(e.id),
        }
        for e in events
    ]


# --- the client's timeline ---------------------------------------------------------------


@timeline_entries.connect
def _overdose_entries(client_id: int) -> Iterable[TimelineEntry]:
    client = db.session.get(Client, client_id)
    site = db.session.get(Site, client.site_id) if client is not None else None
    zone = site.timezone if site is not None else "UTC"
    for dispense in db.session.scalars(select(NaloxoneDispense).where(NaloxoneDispense.client_id == client_id)):
        yield TimelineEntry(
            start_of_day(dispense.dispensed_on, zone),
            "naloxone_dispense",
            dispense.id,
            f"Naloxone dispensed: {dispense.quantity} x {dispense.formulation.value.replace('_', ' ')}",
            clinical=True,
        )
    for event in db.session.scalars(select(OverdoseEvent).where(OverdoseEvent.client_id == client_id)):
        what = "Fatal overdose" if event.fatal else "Overdose"
        yield TimelineEntry(
            start_of_day(event.occurred_on, zone),
            "overdose_event",
            event.id,
            f"{what} reported ({event.source.value.replace('_', ' ')})",
            clinical=True,
        )
