"""The console's drug screen and contingency management page of a client (``/clients/{id}/screens``).

Recording a screen is the API's ``POST /clients/{id}/drug-screens`` (same schema, operation and
permission); the list is ``GET /clients/{id}/drug-screens``; each CM program's ledger is
``GET /cm-programs/{id}/ledger`` (``clinic.plans.cm.ledger``, with what the next negative sample
earns); a prize drawn is ``POST /cm-programs/{id}/prizes``; a program is started with
``POST /plans/{id}/cm-programs`` under one of the client's open plans and ended with
``POST /cm-programs/{id}/end``; a screen recorded wrongly is marked with
``POST /drug-screens/{id}/entered-in-error``. The page adds no rule of its own: it turns the form's
fields (the site's date and time, a radio per substance, dollars) into the API's body and shows the
answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, request, url_for
from sqlalchemy import select

from clinic.audit.operations import audit
from clinic.auth.models import Site
from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, has_permission, requires
from clinic.clients.banner import banner_context
from clinic.clients.loaders import load_client
from clinic.clients.models import Client
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    as_number,
    attempt,
    form_values,
    load_form,
    not_found,
    page,
    redirect_to,
    visible_id,
)
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.plans import cm, screens
from clinic.plans import operations as plan_ops
from clinic.plans.models import CMProgram, CMSchedule, DrugScreen, Plan, PlanStatus
from clinic.plans.schemas import (
    CMProgramCreateSchema,
    CMProgramEndSchema,
    DrugScreenCreateSchema,
    EnteredInErrorSchema,
    PrizeCreateSchema,
)

blp = ConsoleBlueprint("screen_pages", __name__)

#: The substances of the standard panel, in the order the form lists them (the API's lower-case names).
PANEL: tuple[tuple[str, str], ...] = (
    ("fentanyl", "Fentanyl"),
    ("opiates", "Opiates (morphine, heroin)"),
    ("oxycodone", "Oxycodone"),
    ("methadone", "Methadone"),
    ("buprenorphine", "Buprenorphine"),
    ("cocaine", "Cocaine"),
    ("methamphetamine", "Methamphetamine"),
    ("benzodiazepines", "Benzodiazepines"),
    ("xylazine", "Xylazine"),
)
#: How many rows the form offers for substances outside the panel.
OTHER_ROWS = 2
RESULTS = (("", "Not tested"), ("negative", "Negative"), ("positive", "Positive"), ("invalid", "Invalid"))
RESULT_WORDS = {"negative": "Negative", "positive": "Positive", "invalid": "Invalid"}
SCHEDULE_WORDS = {CMSchedule.ESCALATING_VOUCHER.value: "Escalating voucher", CMSchedule.PRIZE_DRAW.value: "Prize draw"}
LABELS = {
    "collected_date": "Date collected",
    "collected_time": "Time collected",
    "collection": "Collection",
    "results": "Results",
    "prize_dollars": "Value of the prize",
}
START_LABELS = {
    "plan_id": "Plan",
    "target_substances": "Target substances",
    "target_other": "Other target substances",
    "schedule": "Schedule",
    "start_dollars": "First voucher",
    "increment_dollars": "Increase per negative in a row",
    "bonus_dollars": "Bonus",
    "bonus_every": "Bonus every",
    "max_draws": "Most draws per sample",
    "cap_dollars": "Annual cap",
    "starts_on": "Start date",
    "ends_on": "End date",
}
_MISSING = "Missing data for required field."
_DOLLARS = re.compile(r"\$?\s*([0-9]{1,7})(\.[0-9]{1,2})?")


@blp.context_processor
def _money() -> dict[str, Any]:
    return {"dollars": dollars}


def dollars(cents: int | None) -> str:
    """``$1,250.00``: money in dollars, as the page shows it."""
    return "" if cents is None else f"${cents / 100:,.2f}"


def _zone(client: Client) -> str:
    return db.session.get_one(Site, client.site_id).timezone


def _panel(programs: list[CMProgram]) -> list[tuple[str, str]]:
    """The standard panel, then any target substance of the client's programs it lacks."""
    known = {name for name, _label in PANEL}
    extra = sorted({s for program in programs for s in program.target_substances} - known)
    return [*PANEL, *((name, name.capitalize()) for name in extra)]


