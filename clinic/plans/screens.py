"""Drug screens: per-substance results, observed or not, and missed screens.

A screen recorded wrongly is marked entered in error (:func:`mark_entered_in_error`): it stays on
record, marked, and counts nowhere — not in the reports, the timeline or the medication rules
(each reads :meth:`DrugScreen.counts`), nor in the CM streaks, except that an incentive it already
earned stays in the ledger (:mod:`clinic.plans.cm_ledger`). The right result is a new screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from clinic.audit.operations import audit, record
from clinic.auth.models import User
from clinic.clients.models import Client
from clinic.clients.timeline import TimelineEntry
from clinic.core.errors import abort_problem
from clinic.core.signals import timeline_entries
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.plans import cm
from clinic.plans.models import DrugScreen, DrugScreenResult, ScreenResult

_FUTURE_TOLERANCE_SECONDS = 300


def _check(collected_at: datetime | None, missed: bool, results: dict[str, ScreenResult] | None) -> None:
    if collected_at is not None and (collected_at - utcnow()).total_seconds() > _FUTURE_TOLERANCE_SECONDS:
        abort_problem(
            422, "A screen cannot be collected in the future.", errors={"collected_at": ["Must not be in the future."]}
        )
    if missed and results:
        abort_problem(422, "A missed screen has no results.", errors={"results": ["Must be empty when missed."]})
    if not missed and not results:
        abort_problem(
            422,
            "Give at least one substance result, or record the screen as missed.",
            errors={"results": ["At least one substance result is required."]},
        )


def _set_results(screen: DrugScreen, results: dict[str, ScreenResult]) -> None:
    db.session.execute(delete(DrugScreenResult).where(DrugScreenResult.screen_id == screen.id))
    db.session.add_all(
        DrugScreenResult(screen_id=screen.id, substance=substance, result=result)
        for substance, result in sorted(results.items())
    )


def results_of(screen_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    by_screen: dict[int, dict[str, str]] = {i: {} for i in screen_ids}
    if screen_ids:
        for row in db.session.scalars(select(DrugScreenResult).where(DrugScreenResult.screen_id.in_(list(screen_ids)))):
            by_screen[row.screen_id][row.substance] = row.result.value
    return by_screen


def record_screen(
    client: Client,
    *,
    actor: User,
    collected_at: datetime,
    observed: bool = False,
    missed: bool = False,
    results: dict[str, ScreenResult] | None = None,
) -> tuple[DrugScreen, bool]:
    """Record a screen; recording one with the same collection time again corrects it (no duplicate)."""
    _check(collected_at, missed, results)
    screen = _counted_screen_at(client, collected_at)
    created = screen is None
    if screen is None:
        screen = DrugScreen(client_id=client.id, site_id=client.site_id, collected_at=collected_at)
        try:
            with db.session.begin_nested():
                db.session.add(screen)
                db.session.flush()
        except IntegrityError:
            # The same screen sent at the same moment (a form submitted twice, a retry): the other
            # request recorded it; this one records the result on it, as a second sending does.
            if screen in db.session:
                db.session.expunge(screen)
            screen = _counted_screen_at(client, collected_at)
            if screen is None:  # pragma: no cover - the unique index named a counted screen at this time
                abort_problem(409, "Another screen of this client has that collection time.")
            created = False
    screen.observed = observed
    screen.missed = missed
    screen.recorded_by_id = actor.id
    db.session.flush()
    _set_results(screen, results or {})
    db.session.flush()
    audit("create" if created else "update", screen)
    return screen, created


def _counted_screen_at(client: Client, collected_at: datetime) -> DrugScreen | None:
    """The client's counted screen collected at that instant, locked (PostgreSQL): a mark entered in
    error being written makes this wait, then the marked screen no longer matches, so a result sent
    meanwhile is recorded as a new screen rather than on the marked one."""
    return db.session.scalars(
        select(DrugScreen)
        .where(DrugScreen.client_id == client.id, DrugScreen.collected_at == collected_at, DrugScreen.counts())
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def update_screen(screen: DrugScreen, changes: dict[str, Any], *, actor: User) -> DrugScreen:
    """Correct a screen; the CM ledger, computed from screens, follows without double counting."""
    # A mark entered in error being written: wait for it, then refuse (PostgreSQL locks the row).
    db.session.refresh(screen, with_for_update=True)
    _refuse_entered_in_error(screen)
    missed = changes.get("missed", screen.missed)
    results = changes.get("results")
    current = results_of([screen.id])[screen.id]
    effective_results = (
        results if results is not None else ({} if missed else {k: ScreenResult(v) for k, v in current.items()})
    )
    _check(changes.get("collected_at"), missed, effective_results)
    if "collected_at" in changes and changes["collected_at"] != screen.collected_at:
        clash = db.session.scalars(
            select(DrugScreen.id).where(
                DrugScreen.client_id == screen.client_id,
                DrugScreen.collected_at == changes["collected_at"],
                DrugScreen.id != screen.id,
                DrugScreen.counts(),
            )
        ).first()
        if clash is not None:
            abort_problem(
                409,
                "Another screen of this client has that collection time.",
                errors={"collected_at": [f"Screen {clash} was collected then."]},
            )
        screen.collected_at = changes["collected_at"]
    if "observed" in changes:
        screen.observed = changes["observed"]
    screen.missed = missed
    screen.recorded_by_id = actor.id
    screen.updated_at = utcnow()
    _set_results(screen, effective_results)
    db.session.flush()
    audit("update", screen, details={"fields": sorted(changes)})
    return screen


def _refuse_entered_in_error(screen: DrugScreen) -> None:
    if screen.entered_in_error_at is not None:
        abort_problem(
            409,
            "This screen is marked entered in error: it stays as recorded. Record the right result as a new screen.",
            problem="already-entered-in-error",
        )


def mark_entered_in_error(screen: DrugScreen, *, reason: str, actor: User) -> DrugScreen:
    """Mark a screen entered in error: it stays, marked (who, when, why), and from now on counts nowhere.

    An incentive the screen already earned in a CM program was handed to the client at the visit:
    it stays in the program's ledger, against the cap, marked (:mod:`clinic.plans.cm_ledger`).
    """
    # Two marks at once: the second waits here, then finds the screen marked (PostgreSQL locks the row).
    db.session.refresh(screen, with_for_update=True)
    _refuse_entered_in_error(screen)
    kept = cm.keep_incentives(screen)
    screen.entered_in_error_at = utcnow()
    screen.entered_in_error_reason = reason.strip()
    screen.entered_in_error_by_id = actor.id
    db.session.flush()
    audit(
        "update",
        screen,
        details={
            "entered_in_error": True,
            "collected_at": screen.collected_at.isoformat(),
            "cm_incentives_kept": [k.program_id for k in kept],
        },
    )
    return screen


def list_for_client(client: Client) -> Sequence[DrugScreen]:
    record("drug_screen.read", resource="drug_screen", client_id=client.id, details={"via": "list"})
    return db.session.scalars(
        select(DrugScreen).where(DrugScreen.client_id == client.id).order_by(DrugScreen.collected_at.desc())
    ).all()


def serialise(screens: Sequence[DrugScreen]) -> list[dict[str, Any]]:
    results = results_of([s.id for s in screens])
    return [
        {
            "id": s.id,
            "client_id": s.client_id,
            "collected_at": s.collected_at,
            "observed": s.observed,
            "missed": s.missed,
            "results": results[s.id],
            "recorded_by_id": s.recorded_by_id,
            "entered_in_error": None
            if s.entered_in_error_at is None
            else {
                "reason": s.entered_in_error_reason,
                "by_user_id": s.entered_in_error_by_id,
                "at": s.entered_in_error_at,
            },
        }
        for s in screens
    ]


@timeline_entries.connect
def _screen_entries(client_id: int) -> Iterable[TimelineEntry]:
    screens = db.session.scalars(select(DrugScreen).where(DrugScreen.client_id == client_id, DrugScreen.counts())).all()
    results = results_of([s.id for s in screens])
    for screen in screens:
        if screen.missed:
            summary = "Drug screen missed"
        else:
            positives = sorted(k for k, v in results[screen.id].items() if v == "positive")
            summary = "Drug screen: " + (("positive for " + ", ".join(positives)) if positives else "no positives")
        yield TimelineEntry(screen.collected_at, "drug_screen", screen.id, summary, clinical=True)
