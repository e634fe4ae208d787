"""The console's audit trail page (admin): filters, names, the chain's verification.

The list is :func:`clinic.audit.operations.search_events`, the API's ``GET /audit-events`` with its
permission and schema; reading it is audited (``audit.read``) as over the API. Users are shown by
name; clients by their id only (an administrator sees no client's record). Times are in UTC: the
trail spans every site. The panel shows the head of the chain, its last anchor and the last
verification recorded in the trail (``audit.verify``): a full walk of the chain is run only when an
administrator asks for one, never on a page view.

The filter form is posted, never sent as a query: a client may be named by MRN, and an MRN must not
land in a URL (the browser's history, a proxy's log). The post resolves the MRN to the client's id
(audited as a read of the client) and redirects to ``/audit?client_id=N&...``: ids and choices only.
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
from clinic.clients.identifiers import is_valid_mrn, looks_like_mrn, normalise_mrn
from clinic.clients.models import Client
from clinic.console import ConsoleBlueprint, FormErrors, as_id, load_form, page, redirect_to
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
#: The form's fields; the page's address carries the same but ``client_id`` for ``client``.
_FIELDS = ("user_id", "client", "action", "outcome", "from", "to")
_QUERY = ("user_id", "client_id", "action", "outcome", "from", "to")


def _resolve_client(raw: str, errors: FormErrors) -> int | None:
    """The client field as posted: an 8-digit MRN is looked up (a read, audited); another whole number is an id.

    An administrator's audit trail spans every site, so the MRN is looked up among every site's
    clients: "no client has this MRN" tells them nothing the trail does not.
    """
    if not raw:
        return None
    if looks_like_mrn(raw):
        if not is_valid_mrn(raw):
            errors["client"] = ["Not a valid MRN (check digit mismatch)."]
            return None
        found = db.session.scalar(select(Client.id).where(Client.mrn == normalise_mrn(raw)))
        if found is None:
            errors["client"] = ["No client has this MRN."]
            return None
        record("client.read", resource="client", resource_id=found, client_id=found, details={"via": "audit-filter"})
        return found
    ident = as_id(raw)
    if ident is None:
        errors["client"] = ["Enter a client id or an 8-digit MRN."]
    return ident


def _search_args(filters: dict[str, str], client_id: int | None, errors: FormErrors) -> dict[str, Any]:
    """The filters as :func:`search_events` takes them, read by the API's schema; its errors land on ``errors``."""
    values: dict[str, Any] = {"limit": LIMIT}
    if filters["user_id"]:
        values["user_id"] = filters["user_id"]
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
    return args


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
    """The audit trail, newest first, filtered by user, client (by id), action, outcome and day (UTC)."""
    query = {key: request.args.get(key, "").strip() for key in _QUERY}
    errors = FormErrors()
    client_id = None
    if query["client_id"]:
        client_id = as_id(query["client_id"])
        if client_id is None:
            errors["client"] = ["Enter a client id or an 8-digit MRN."]
    if request.args.get("client"):
        # An address from before the form was posted: whatever it holds is neither read nor shown.
        errors["client"] = ["Enter the client in the form: a client is not read from the address."]
    args = _search_args(query, client_id, errors)
    found = search_events(**args) if not errors else None
    keep = {key: value for key, value in query.items() if value}
    next_url = None
    if found and found.next_cursor:
        next_url = url_for("audit_pages.audit") + "?" + urlencode({**keep, "cursor": found.next_cursor})
    filters = {key: query[key] for key in _FIELDS if key != "client"}
    filters["client"] = str(client_id) if client_id is not None else ""
    return _audit_page(filters, errors, found.items if found else [], next_url=next_url, filtered=bool(keep))


@blp.route("/audit", methods=["POST"])
@requires(Permission.AUDIT_READ)
def filter_trail() -> Response:
    """The filter form: the client's MRN is resolved to their id here, then 303 to the list's address (ids only)."""
    filters = {key: request.form.get(key, "").strip()[:100] for key in _FIELDS}
    errors = FormErrors()
    client_id = _resolve_client(filters["client"], errors)
    _search_args(filters, client_id, errors)
    if errors:
        return _audit_page(filters, errors, [], next_url=None, filtered=True)
    values = {**filters, "client_id": "" if client_id is None else str(client_id)}
    query = urlencode({key: values[key] for key in _QUERY if values[key]})
    return redirect_to(url_for("audit_pages.audit") + (f"?{query}" if query else ""))


def _audit_page(
    filters: dict[str, str], errors: FormErrors, events: list[AuditEvent], *, next_url: str | None, filtered: bool
) -> Response:
    users = list(db.session.scalars(select(User).order_by(User.name, User.id)))
    return page(
        "system/audit.html",
        status=422 if errors else 200,
        filters=filters,
        errors=errors,
        labels=FIELD_LABELS,
        events=events,
        names={user.id: user for user in users},
        user_options=[(user.id, f"{user.name} ({user.role.value})") for user in users],
        outcome_options=[(value, words[0]) for value, words in OUTCOME_LABELS.items()],
        outcome_labels=OUTCOME_LABELS,
        next_url=next_url,
        paging=bool(request.args.get("cursor")),
        filtered=filtered,
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
