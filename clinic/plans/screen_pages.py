"""The console's drug screen and contingency management page of a client (``/clients/{id}/screens``).

Recording a screen is the API's ``POST /clients/{id}/drug-screens`` (same schema, operation and
permission); the list is ``GET /clients/{id}/drug-screens``; each CM program's ledger is
``GET /cm-programs/{id}/ledger`` (``clinic.plans.cm.ledger``, with what the next negative sample
earns); a prize drawn is ``POST /cm-programs/{id}/prizes``. The page adds no rule of its own: it
turns the form's fields (the site's date and time, a radio per substance, dollars) into the API's
body and shows the answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, request, url_for

from clinic.auth.models import Site
from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, has_permission, requires
from clinic.clients.banner import banner_context
from clinic.clients.loaders import load_client
from clinic.clients.models import Client
from clinic.console import ConsoleBlueprint, FormErrors, attempt, form_values, load_form, not_found, page, redirect_to
from clinic.core.time import to_local, utcnow
from clinic.extensions import db
from clinic.plans import cm, screens
from clinic.plans.models import CMProgram, CMSchedule
from clinic.plans.schemas import DrugScreenCreateSchema, PrizeCreateSchema

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


def _screens_page(
    client: Client,
    values: Mapping[str, Any],
    errors: FormErrors,
    *,
    status: int = 200,
    prize_errors: Mapping[int, FormErrors] | None = None,
    prize_values: Mapping[int, str] | None = None,
) -> Response:
    user = authenticated_user()
    zone = _zone(client)
    listed = screens.serialise(screens.list_for_client(client))  # newest first; audited drug_screen.read
    programs = list(cm.programs_of_client(client.id))
    ledgers = [(program, cm.ledger(program, with_next=True)) for program in programs]  # audited cm_program.read
    now = to_local(utcnow(), zone)
    defaults = {"collected_date": now.date().isoformat(), "collected_time": now.strftime("%H:%M")}
    by_screen = {screen["id"]: screen for screen in listed}
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
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
        done=request.args.get("done"),
        **banner_context(client, user),
    )


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
