"""Console pages for intake: the call log, the follow-up queue, new calls, converting a caller.

Each view mirrors a view of :mod:`clinic.intake.api`: the same permission, the same loader (the
call's read audited where the page shows it), the same schema and the same operation. What is
here beyond that is the form's shape: a date and a time field make one ``occurred_at``, the
substances are typed with commas between them, and the labels people read.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import phonenumbers
from flask import Response, request, url_for

from clinic.audit.operations import audit
from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.clients.loaders import load_client
from clinic.clients.models import Client, SexAtBirth
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    as_id,
    attempt,
    current_site_id,
    form_values,
    is_htmx,
    load_form,
    page,
    redirect_to,
    visible_id,
)
from clinic.core.phones import default_region
from clinic.core.time import local_today, start_of_day, to_local, utcnow
from clinic.intake import operations as ops
from clinic.intake.api import load_call
from clinic.intake.models import CallerRelation, CallOutcome, Direction, IntakeCall, RiskFlag
from clinic.intake.schemas import (
    ConvertSchema,
    IntakeCallCreateSchema,
    IntakeCallPatchSchema,
    IntakeCallQuerySchema,
    LinkSchema,
)

blp = ConsoleBlueprint("intake_pages", __name__)

#: Rows per page: the follow-up queue is short work, the log is read further.
QUEUE_LIMIT = 20
LOG_LIMIT = 25

DIRECTION_LABELS = {
    Direction.INBOUND.value: "They called us",
    Direction.OUTBOUND.value: "We called them",
}
RELATION_LABELS = {
    CallerRelation.SELF.value: "The person seeking care",
    CallerRelation.FAMILY.value: "Family member",
    CallerRelation.FRIEND.value: "Friend",
    CallerRelation.PROVIDER.value: "Health or social care provider",
    CallerRelation.COURT.value: "Court or probation",
    CallerRelation.OTHER.value: "Someone else",
}
OUTCOME_LABELS = {
    CallOutcome.ASSESSMENT_SCHEDULED.value: "Assessment booked",
    CallOutcome.WAITLISTED.value: "Put on the waiting list",
    CallOutcome.REFERRED_OUT.value: "Referred elsewhere",
    CallOutcome.INFO_ONLY.value: "Information only",
    CallOutcome.CALLBACK_REQUESTED.value: "Asked to be called back",
    CallOutcome.NO_ANSWER.value: "No answer",
}
#: The risk flags, the most urgent first; the first two come with the steps to take at once.
RISK_LABELS = {
    RiskFlag.SUICIDAL_IDEATION.value: "Thoughts of suicide",
    RiskFlag.RECENT_OVERDOSE.value: "Recent overdose",
    RiskFlag.WITHDRAWAL_NOW.value: "In withdrawal now",
    RiskFlag.PREGNANT.value: "Pregnant",
    RiskFlag.INJECTION_USE.value: "Injects drugs",
}
URGENT_RISKS = (RiskFlag.SUICIDAL_IDEATION.value, RiskFlag.RECENT_OVERDOSE.value)
SEX_LABELS = {
    SexAtBirth.FEMALE.value: "Female",
    SexAtBirth.MALE.value: "Male",
    SexAtBirth.INTERSEX.value: "Intersex",
    SexAtBirth.UNKNOWN.value: "Not known or not given",
}
LANGUAGES = (
    ("en", "English"), ("es", "Spanish"), ("zh", "Chinese"), ("vi", "Vietnamese"), ("ar", "Arabic"),
    ("ht", "Haitian Creole"), ("ru", "Russian"), ("pt", "Portuguese"), ("fr", "French"), ("ko", "Korean"),
    ("tl", "Tagalog"),
)

#: Field names of the call form (a date and a time field for each instant) and their labels.
CALL_FORM_LABELS = {
    "site_id": "Site",
    "direction": "Direction",
    "occurred_date": "Date of the call",
    "caller_name": "Caller's name",
    "caller_relation": "Who is calling",
    "callback_phone": "Phone number to call back",
    "referral_source": "Referred by",
    "reason": "Reason for calling",
    "substances": "Substances used",
    "risk_flags": "Risks the caller mentioned",
    "outcome": "Outcome of the call",
    "follow_up_date": "Follow up on",
    "notes": "Notes",
}
CONVERT_LABELS = {
    "first_name": "Given name",
    "last_name": "Family name",
    "date_of_birth": "Date of birth",
    "sex_at_birth": "Sex at birth",
    "phone": "Phone number",
    "email": "Email address",
    "preferred_language": "Preferred language",
}
#: What to say of a required field left empty (the schema's "Missing data for required field.").
_REQUIRED = {
    "site_id": "Choose the site.",
    "direction": "Choose whether they called us or we called them.",
    "occurred_date": "Enter the date and time of the call.",
    "caller_name": "Enter the caller's name.",
    "caller_relation": "Choose who is calling.",
    "callback_phone": "Enter a phone number to call back.",
    "referral_source": "Enter who referred them, or how they heard of us.",
    "reason": "Enter the reason for calling.",
    "outcome": "Choose the outcome of the call.",
    "first_name": "Enter the given name.",
    "last_name": "Enter the family name.",
    "date_of_birth": "Enter the date of birth.",
}
_MISSING = "Missing data for required field."
#: The schema's name of a field, to the form's (the date half of an instant carries its errors).
_FORM_FIELD = {"occurred_at": "occurred_date", "follow_up_at": "follow_up_date", "from": "from", "to": "to"}


# --- presentation helpers ------------------------------------------------------------------------


def national_phone(e164: str | None) -> str:
    """``(212) 555-0134`` for a number of the clinic's region, the international form otherwise."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    region = phonenumbers.region_code_for_number(number)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if region == default_region()
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return str(phonenumbers.format_number(number, style))