def _open_plans(client: Client) -> list[Plan]:
    """The plans a program may be started under: those not closed, the active one first."""
    plans = [p for p in plan_ops.list_plans(client) if p.status is not PlanStatus.CLOSED]  # audited plan.read
    return sorted(plans, key=lambda p: (p.status is not PlanStatus.ACTIVE, -p.id))


def _start_defaults(zone: str) -> dict[str, Any]:
    """The start form's defaults: DOMAIN.md's escalating voucher and cap, from the site's today."""
    voucher = cm.DEFAULT_PARAMS[CMSchedule.ESCALATING_VOUCHER]
    return {
        "schedule": CMSchedule.ESCALATING_VOUCHER.value,
        "start_dollars": _as_dollars(voucher["start_cents"]),
        "increment_dollars": _as_dollars(voucher["increment_cents"]),
        "bonus_dollars": _as_dollars(voucher["bonus_cents"]),
        "bonus_every": str(voucher["bonus_every"]),
        "max_draws": str(cm.DEFAULT_PARAMS[CMSchedule.PRIZE_DRAW]["max_draws"]),
        "cap_dollars": _as_dollars(cm.DEFAULT_ANNUAL_CAP_CENTS),
        "starts_on": to_local(utcnow(), zone).date().isoformat(),
        "target_substances": [],
    }


def _as_dollars(cents: int) -> str:
    return f"{cents / 100:.2f}"


def _screens_page(
    client: Client,
    values: Mapping[str, Any],
    errors: FormErrors,
    *,
    status: int = 200,
    prize_errors: Mapping[int, FormErrors] | None = None,
    prize_values: Mapping[int, str] | None = None,
    start_values: Mapping[str, Any] | None = None,
    start_errors: FormErrors | None = None,
    end_errors: Mapping[int, FormErrors] | None = None,
    end_values: Mapping[int, str] | None = None,
) -> Response:
    user = authenticated_user()
    zone = _zone(client)
    listed = screens.serialise(screens.list_for_client(client))  # newest first; audited drug_screen.read
    programs = list(cm.programs_of_client(client.id))
    ledgers = [(program, cm.ledger(program, with_next=True)) for program in programs]  # audited cm_program.read
    now = to_local(utcnow(), zone)
    defaults = {"collected_date": now.date().isoformat(), "collected_time": now.strftime("%H:%M")}
    by_screen = {screen["id"]: screen for screen in listed}
    done = request.args.get("done")
    corrected = by_screen.get(as_number(request.args.get("screen"))) if done == "corrected" else None
    if corrected is not None and not values:
        # The right result is recorded next: the form starts from the wrong screen's collection time.
        when = to_local(corrected["collected_at"], zone)
        defaults = {"collected_date": when.date().isoformat(), "collected_time": when.strftime("%H:%M")}
    can_write = has_permission(user, Permission.CLINICAL_WRITE)
    plans = _open_plans(client) if can_write else []
    return page(
        "plans/screens.html",
        status=status,
        client=client,
        zone=zone,
        screens=listed,
        by_screen=by_screen,
        ledgers=ledgers,
        panel=_panel(programs),
        other_rows=range(1, OTHER_ROWS + 1),
        results=RESULTS,
        result_words=RESULT_WORDS,
        schedule_words=SCHEDULE_WORDS,
        values=values or defaults,
        errors=errors,
        labels=LABELS,
        prize_errors=prize_errors or {},
        prize_values=prize_values or {},
        plans=plans,
        plan_words=[(p.id, _plan_words(p)) for p in plans],
        start_values=start_values or _start_defaults(zone),
        start_errors=start_errors or FormErrors(),
        start_labels=START_LABELS,
        end_errors=end_errors or {},
        end_values=end_values or {},
        local_today=now.date().isoformat(),
        can_write=can_write,
        done=done,
        corrected=corrected,
        **banner_context(client, user),
    )


