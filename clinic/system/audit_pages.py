"""The console's audit trail page (admin): filters, names, the chain's verification.

The list is :func:`clinic.audit.operations.search_events`, the API's ``GET /audit-events`` with its
permission and schema; reading it is audited (``audit.read``) as over the API. Users are shown by
name; clients by their id only (an administrator sees no client's record). Times are in UTC: the
trail spans every site. The panel shows the head of the chain, its last anchor and the last
verification recorded in the trail (``audit.verify``): a full walk of the chain is run only when an
administrator asks for one, never on a page view.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode

from flask import Response, request, url_for
from sqlalchemy import func, select

from clinic.audit import anchors
from clinic.audit.models import AuditEvent, Outcome
from clinic.audit.operations import record, search_events, verify_chain
from clinic.audit.schemas import AuditQuerySchema
from clinic.auth.models import User
from clinic.auth.permissions import Permission, requires
from clinic.clients.identifiers import looks_like_mrn, normalise_mrn
from clinic.clients.models import Client
from clinic.console import ConsoleBlueprint, FormErrors, load_form, page, redirect_to
from clinic.extensions import db

blp = ConsoleBlueprint("audit_pages", __name__)

#: Rows per page.
LIMIT = 50

OUTCOME_LABELS = {
    Outcome.SUCCESS.value: ("Success", "green"),
    Outcome.FAILURE.value: ("Failure", "orange"),
    Outcome.DENIED.value: ("Denied", "red"),
}
FIELD_LABELS = {
    "user_id": "User",
    "client": "Client",
    "action": "Action",
    "outcome": "Outcome",
    "from": "From",
    "to": "To",
    "cursor": "Page",
}
_FILTERS = ("user_id", "client", "action", "outcome", "from", "to")


def _client_id(raw: str, errors: FormErrors) -> int | None:
    """The client filter: an MRN (8 digits) is looked up; another whole number is a client id."""
    if not raw:
        return None
    if looks_like_mrn(raw):
        found = db.session.scalar(select(Client.id).where(Client.mrn == normalise_mrn(raw)))
        if found is None:
            errors["client"] = ["No client has this MRN."]
        return found
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31:
        return int(raw)
    errors["client"] = ["Enter a client id or an 8-digit MRN."]
    return None


def _day(raw: str, *, end: bool) -> str:
    """A day typed in the filter as an instant in UTC: its start, or its last moment."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return raw  # the schema says what is wrong with it
    if end:
        return datetime.combine(day, time.max, tzinfo=UTC).isoformat()
    return datetime.combine(day, time.min, tzinfo=UTC).isoformat()


def _chain() -> dict[str, Any]:
    """The chain's head, its last anchor and the last verification recorded: cheap reads only."""
    head = db.session.execute(
        select(AuditEvent.seq, AuditEvent.at)
        .where(AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    unsealed = int(
        db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.hash.is_(None))) or 0
    )
    anchor_error = None
    try:
        mine, _elsewhere = anchors.of_this_database(anchors.configured())
    except anchors.AnchorError as exc:
        mine, anchor_error = [], str(exc)
    last_anchor = max(mine, key=lambda anchor: (anchor.anchored_at, anchor.seq)) if mine else None
    verification = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit.verify").order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    verifier = db.session.get(User, verification.user_id) if verification and verification.user_id else None
    return {
        "head_seq": head.seq if head else None,
        "head_at": head.at if head else None,
        "unsealed": unsealed,
        "anchor": last_anchor,
        "anchors_to_log": anchors.file_target() is None,
        "anchor_error": anchor_error,
        "verification": verification,
        "verifier": verifier,
    }


@blp.route("/audit", methods=["GET"])
@requires(Permission.AUDIT_READ)
def audit() -> Response:
    """The audit trail, newest first, filtered by user, client, action, outcome and day (UTC)."""
    filters = {key: request.args.get(key, "").strip() for key in _FILTERS}
    errors = FormErrors()
    values: dict[str, Any] = {"limit": LIMIT}
    if filters["user_id"]:
        values["user_id"] = filters["user_id"]
    client_id = _client_id(filters["client"], errors)
    if client_id is not None:
        values["client_id"] = client_id
    for key in ("action", "outcome"):
        if filters[key]:
            values[key] = filters[key]
    if filters["from"]:
        values["from"] = _day(filters["from"], end=False)
    if filters["to"]:
        values["to"] = _day(filters["to"], end=True)
    if request.args.get("cursor"):
        values["cursor"] = request.args["cursor"]
    args, schema_errors = load_form(AuditQuerySchema(), values)
    for key, messages in schema_errors.items():
        errors.setdefault({"client_id": "client"}.get(key, key), []).extend(messages)
    found = search_events(**args) if not errors else None
    events = found.items if found else []
    users = list(db.session.scalars(select(User).order_by(User.name, User.id)))
    names = {user.id: user for user in users}
    keep = {key: value for key, value in filters.items() if value}
    next_url = None
    if found and found.next_cursor:
        next_url = url_for("audit_pages.audit") + "?" + urlencode({**keep, "cursor": found.next_cursor})
    return page(
        "system/audit.html",
        status=422 if errors else 200,
        filters=filters,
        errors=errors,
        labels=FIELD_LABELS,
        events=events,
        names=names,
        user_options=[(user.id, f"{user.name} ({user.role.value})") for user in users],
        outcome_options=[(value, words[0]) for value, words in OUTCOME_LABELS.items()],
        outcome_labels=OUTCOME_LABELS,
        next_url=next_url,
        paging=bool(request.args.get("cursor")),
        filtered=bool(keep),
        chain=_chain(),
        verified=request.args.get("verified", ""),
    )


@blp.route("/audit/verify", methods=["POST"])
@requires(Permission.AUDIT_READ)
def verify() -> Response:
    """Walk the whole chain against the configured anchors now, and record the result in the trail."""
    try:
        known, _elsewhere = anchors.of_this_database(anchors.configured())
    except anchors.AnchorError:
        known = []
    result = verify_chain(anchors=known)
    details: dict[str, Any] = {"checked": result.checked, "anchors": result.anchors, "unsealed": result.unsealed}
    if result.broken is not None:
        details["broken_entry"] = result.broken.id
        details["reason"] = result.broken.reason
    record(
        "audit.verify",
        resource="audit_chain",
        outcome=Outcome.SUCCESS if result.broken is None else Outcome.FAILURE,
        details=details,
    )
    return redirect_to(url_for("audit_pages.audit", verified="intact" if result.broken is None else "broken"))