def follow_up_state(call: IntakeCall, zone: str, now: datetime | None = None) -> tuple[str, str] | None:
    """The follow-up of a call in words and the tag's colour: Overdue, Due today, or its date.

    As in the API's follow-up queue, a call converted to a client has no follow-up left.
    """
    if call.follow_up_at is None or call.client_id is not None:
        return None
    now = now or utcnow()
    due_day = to_local(call.follow_up_at, zone).date()
    today = to_local(now, zone).date()
    if due_day < today:
        return "Overdue", "red"
    if due_day == today:
        return ("Due today", "orange") if call.follow_up_at <= now else ("Later today", "yellow")
    return "Upcoming", "blue"


def _user_sites(user: User) -> dict[int, Site]:
    return {site.id: site for site in sorted(user.sites, key=lambda s: s.name)}


def _zone(sites: dict[int, Site], site_id: int | None) -> str:
    site = sites.get(site_id) if site_id is not None else None
    if site is None and sites:
        site = sites.get(current_site_id() or 0) or next(iter(sites.values()))
    return site.timezone if site is not None else "UTC"


def _local_now(zone: str) -> datetime:
    return utcnow().astimezone(ZoneInfo(zone))


@blp.context_processor
def _labels() -> dict[str, Any]:
    return {
        "DIRECTION_LABELS": DIRECTION_LABELS,
        "RELATION_LABELS": RELATION_LABELS,
        "OUTCOME_LABELS": OUTCOME_LABELS,
        "RISK_LABELS": RISK_LABELS,
        "URGENT_RISKS": URGENT_RISKS,
        "SEX_LABELS": SEX_LABELS,
        "follow_up_state": follow_up_state,
        "national_phone": national_phone,
    }


def _form_errors(errors: FormErrors) -> FormErrors:
    """Errors keyed by the form's fields: ``risk_flags.0`` → ``risk_flags``, ``occurred_at`` → its date."""
    mapped = FormErrors()
    for key, messages in errors.items():
        head = key.split(".", 1)[0]
        name = _FORM_FIELD.get(head, head)
        for message in messages:
            said = _REQUIRED.get(name, message) if message == _MISSING else message
            if said not in mapped.setdefault(name, []):
                mapped[name].append(said)
    return mapped


def _instant(values: dict[str, Any], prefix: str) -> str | None:
    """The site's wall-clock time typed as ``<prefix>_date`` and ``<prefix>_time`` (None: both empty)."""
    day = str(values.get(f"{prefix}_date") or "").strip()
    clock = str(values.get(f"{prefix}_time") or "").strip()
    if not day and not clock:
        return None
    return f"{day}T{clock}"


def _instant_errors(values: dict[str, Any], prefix: str) -> list[str]:
    day = str(values.get(f"{prefix}_date") or "").strip()
    clock = str(values.get(f"{prefix}_time") or "").strip()
    if day and not clock:
        return ["Enter the time as well as the date."]
    if clock and not day:
        return ["Enter the date as well as the time."]
    return []


# --- the call log and the follow-up queue --------------------------------------------------------


