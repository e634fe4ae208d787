"""The intake call log: logging calls, the follow-up queue, conversion of a caller to a client."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from clinic.audit.operations import audit
from clinic.auth.models import User
from clinic.auth.permissions import read_scoped_page, require_site_in_scope, scoped_select, site_scope
from clinic.clients.models import Client
from clinic.clients.operations import register_client
from clinic.clients.timeline import TimelineEntry
from clinic.core.errors import abort_problem, field_error
from clinic.core.pagination import Page
from clinic.core.signals import timeline_entries
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.intake.models import CallOutcome, IntakeCall

#: Clock skew tolerated between a caller's device and the server for ``occurred_at``.
_FUTURE_TOLERANCE = timedelta(minutes=5)

EDITABLE_FIELDS = (
    "direction",
    "occurred_at",
    "caller_name",
    "caller_relation",
    "callback_phone",
    "referral_source",
    "reason",
    "substances",
    "risk_flags",
    "outcome",
    "follow_up_at",
    "notes",
)


def _check_occurred_at(value: datetime) -> None:
    if value > utcnow() + _FUTURE_TOLERANCE:
        abort_problem(
            422, "A call cannot have happened in the future.", errors={"occurred_at": ["Must not be in the future."]}
        )


def _clean_list(values: list[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        item = value.strip()
        if item and item not in seen:
            seen.append(item)
    return seen


def log_call(*, actor: User, site_id: int, **fields: Any) -> IntakeCall:
    """Log an inquiry call at one of the caller's sites."""
    require_site_in_scope(site_id, actor)
    _check_occurred_at(fields["occurred_at"])
    call = IntakeCall(site_id=site_id, created_by_id=actor.id)
    _apply(call, fields)
    db.session.add(call)
    db.session.flush()
    audit("create", call, details={"risk_flags": call.risk_flags} if call.risk_flags else None)
    return call


def _apply(call: IntakeCall, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name not in EDITABLE_FIELDS:
            raise ValueError(f"not an editable call field: {name}")
        cleaned = value
        if name == "substances":
            cleaned = _clean_list(value)
        if name == "risk_flags":
            cleaned = sorted({flag.value if hasattr(flag, "value") else str(flag) for flag in value})
        setattr(call, name, cleaned)
    call.has_risk_flags = bool(call.risk_flags)


def update_call(call: IntakeCall, changes: dict[str, Any]) -> IntakeCall:
    if "occurred_at" in changes:
        _check_occurred_at(changes["occurred_at"])
    _apply(call, changes)
    db.session.flush()
    audit("update", call, details={"fields": sorted(changes)})
    return call


def search_calls(
    user: User,
    *,
    limit: int,
    cursor: str | None,
    site_id: int | None = None,
    outcome: CallOutcome | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
    follow_up_due: bool | None = None,
) -> Page[IntakeCall]:
    """Calls at the caller's sites: those with risk flags first, then newest first."""
    stmt = scoped_select(IntakeCall, user)
    if site_id is not None:
        stmt = stmt.where(IntakeCall.site_id == site_id)
    if outcome is not None:
        stmt = stmt.where(IntakeCall.outcome == outcome)
    if from_ is not None:
        stmt = stmt.where(IntakeCall.occurred_at >= from_)
    if to is not None:
        stmt = stmt.where(IntakeCall.occurred_at <= to)
    if follow_up_due is True:
        stmt = stmt.where(IntakeCall.follow_up_at <= utcnow(), IntakeCall.client_id.is_(None))
    elif follow_up_due is False:
        stmt = stmt.where(
            (IntakeCall.follow_up_at.is_(None))
            | (IntakeCall.follow_up_at > utcnow())
            | IntakeCall.client_id.is_not(None)
        )
    return read_scoped_page(
        stmt,
        keys=[IntakeCall.has_risk_flags, IntakeCall.occurred_at, IntakeCall.id],
        limit=limit,
        cursor=cursor,
        via="list",
        descending=True,
    )


def _lock_unattached(call: IntakeCall) -> IntakeCall:
    """The call, locked (two coordinators at once cannot both attach it); 409 if already converted or linked."""
    locked = db.session.scalars(select(IntakeCall).where(IntakeCall.id == call.id).with_for_update()).one()
    if locked.client_id is not None:
        abort_problem(
            409,
            "This call was already converted to a client.",
            problem="already-converted",
            extra={"client_id": locked.client_id},
        )
    if locked.linked_client_id is not None:
        abort_problem(
            409,
            "This call is already linked to a client.",
            problem="already-linked",
            extra={"client_id": locked.linked_client_id},
        )
    return locked


def convert_call(call: IntakeCall, *, actor: User, allow_duplicate: bool, client_fields: dict[str, Any]) -> Client:
    """Register the caller as a prospective client linked to this call; a call converts once."""
    locked = _lock_unattached(call)
    fields = dict(client_fields)
    if fields.get("phone") is None and locked.caller_relation.value == "self":
        fields["phone"] = locked.callback_phone
    client = register_client(actor=actor, site_id=locked.site_id, allow_duplicate=allow_duplicate, **fields)
    locked.client_id = client.id
    locked.converted_at = utcnow()
    db.session.flush()
    audit("convert", locked)
    return client


def link_call(call: IntakeCall, *, client_id: int, actor: User) -> IntakeCall:
    """Attach a repeat call to the existing client who made it (a client of the call's site); once."""
    locked = _lock_unattached(call)
    client = db.session.get(Client, client_id)
    # A client of another site, or of no site of the caller's, is answered as if it did not exist.
    if client is None or client.site_id != locked.site_id or client.site_id not in site_scope(actor):
        field_error("client_id", "Not a client of this call's site.")
    locked.linked_client_id = client.id
    locked.linked_at = utcnow()
    locked.linked_by_id = actor.id
    db.session.flush()
    audit("link", locked)
    return locked


@timeline_entries.connect
def _call_entries(client_id: int) -> Iterable[TimelineEntry]:
    calls = db.session.scalars(
        select(IntakeCall).where(or_(IntakeCall.client_id == client_id, IntakeCall.linked_client_id == client_id))
    ).all()
    for call in calls:
        kind = "repeat call" if call.linked_client_id == client_id else "call"
        summary = f"{call.direction.value.capitalize()} {kind}: {call.outcome.value.replace('_', ' ')}"
        yield TimelineEntry(call.occurred_at, "intake_call", call.id, summary, clinical=False)