def _plan_words(plan: Plan) -> str:
    started = plan.created_at.date() if isinstance(plan.created_at, datetime) else plan.created_at
    state = "Active plan" if plan.status is PlanStatus.ACTIVE else "Draft plan"
    return f"{state}, revision {plan.revision}, written {started:%b} {started.day}, {started.year}"


@blp.route("/clients/<int:client_id>/screens", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def client_screens(client_id: int) -> Response:
    """The client's drug screens, newest first, the CM programs' ledgers, and the forms to record."""
    return _screens_page(load_client(client_id, audit_read=True), {}, FormErrors())


def _body(values: Mapping[str, Any], zone: str, panel: list[tuple[str, str]]) -> tuple[dict[str, Any], FormErrors]:
    """The API's body from the form: the site's wall-clock time with its offset, the results typed."""
    errors = FormErrors()
    body: dict[str, Any] = {}
    day = str(values.get("collected_date") or "").strip()
    clock = str(values.get("collected_time") or "").strip()
    if not day:
        errors["collected_date"] = ["Enter the date the sample was collected."]
    if not clock:
        errors["collected_time"] = ["Enter the time the sample was collected."]
    if day and clock:
        try:
            local = datetime.fromisoformat(f"{day}T{clock}")
        except ValueError:
            errors["collected_date"] = ["Enter a real date and time, for example 2026-03-04 and 09:30."]
        else:
            body["collected_at"] = local.replace(tzinfo=ZoneInfo(zone)).isoformat()
    collection = values.get("collection") or []
    body["observed"] = "observed" in collection
    body["missed"] = "missed" in collection
    results: dict[str, str] = {}
    for name, _label in panel:
        chosen = values.get(f"result_{name}")
        if chosen:
            results[name] = str(chosen)
    for row in range(1, OTHER_ROWS + 1):
        other = str(values.get(f"other_name_{row}") or "").strip().lower()
        chosen = values.get(f"other_result_{row}")
        if other and not chosen:
            errors[f"other_result_{row}"] = [f"Choose the result for {other}."]
        elif chosen and not other:
            errors[f"other_name_{row}"] = ["Enter the substance's name, or choose Not tested."]
        elif other and chosen:
            if other in results:
                errors[f"other_name_{row}"] = [f"{other} is already in the results."]
            results[other] = str(chosen)
    body["results"] = results
    return body, errors


def _screen_errors(errors: FormErrors) -> FormErrors:
    """The schema's and the operation's errors keyed by the form's fields."""
    mapped = FormErrors()
    for key, messages in errors.items():
        head = key.split(".", 1)[0]
        name = {"collected_at": "collected_date", "missed": "collection", "observed": "collection"}.get(head, head)
        for message in messages:
            said = "Enter the date the sample was collected." if message == _MISSING else message
            if said not in mapped.setdefault(name, []):
                mapped[name].append(said)
    mapped.problem = errors.problem
    return mapped


@blp.route("/clients/<int:client_id>/screens", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def record_screen(client_id: int) -> Response:
    """Record a drug screen, or a missed one (POST /api/v1/clients/{id}/drug-screens)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values(lists=("collection",))
    panel = _panel(list(cm.programs_of_client(client.id)))
    body, errors = _body(values, _zone(client), panel)
    saved = None
    if not errors:
        data, errors = load_form(DrugScreenCreateSchema(), body)
        if not errors:
            saved, errors = attempt(screens.record_screen, client, actor=user, **data)
    if saved is None:
        return _screens_page(load_client(client_id, audit_read=True), values, _screen_errors(errors), status=422)
    _screen, created = saved
    return redirect_to(
        url_for("screen_pages.client_screens", client_id=client.id, done="recorded" if created else "re-recorded")
    )


def _cents(raw: str) -> int | None:
    match = _DOLLARS.fullmatch(raw.strip())
    if match is None:
        return None
    try:
        return int(Decimal(match.group(1) + (match.group(2) or "")) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern admits numbers only
        return None


@blp.route("/clients/<int:client_id>/cm-programs/<int:program_id>/prizes", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def record_prize(client_id: int, program_id: int) -> Response:
    """Record the value of a prize the client drew (POST /api/v1/cm-programs/{id}/prizes)."""
    user = authenticated_user()
    client = load_client(client_id)
    program = get_scoped_or_404(CMProgram, program_id, user)
    if program.client_id != client.id:
        not_found()
    raw = str(request.form.get("prize_dollars") or "")
    errors = FormErrors()
    prize = None
    cents = _cents(raw)
    if not raw.strip():
        errors["prize_dollars"] = ["Enter the value of the prize drawn, in dollars."]
    elif cents is None:
        errors["prize_dollars"] = ["Enter dollars and cents, for example 5 or 20.00."]
    else:
        data, schema_errors = load_form(PrizeCreateSchema(), {"prize_cents": cents})
        if schema_errors:
            errors["prize_dollars"] = [
                "Must be between $0 and $1,000."
                if "between" in m.lower() or "greater" in m.lower() or "less" in m.lower()
                else m
                for m in schema_errors.get("prize_cents", ["Not a valid amount."])
            ]
        else:
            prize, refused = attempt(cm.record_prize, program, actor=user, prize_cents=data["prize_cents"])
            if refused:
                errors["prize_dollars"] = [m for messages in refused.values() for m in messages]
    if prize is None:
        return _screens_page(
            load_client(client_id, audit_read=True),
            {},
            FormErrors(),
            status=422,
            prize_errors={program.id: errors},
            prize_values={program.id: raw},
        )
    return redirect_to(url_for("screen_pages.client_screens", client_id=client.id, done="prize"))


# --- starting and ending a CM program ------------------------------------------------------------

#: The API's error keys -> the start form's fields.
_START_FIELDS = {
    "params.start_cents": "start_dollars",
    "params.increment_cents": "increment_dollars",
    "params.bonus_cents": "bonus_dollars",
    "params.bonus_every": "bonus_every",
    "params.max_draws": "max_draws",
    "annual_cap_cents": "cap_dollars",
}
_VOUCHER_FIELDS = (
    ("start_dollars", "start_cents"),
    ("increment_dollars", "increment_cents"),
    ("bonus_dollars", "bonus_cents"),
)
_SPLIT = re.compile(r"[\s,;]+")


def _dollar_field(values: Mapping[str, Any], name: str, errors: FormErrors, *, most: str) -> int | None:
    raw = str(values.get(name) or "").strip()
    if not raw:
        errors[name] = [f"Enter an amount in dollars, from $0 to {most}."]
        return None
    cents = _cents(raw)
    if cents is None:
        errors[name] = ["Enter dollars and cents, for example 2.50."]
    return cents


def _program_body(
    values: Mapping[str, Any], plans: list[Plan], panel: list[tuple[str, str]]
) -> tuple[Plan | None, dict[str, Any], FormErrors]:
    """The API's body from the start form (dollars to cents, the chosen schedule's parameters only)."""
    errors = FormErrors()
    plan_id = visible_id(values.get("plan_id"), [p.id for p in plans])
    plan = next((p for p in plans if p.id == plan_id), None)
    if plan is None:
        errors["plan_id"] = ["Choose the plan the program is part of."]
    known = {name for name, _label in panel}
    chosen = [name for name in values.get("target_substances", []) if name in known]
    others = [word.lower() for word in _SPLIT.split(str(values.get("target_other") or "")) if word]
    body: dict[str, Any] = {"target_substances": chosen + others}
    if not body["target_substances"]:
        errors["target_substances"] = ["Choose the substances a sample must be negative for to earn."]
    schedule = str(values.get("schedule") or "")
    body["schedule"] = schedule
    params: dict[str, Any] = {}
    if schedule == CMSchedule.ESCALATING_VOUCHER.value:
        for field, key in _VOUCHER_FIELDS:
            cents = _dollar_field(values, field, errors, most="$1,000")
            if cents is not None:
                params[key] = cents
        params["bonus_every"] = as_number(values.get("bonus_every", ""))
    elif schedule == CMSchedule.PRIZE_DRAW.value:
        params["max_draws"] = as_number(values.get("max_draws", ""))
    else:
        errors["schedule"] = ["Choose how the program rewards negative samples."]
    body["params"] = params
    cap = _dollar_field(values, "cap_dollars", errors, most="$100,000")
    if cap is not None:
        body["annual_cap_cents"] = cap
    body["starts_on"] = str(values.get("starts_on") or "")
    if values.get("ends_on"):
        body["ends_on"] = str(values["ends_on"])
    return plan, body, errors


def _start_errors(errors: FormErrors) -> FormErrors:
    """The schema's and the operation's errors keyed by the start form's fields, in dollars."""
    mapped = FormErrors()
    for key, messages in errors.items():
        name = _START_FIELDS.get(key, key)
        if name.startswith("target_substances."):
            name = "target_other"
        elif name.startswith("params."):
            name = "_schema"
        for message in messages:
            said = message
            if name in ("start_dollars", "increment_dollars", "bonus_dollars") and "equal" in message:
                said = "Must be between $0 and $1,000."
            elif name == "cap_dollars" and "equal" in message:
                said = "Must be between $0 and $100,000."
            elif name == "starts_on" and message == _MISSING:
                said = "Enter the day the program starts."
            elif name == "ends_on" and message == "Must not be before starts_on.":
                said = "Must not be before the start date."
            if said not in mapped.setdefault(name, []):
                mapped[name].append(said)
    mapped.problem = errors.problem
    return mapped


@blp.route("/clients/<int:client_id>/cm-programs", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def start_program(client_id: int) -> Response:
    """Start a CM program under one of the client's open plans (POST /api/v1/plans/{id}/cm-programs)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values(lists=("target_substances",))
    plans = _open_plans(client)
    panel = _panel(list(cm.programs_of_client(client.id)))
    plan, body, errors = _program_body(values, plans, panel)
    made = None
    if not errors and plan is not None:
        data, errors = load_form(CMProgramCreateSchema(), body)
        if not errors:
            made = _just_started(plan, user.id, data)
            if made is None:
                made, errors = attempt(cm.create_program, plan, actor=user, **data)
    if made is None:
        return _screens_page(
            load_client(client_id, audit_read=True),
            {},
            FormErrors(),
            status=409 if errors.problem is not None and errors.problem.code == 409 else 422,
            start_values=values,
            start_errors=_start_errors(errors),
        )
    return redirect_to(
        url_for("screen_pages.client_screens", client_id=client.id, done="started") + f"#program-{made.id}"
    )


#: How long the same terms posted again by the same user are the same program (a double click, a retry).
_RESENT_WITHIN = timedelta(minutes=2)


def _just_started(plan: Plan, user_id: int, data: Mapping[str, Any]) -> CMProgram | None:
    """The program this user started under ``plan`` a moment ago on the same terms, if the form was sent twice.

    A second program on the same terms would pay every negative sample twice. The plan's row is locked
    first (PostgreSQL), so two sendings at the same moment are checked one after the other.
    """
    db.session.refresh(plan, with_for_update=True)
    targets = sorted({s.strip().lower() for s in data["target_substances"]})
    schedule = data["schedule"]
    params = {**cm.DEFAULT_PARAMS[schedule], **(data.get("params") or {})}
    recent = db.session.scalars(
        select(CMProgram)
        .where(
            CMProgram.plan_id == plan.id,
            CMProgram.created_by_id == user_id,
            CMProgram.schedule == schedule,
            CMProgram.created_at >= utcnow() - _RESENT_WITHIN,
        )
        .order_by(CMProgram.id.desc())
    )
    for program in recent:
        same = (
            program.target_substances == targets
            and program.params == params
            and program.starts_on == (data.get("starts_on") or utcnow().date())
            and program.ends_on == data.get("ends_on")
            and program.annual_cap_cents == data.get("annual_cap_cents", cm.DEFAULT_ANNUAL_CAP_CENTS)
        )
        if same:
            return program
    return None


def _load_program(client: Client, program_id: int) -> CMProgram:
    program = get_scoped_or_404(CMProgram, program_id, authenticated_user())
    if program.client_id != client.id:
        not_found()
    return program


@blp.route("/clients/<int:client_id>/cm-programs/<int:program_id>/end", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def end_program(client_id: int, program_id: int) -> Response:
    """End a CM program on the day given (POST /api/v1/cm-programs/{id}/end)."""
    user = authenticated_user()
    client = load_client(client_id)
    program = _load_program(client, program_id)
    raw = str(request.form.get("ends_on") or "").strip()
    ended = None
    errors = FormErrors()
    if not raw:
        errors["ends_on"] = ["Enter the program's last day."]
    else:
        data, errors = load_form(CMProgramEndSchema(), {"ends_on": raw})
        if errors:
            errors = FormErrors({"ends_on": ["Enter a real date, for example 2026-03-04."]})
        else:
            ended, errors = attempt(cm.end_program, program, actor=user, ends_on=data["ends_on"])
            if errors and "ends_on" not in errors:
                refusal = errors.problem
                errors = FormErrors({"ends_on": [m for messages in errors.values() for m in messages]})
                errors.problem = refusal
    if ended is None:
        return _screens_page(
            load_client(client_id, audit_read=True),
            {},
            FormErrors(),
            status=409 if errors.problem is not None and errors.problem.code == 409 else 422,
            end_errors={program.id: errors},
            end_values={program.id: raw},
        )
    return redirect_to(
        url_for("screen_pages.client_screens", client_id=client.id, done="ended") + f"#program-{program.id}"
    )


# --- a screen entered in error -------------------------------------------------------------------


def _load_screen(client: Client, screen_id: int) -> DrugScreen:
    screen = get_scoped_or_404(DrugScreen, screen_id, authenticated_user())
    if screen.client_id != client.id:
        not_found()
    return screen


def _correct_page(
    client: Client, screen: DrugScreen, values: Mapping[str, Any], errors: FormErrors, *, status: int = 200
) -> Response:
    """The screen as recorded, what marking it does (the incentives it earned stay), and the reason asked."""
    user = authenticated_user()
    shown = screens.serialise([screen])[0]
    earned = []
    for program in cm.programs_of_client(client.id):
        for entry in cm.ledger(program)["entries"]:  # audited cm_program.read
            if entry["drug_screen_id"] == screen.id and (entry["amount_cents"] or entry["draws"]):
                earned.append((program, entry))
    return page(
        "plans/screen_entered_in_error.html",
        status=status,
        client=client,
        zone=_zone(client),
        screen=shown,
        earned=earned,
        result_words=RESULT_WORDS,
        schedule_words=SCHEDULE_WORDS,
        values=values,
        errors=errors,
        **banner_context(client, user, current="screen_pages.client_screens"),
    )


@blp.route("/clients/<int:client_id>/screens/<int:screen_id>/entered-in-error", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def entered_in_error_form(client_id: int, screen_id: int) -> Response:
    """Ask why a drug screen was entered in error."""
    client = load_client(client_id, audit_read=True)
    screen = _load_screen(client, screen_id)
    audit("read", screen, details={"via": "entered-in-error-form"})
    return _correct_page(client, screen, {}, FormErrors())


@blp.route("/clients/<int:client_id>/screens/<int:screen_id>/entered-in-error", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def mark_entered_in_error(client_id: int, screen_id: int) -> Response:
    """Mark the screen entered in error (POST /api/v1/drug-screens/{id}/entered-in-error)."""
    user = authenticated_user()
    client = load_client(client_id)
    screen = _load_screen(client, screen_id)
    values = form_values()
    data, errors = load_form(EnteredInErrorSchema(), {k: v for k, v in values.items() if k == "reason"})
    if "reason" in errors:
        errors["reason"] = [
            "Say why the screen was entered in error." if m == _MISSING else m for m in errors["reason"]
        ]
    done = None
    if not errors:
        done, errors = attempt(screens.mark_entered_in_error, screen, reason=data["reason"], actor=user)
    if done is None:
        return _correct_page(
            load_client(client_id, audit_read=True),
            screen,
            values,
            errors,
            status=409 if errors.problem is not None and errors.problem.code == 409 else 422,
        )
    return redirect_to(
        url_for("screen_pages.client_screens", client_id=client.id, done="corrected", screen=screen.id)
        + "#record-title"
    )