def _chosen_site(sites: dict[int, Site]) -> int | None:
    """The site the page shows: ``?site_id=`` (``all``: every site of the user's), else the current one.

    Any other site (or text) is the "page not found" page, as its calls would be.
    """
    raw = request.args.get("site_id")
    if raw == "all":
        return None if len(sites) > 1 else current_site_id()
    return visible_id(raw, sites) or current_site_id()


def _day_bounds(raw: str, zone: str, *, end: bool) -> str:
    """A date typed in a filter as an instant of the site's day (its start, or its last moment)."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return raw  # the schema says what is wrong with it
    if end:
        return (start_of_day(day + timedelta(days=1), zone) - timedelta(microseconds=1)).isoformat()
    return start_of_day(day, zone).isoformat()


@blp.route("/intake", methods=["GET"])
@requires(Permission.INTAKE_READ)
def queue() -> Response:
    """The follow-up queue (follow-ups due, the most urgent first) and the call log (risk first)."""
    user = authenticated_user()
    sites = _user_sites(user)
    site_id = _chosen_site(sites)
    zone = _zone(sites, site_id)
    filters = {key: request.args.get(key, "").strip() for key in ("outcome", "from", "to")}
    common: dict[str, Any] = {"site_id": site_id} if site_id is not None else {}

    due_values = {**common, "follow_up_due": "true", "limit": QUEUE_LIMIT}
    if request.args.get("follow_up_cursor"):
        due_values["cursor"] = request.args["follow_up_cursor"]
    log_values: dict[str, Any] = {**common, "limit": LOG_LIMIT}
    if request.args.get("cursor"):
        log_values["cursor"] = request.args["cursor"]
    if filters["outcome"]:
        log_values["outcome"] = filters["outcome"]
    if filters["from"]:
        log_values["from"] = _day_bounds(filters["from"], zone, end=False)
    if filters["to"]:
        log_values["to"] = _day_bounds(filters["to"], zone, end=True)

    due_args, due_errors = load_form(IntakeCallQuerySchema(), due_values)
    log_args, log_errors = load_form(IntakeCallQuerySchema(), log_values)
    errors = _form_errors(FormErrors({**due_errors, **log_errors}))
    due_page = ops.search_calls(user, **due_args) if not due_errors else None
    log_page = ops.search_calls(user, **log_args) if not log_errors else None

    # Within the page: calls with a risk first (the API's order), then the longest overdue.
    due_calls = sorted(due_page.items, key=lambda c: (not c.has_risk_flags, c.follow_up_at)) if due_page else []
    keep = {"site_id": request.args.get("site_id", "")} | filters
    keep = {key: value for key, value in keep.items() if value}
    done = request.args.get("done", "")
    return page(
        "intake/queue.html",
        status=422 if errors else 200,
        user_sites=sites,
        site_options=[("all", "All your sites"), *((site.id, site.name) for site in sites.values())],
        site_id=site_id,
        site=sites.get(site_id) if site_id is not None else None,
        filters=filters,
        errors=errors,
        due_calls=due_calls,
        due_next=_page_url(keep, follow_up_cursor=due_page.next_cursor) if due_page and due_page.next_cursor else None,
        calls=log_page.items if log_page else [],
        log_next=_page_url(keep, cursor=log_page.next_cursor) if log_page and log_page.next_cursor else None,
        paging=bool(request.args.get("cursor") or request.args.get("follow_up_cursor")),
        filtered=bool(filters["outcome"] or filters["from"] or filters["to"]),
        done_call_id=as_id(done),
        outcomes=list(OUTCOME_LABELS.items()),
    )


def _page_url(keep: dict[str, str], **cursor: str | None) -> str:
    query = {**keep, **{key: value for key, value in cursor.items() if value}}
    return url_for("intake_pages.queue") + ("?" + urlencode(query) if query else "")


# --- logging a call ------------------------------------------------------------------------------


def _call_values(form: dict[str, Any], *, for_update: bool) -> tuple[dict[str, Any], FormErrors]:
    """The schema's body from the posted form, and the errors of its date-and-time pairs."""
    values: dict[str, Any] = {}
    for name in ("direction", "caller_name", "caller_relation", "callback_phone", "referral_source", "reason",
                 "outcome", "notes"):
        if name in form:
            values[name] = form[name]
    if for_update and not str(form.get("notes", "")).strip():
        values["notes"] = None
    errors = FormErrors()
    for prefix, field in (("occurred", "occurred_at"), ("follow_up", "follow_up_at")):
        problems = _instant_errors(form, prefix)
        if problems:
            errors[f"{prefix}_date"] = problems
            continue
        instant = _instant(form, prefix)
        if instant is not None:
            values[field] = instant
        elif field == "follow_up_at" and for_update:
            values[field] = None
    raw_substances = str(form.get("substances", ""))
    values["substances"] = [item.strip() for item in raw_substances.split(",") if item.strip()]
    values["risk_flags"] = list(form.get("risk_flags", []))
    if not for_update and form.get("site_id"):
        # Another site's id (or text) is the "page not found" page: a site the user cannot see.
        values["site_id"] = visible_id(form["site_id"], authenticated_user().site_ids)
    return values, errors


def _call_form(*, call: IntakeCall | None, values: dict[str, Any], errors: FormErrors, status: int = 200) -> Response:
    user = authenticated_user()
    sites = _user_sites(user)
    return page(
        "intake/call_form.html",
        status=status,
        call=call,
        values=values,
        errors=errors,
        user_sites=sites,
        site_choices=[(str(site.id), site.name) for site in sites.values()],
        labels=CALL_FORM_LABELS,
        outcomes=list(OUTCOME_LABELS.items()),
    )


@blp.route("/intake/calls/new", methods=["GET"])
@requires(Permission.INTAKE_WRITE)
def new_call() -> Response:
    """The new-call form, its time the site's clock now."""
    sites = _user_sites(authenticated_user())
    site_id = current_site_id()
    now = _local_now(_zone(sites, site_id))
    values = {
        "site_id": str(site_id or ""),
        "direction": Direction.INBOUND.value,
        "occurred_date": now.date().isoformat(),
        "occurred_time": now.strftime("%H:%M"),
        "risk_flags": [],
    }
    return _call_form(call=None, values=values, errors=FormErrors())


@blp.route("/intake/calls/new", methods=["POST"])
@requires(Permission.INTAKE_WRITE)
def create_call() -> Response:
    """Log the call (POST /intake-calls), then show it with what to do next."""
    form = form_values(lists=("risk_flags",))
    values, errors = _call_values(form, for_update=False)
    data, schema_errors = load_form(IntakeCallCreateSchema(), values)
    errors = _form_errors(FormErrors({**schema_errors, **errors}))
    if not errors:
        call, op_errors = attempt(ops.log_call, actor=authenticated_user(), **data)
        if not op_errors:
            return redirect_to(url_for("intake_pages.call", call_id=call.id, logged=1))
        errors = _form_errors(op_errors)
    return _call_form(call=None, values=form, errors=errors, status=422)


def _values_of(call: IntakeCall, zone: str) -> dict[str, Any]:
    """The form's values for a call being corrected."""
    occurred = to_local(call.occurred_at, zone)
    follow = to_local(call.follow_up_at, zone) if call.follow_up_at else None
    return {
        "direction": call.direction.value,
        "occurred_date": occurred.date().isoformat(),
        "occurred_time": occurred.strftime("%H:%M"),
        "caller_name": call.caller_name,
        "caller_relation": call.caller_relation.value,
        "callback_phone": national_phone(call.callback_phone),
        "referral_source": call.referral_source,
        "reason": call.reason,
        "substances": ", ".join(call.substances or []),
        "risk_flags": list(call.risk_flags or []),
        "outcome": call.outcome.value,
        "follow_up_date": follow.date().isoformat() if follow else "",
        "follow_up_time": follow.strftime("%H:%M") if follow else "",
        "notes": call.notes or "",
    }


@blp.route("/intake/calls/<int:call_id>/edit", methods=["GET"])
@requires(Permission.INTAKE_WRITE)
def edit_call(call_id: int) -> Response:
    """The call's details in the form, to correct or complete them."""
    call = load_call(call_id, audit_read=True)
    zone = _zone(_user_sites(authenticated_user()), call.site_id)
    return _call_form(call=call, values=_values_of(call, zone), errors=FormErrors())


@blp.route("/intake/calls/<int:call_id>/edit", methods=["POST"])
@requires(Permission.INTAKE_WRITE)
def update_call(call_id: int) -> Response:
    """Correct or complete the call (PATCH /intake-calls/{id} with every field of the form)."""
    call = load_call(call_id)
    form = form_values(lists=("risk_flags",), drop_empty=False)
    values, errors = _call_values(form, for_update=True)
    data, schema_errors = load_form(IntakeCallPatchSchema(), values)
    errors = _form_errors(FormErrors({**schema_errors, **errors}))
    if not errors:
        _, op_errors = attempt(ops.update_call, call, data)
        if not op_errors:
            return redirect_to(url_for("intake_pages.call", call_id=call.id, saved=1))
        errors = _form_errors(op_errors)
    return _call_form(call=_shown(call), values=form, errors=errors, status=422)


# --- one call ------------------------------------------------------------------------------------


def _shown(call: IntakeCall) -> IntakeCall:
    """A page showing the call again after a form (its errors, the form to review) is a read of the call.

    It is audited as ``GET /intake-calls/{id}`` is; the refused change itself was undone (``attempt``).
    """
    audit("read", call)
    return call


def _attached_client(call: IntakeCall) -> Client | None:
    """The client the call became or was linked to (of the call's site, so in the reader's scope).

    Its read is part of the call's, whose audit event names the client.
    """
    client_id = call.client_id or call.linked_client_id
    return load_client(client_id) if client_id is not None else None


def _call_page(
    call: IntakeCall, *, errors: FormErrors | None = None, values: dict[str, Any] | None = None, status: int = 200
) -> Response:
    sites = _user_sites(authenticated_user())
    site = sites.get(call.site_id)
    flags = [flag for flag in RISK_LABELS if flag in (call.risk_flags or [])]
    return page(
        "intake/call.html",
        status=status,
        call=call,
        site=site,
        zone=site.timezone if site else "UTC",
        today_local=to_local(utcnow(), site.timezone if site else "UTC").date(),
        flags=flags,
        urgent=[flag for flag in flags if flag in URGENT_RISKS],
        client=_attached_client(call),
        errors=errors or FormErrors(),
        values=values or {},
        outcomes=list(OUTCOME_LABELS.items()),
        notice=next((key for key in ("logged", "saved", "followed_up", "closed", "converted", "linked")
                     if request.args.get(key) == "1"), None),
    )


@blp.route("/intake/calls/<int:call_id>", methods=["GET"])
@requires(Permission.INTAKE_READ)
def call(call_id: int) -> Response:
    """The call, its follow-up, and what can be done with it (GET /intake-calls/{id}, audited)."""
    return _call_page(load_call(call_id, audit_read=True))


@blp.route("/intake/calls/<int:call_id>/follow-up", methods=["POST"])
@requires(Permission.INTAKE_WRITE)
def record_follow_up(call_id: int) -> Response:
    """Record a call back: its outcome and the next follow-up, if any (PATCH /intake-calls/{id}).

    ``close`` ends the follow-up without a new outcome. From the queue's row (htmx) the answer is
    the row, saying what happened; otherwise back to the queue or the call.
    """
    call = load_call(call_id)
    form = form_values()
    from_queue = form.pop("return_to", "") == "queue"
    closing = form.pop("close", None) is not None
    errors = FormErrors()
    values: dict[str, Any] = {"follow_up_at": None}
    if not closing:
        if form.get("outcome"):
            values["outcome"] = form["outcome"]
        else:
            errors["outcome"] = ["Choose what came of the call back."]
        problems = _instant_errors(form, "follow_up")
        if problems:
            errors["follow_up_date"] = problems
        else:
            values["follow_up_at"] = _instant(form, "follow_up")
    data, schema_errors = load_form(IntakeCallPatchSchema(), values) if not errors else ({}, FormErrors())
    errors = _form_errors(FormErrors({**schema_errors, **errors}))
    if not errors:
        _, op_errors = attempt(ops.update_call, call, data)
        errors = _form_errors(op_errors)
    if errors:
        _shown(call)
        if from_queue and is_htmx():
            # htmx swaps only a 2xx answer: the row comes back with its errors beside the fields.
            return _follow_up_row(call, errors=errors, values=form)
        return _call_page(call, errors=errors, values=form, status=422)
    if from_queue and is_htmx():
        return _follow_up_row(call, done=True)
    if from_queue:
        return redirect_to(url_for("intake_pages.queue", done=call.id))
    done = "closed" if closing else "followed_up"
    return redirect_to(url_for("intake_pages.call", call_id=call.id) + f"?{done}=1")


def _follow_up_row(
    call: IntakeCall, *, done: bool = False, errors: FormErrors | None = None, values: dict[str, Any] | None = None
) -> Response:
    sites = _user_sites(authenticated_user())
    return page(
        "intake/_follow_up_row.html",
        call=call,
        zone=_zone(sites, call.site_id),
        site=sites.get(call.site_id),
        show_site=len(sites) > 1,
        done=done,
        errors=errors or FormErrors(),
        values=values or {},
        outcomes=list(OUTCOME_LABELS.items()),
    )


# --- converting a caller to a client, or linking the call to one ---------------------------------


def _convert_defaults(call: IntakeCall) -> dict[str, Any]:
    """The form to start from: the caller's own name and phone when they called for themselves."""
    values: dict[str, Any] = {"preferred_language": "en"}
    if call.caller_relation == CallerRelation.SELF:
        parts = call.caller_name.split()
        if parts:
            values["first_name"] = parts[0]
            values["last_name"] = " ".join(parts[1:])
        values["phone"] = national_phone(call.callback_phone)
    return values


def _convert_form(call: IntakeCall, *, values: dict[str, Any], errors: FormErrors, status: int = 200) -> Response:
    return page(
        "intake/convert.html",
        status=status,
        call=call,
        client=_attached_client(call),
        values=values,
        errors=errors,
        labels=CONVERT_LABELS,
        languages=LANGUAGES,
        zone=_zone(_user_sites(authenticated_user()), call.site_id),
    )


@blp.route("/intake/calls/<int:call_id>/convert", methods=["GET"])
@requires(Permission.INTAKE_WRITE, Permission.CLIENTS_WRITE)
def convert_form(call_id: int) -> Response:
    """The caller's details as a client's, to register them."""
    call = load_call(call_id, audit_read=True)
    return _convert_form(call, values=_convert_defaults(call), errors=FormErrors())


@blp.route("/intake/calls/<int:call_id>/convert", methods=["POST"])
@requires(Permission.INTAKE_WRITE, Permission.CLIENTS_WRITE)
def convert(call_id: int) -> Response:
    """Register the caller as a client (POST /intake-calls/{id}/convert).

    A likely duplicate is not an error to the person at the desk but a question: the page lists
    the candidates (name, date of birth, MRN) with "This is the same person" on each, which links
    the call to that client, and "Register as a new client", which converts with allow_duplicate.
    """
    call = load_call(call_id)
    form = form_values()
    allow_duplicate = form.pop("allow_duplicate", "") == "1"
    if form.pop("review", None) is not None:
        return _convert_form(_shown(call), values=form, errors=FormErrors())
    data, errors = load_form(ConvertSchema(), form)
    if errors:
        return _convert_form(_shown(call), values=form, errors=_form_errors(errors), status=422)
    # A refusal undoes what the operation wrote, as over the API (the candidates' reads are kept).
    _converted, refused = attempt(
        ops.convert_call, call, actor=authenticated_user(), allow_duplicate=allow_duplicate, client_fields=data
    )
    if refused:
        error = refused.problem
        _shown(call)
        candidates = error.extra.get("candidates")
        if error.code == 409 and candidates:
            return page(
                "intake/duplicates.html",
                call=call,
                candidates=[{**c, "date_of_birth": date.fromisoformat(c["date_of_birth"])} for c in candidates],
                values=form,
                typed_dob=data.get("date_of_birth"),
                today=local_today(_zone(_user_sites(authenticated_user()), call.site_id)),
            )
        return _convert_form(call, values=form, errors=_form_errors(refused), status=error.code or 422)
    return redirect_to(url_for("intake_pages.call", call_id=call.id, converted=1))


@blp.route("/intake/calls/<int:call_id>/link", methods=["POST"])
@requires(Permission.INTAKE_WRITE, Permission.CLIENTS_READ)
def link(call_id: int) -> Response:
    """Link the call to the existing client who made it (POST /intake-calls/{id}/link)."""
    call = load_call(call_id)
    raw = form_values().get("client_id")
    # The client is loaded as any client page loads one: another site's is the "page not found" page
    # (its attempt audited as denied), never a message about it. One of another of the user's
    # sites is the operation's refusal, beside the form.
    client_id = as_id(raw)
    if client_id is not None:
        load_client(client_id)
    data, errors = load_form(LinkSchema(), {"client_id": client_id if client_id is not None else (raw or "")})
    if not errors:
        _, errors = attempt(ops.link_call, call, client_id=data["client_id"], actor=authenticated_user())
    if errors:
        return _call_page(_shown(call), errors=_form_errors(errors), status=409 if "_schema" in errors else 422)
    return redirect_to(url_for("intake_pages.call", call_id=call.id, linked=1))
