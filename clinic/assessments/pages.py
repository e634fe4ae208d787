"""The console's assessment pages: instrument forms built from their definitions, scores, signing, trends.

Each view mirrors the API view of the same data (clinic.assessments.api): the same permission,
loaders and operations, so every read is audited as the API's is. The forms are generated from the
instrument definitions (items, allowed answers, each answer's words and points, the ASAM edition's
names); clinic scores on the server, and the page's preview is the server's own score of the
answers chosen so far (an htmx POST), never a score worked out in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, request, url_for

from clinic.assessments import operations as ops
from clinic.assessments.definitions import Instrument, Item, Score, get_instrument, instruments
from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.assessments.schemas import AmendSchema, AssessmentCreateSchema, AssessmentPatchSchema
from clinic.auth.models import User
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
)
from clinic.core.time import to_local, utcnow
from clinic.extensions import db

blp = ConsoleBlueprint("assessment_pages", __name__)

PAGE_SIZE = 25
#: Instruments drawn as trend lines on the client's assessments page.
TREND_INSTRUMENTS = ("PHQ-9", "GAD-7", "COWS")
#: The order instruments are offered in: the ones given most often first.
INSTRUMENT_ORDER = ("PHQ-9", "GAD-7", "COWS", "SOWS", "AUDIT-C", "DAST-10", "DSM5-OUD", "ASAM")
SAFETY_FLAG_WORDS = {
    "suicide_risk_item": "Item 9: thoughts of death or self-harm",
}


def severity_words(severity: str | None) -> str:
    return severity.replace("_", " ").capitalize() if severity else ""


def flag_words(flag: str, instrument: Instrument | None = None) -> str:
    if flag in SAFETY_FLAG_WORDS:
        return SAFETY_FLAG_WORDS[flag]
    if flag.startswith("high_risk_d"):
        return f"Dimension {flag.removeprefix('high_risk_d')} rated 4 (severe)"
    return flag.replace("_", " ").capitalize()


@blp.app_template_filter("assessment_severity")
def _severity_filter(severity: str | None) -> str:
    return severity_words(severity)


@blp.app_template_filter("assessment_flag")
def _flag_filter(flag: str) -> str:
    return flag_words(flag)


# --- forms built from definitions -------------------------------------------------------------------


def _answer_key(value: Any) -> str:
    """An answer as a form sends it and as a definition's ``labels`` names it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    points: int | None


@dataclass(frozen=True)
class Question:
    name: str
    number: int | None
    text: str
    options: list[Option]
    safety: bool


def _options(instrument: Instrument, item: Item, answers: Mapping[str, Any], *, scored: bool) -> list[Option]:
    allowed = list(item.allowed_values(dict(answers)) or ())
    words = item.option_labels(dict(answers))
    if item.labels_by is not None:  # codes such as ASAM levels: in their order, withdrawal management last
        allowed.sort(key=_level_order)
    unscored = not scored or instrument.scoring["method"] == "none"
    options = []
    for value in allowed:
        key = _answer_key(value)
        label = words.get(key) or ("Yes" if value is True else "No" if value is False else key)
        if key in words and (item.labels_by is not None or (unscored and item.type == "integer")):
            label = f"{key} — {label}"  # a rating or a code is written as well as its words
        points = None if unscored else item.points_for(value)
        options.append(Option(key, label, points))
    return options


def _level_order(code: Any) -> tuple[bool, float, str]:
    text = str(code)
    number = text.split("-", 1)[0]
    try:
        return text.endswith("-WM"), float(number), text
    except ValueError:
        return True, 99.0, text


def questions(instrument: Instrument, answers: Mapping[str, Any]) -> list[Question]:
    """The form's questions in order: a modifier the bands depend on first, then the items, then the rest.

    ASAM's edition is chosen before the form (a hidden field in it), so its items are worded and its
    levels of care offered as that edition's.
    """
    safety_items = {key for rule in instrument.flags if rule.alert for key in rule.items}
    first = [m for m in instrument.modifiers if m.key == instrument.bands_by]
    last = [m for m in instrument.modifiers if m.key not in (instrument.bands_by, "edition")]
    found = [
        Question(
            f"answers.{m.key}", None, m.text_for(dict(answers)), _options(instrument, m, answers, scored=False), False
        )
        for m in first
    ]
    for number, item in enumerate(instrument.items, start=1):
        found.append(
            Question(
                f"answers.{item.key}",
                number,
                item.text_for(dict(answers)),
                _options(instrument, item, answers, scored=True),
                item.key in safety_items,
            )
        )
    found += [
        Question(
            f"answers.{m.key}", None, m.text_for(dict(answers)), _options(instrument, m, answers, scored=False), False
        )
        for m in last
    ]
    return found


def _answers_from_form(instrument: Instrument, values: Mapping[str, Any]) -> dict[str, Any]:
    """The posted answers as the API's JSON carries them: numbers, true/false, words."""
    answers: dict[str, Any] = {}
    for item in (*instrument.modifiers, *instrument.items):
        raw = values.get(f"answers.{item.key}")
        if raw is None:
            continue
        if item.type == "integer":
            answers[item.key] = as_number(raw)
        elif item.type == "boolean":
            answers[item.key] = {"true": True, "false": False}.get(raw, raw)
        else:
            answers[item.key] = raw
    return answers


def _form_answers(answers: Mapping[str, Any]) -> dict[str, str]:
    """Stored answers as the form's values (``answers.<key>``)."""
    return {f"answers.{key}": _answer_key(value) for key, value in answers.items()}


def _administered_at(values: Mapping[str, Any], zone: str) -> Any:
    """The site's wall-clock date and time typed, as an instant for the schema (a text it refuses else)."""
    day = str(values.get("administered_date") or "").strip()
    clock = str(values.get("administered_time") or "").strip()
    try:
        local = datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:
        return f"{day}T{clock}"
    return local.replace(tzinfo=ZoneInfo(zone)).isoformat()


def _errors_for_form(errors: FormErrors) -> FormErrors:
    """Errors keyed by the form's fields (``administered_at`` is typed as a date and a time)."""
    mapped = FormErrors()
    mapped.problem = errors.problem
    for key, messages in errors.items():
        name = "administered_date" if key == "administered_at" else key
        if name == "answers":
            name = "_schema"
        for message in messages:
            said = "Choose an answer." if message == "Missing answer." else message
            mapped.setdefault(name, []).append(said)
    return mapped


def _error_labels(instrument: Instrument, answers: Mapping[str, Any]) -> dict[str, str]:
    labels = {"administered_date": "Date given", "reason": "Reason for the amendment"}
    for question in questions(instrument, answers):
        labels[question.name] = f"Question {question.number}" if question.number else question.text
    labels["answers.edition"] = "Edition of the ASAM Criteria"
    return labels


def _edition(instrument: Instrument, raw: Any) -> str | None:
    edition = next((m for m in instrument.modifiers if m.key == "edition"), None)
    if edition is None:
        return None
    return raw if isinstance(raw, str) and raw in (edition.allowed or ()) else ""


def _instrument_choices() -> list[tuple[str, str]]:
    known = instruments()
    codes = [code for code in INSTRUMENT_ORDER if code in known] + sorted(set(known) - set(INSTRUMENT_ORDER))
    return [(code, f"{code} — {known[code].name}") for code in codes]


# --- the score preview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    score: Score
    answered: int
    asked: int
    top: int | None

    @property
    def complete(self) -> bool:
        return self.answered == self.asked

    @property
    def safety(self) -> bool:
        return bool(self.score.alerts)


def preview_of(instrument: Instrument, answers: Mapping[str, Any]) -> Preview:
    score, answered, asked = instrument.preview(dict(answers))
    if "edition" in answers and any(m.key == "edition" for m in instrument.modifiers):
        answered, asked = answered - 1, asked - 1  # ASAM's edition is chosen before the form, not a question in it
    top = instrument.total_range[1] if instrument.total_range else None
    return Preview(score, answered, asked, top)


# --- pages --------------------------------------------------------------------------------------------


def _status(assessment: Assessment) -> tuple[str, str]:
    if assessment.status is AssessmentStatus.DRAFT:
        return ("Amendment, draft" if assessment.amends_id else "Draft"), "yellow"
    if assessment.superseded_by_id is not None:
        return "Amended", "grey"
    return ("Signed amendment" if assessment.amends_id else "Signed"), "green"


@dataclass(frozen=True)
class TrendChart:
    code: str
    name: str
    points: list[dict[str, Any]]
    width: int
    height: int
    #: (x, y, point) of each score, in the SVG's units.
    dots: list[tuple[float, float, dict[str, Any]]]
    #: Whether each score's number is written beside its point (not when it would overlap the last).
    labelled: list[bool]
    path: str
    #: (y, label) of the severity bands' lower bounds.
    bands: list[tuple[float, str]]
    top: int
    summary: str


_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 640, 220, 150, 20, 12, 32


def trend_chart(instrument: Instrument, trend: dict[str, Any], zone: str) -> TrendChart:
    """The SVG geometry of one instrument's signed scores over time, scaled to its whole range."""
    points = trend["points"]
    top = instrument.total_range[1] if instrument.total_range else max([p["total_score"] for p in points] or [1])
    top = max(top, 1)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def y_of(value: float) -> float:
        return round(_TOP + plot_h * (1 - value / top), 1)

    times = [p["administered_at"].timestamp() for p in points]
    span = (max(times) - min(times)) if times else 0
    dots = []
    for index, point in enumerate(points):
        x = _LEFT + plot_w * (times[index] - times[0]) / span if span else _LEFT + plot_w / 2
        dots.append((round(x, 1), y_of(point["total_score"]), point))
    # A score's number is written above its point unless it would sit on the last one written.
    labelled: list[bool] = []
    last_x: float | None = None
    for x, _y, _point in dots:
        labelled.append(last_x is None or x - last_x >= 28)
        if labelled[-1]:
            last_x = x
    path = " ".join(f"{'M' if i == 0 else 'L'}{x} {y}" for i, (x, y, _p) in enumerate(dots))
    bands = [
        (y_of(band.min), f"{band.min} {severity_words(band.label).lower()}") for band in instrument.bands.get("", ())
    ]
    if points:
        from clinic.console.dates import long_date

        first, last = points[0], points[-1]
        summary = (
            f"{instrument.code}: {len(points)} signed score{'s' if len(points) != 1 else ''}, "
            f"{first['total_score']} on {long_date(first['administered_at'], zone)}"
            + (f" to {last['total_score']} on {long_date(last['administered_at'], zone)}" if len(points) > 1 else "")
        )
    else:
        summary = f"{instrument.code}: no signed scores"
    return TrendChart(instrument.code, instrument.name, points, _W, _H, dots, labelled, path, bands, top, summary)


@blp.route("/clients/<int:client_id>/assessments", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def client_assessments(client_id: int) -> Response:
    """The client's assessments, newest first; a new one; trends of PHQ-9, GAD-7 and COWS."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=True)
    listed = ops.list_for_client(client, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None)
    context = banner_context(client, user)
    zone = context["banner"].site.timezone
    charts = []
    for code in TREND_INSTRUMENTS:
        definition = get_instrument(code)
        if definition is not None:
            charts.append(trend_chart(definition, ops.trend(client, code), zone))
    return page(
        "assessments/list.html",
        client=client,
        assessments=listed.items,
        next_url=url_for(".client_assessments", client_id=client.id, cursor=listed.next_cursor)
        if listed.next_cursor
        else None,
        first_page=bool(request.args.get("cursor")),
        charts=charts,
        zone=zone,
        status_of=_status,
        names={code: definition.name for code, definition in instruments().items()},
        instrument_choices=_instrument_choices(),
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
        **context,
    )


def _form_page(
    client: Client,
    instrument: Instrument,
    values: Mapping[str, Any],
    errors: FormErrors,
    *,
    mode: str,
    assessment: Assessment | None = None,
    status: int = 200,
) -> Response:
    user = authenticated_user()
    context = banner_context(client, user, current="assessment_pages.client_assessments")
    zone = context["banner"].site.timezone
    answers = _answers_from_form(instrument, values)
    if mode == "new":
        now = to_local(utcnow(), zone)
        defaults = {"administered_date": now.date().isoformat(), "administered_time": now.strftime("%H:%M")}
        values = {**defaults, **values}
    if mode == "new":
        action = url_for(".create", client_id=client.id)
    elif mode == "edit" and assessment is not None:
        action = url_for(".update", assessment_id=assessment.id)
    else:
        action = url_for(".amend", assessment_id=assessment.id if assessment else 0)
    return page(
        "assessments/form.html",
        status=status,
        client=client,
        instrument=instrument,
        questions=questions(instrument, answers),
        edition=answers.get("edition"),
        values=values,
        errors=errors,
        labels=_error_labels(instrument, answers),
        preview=preview_of(instrument, answers) if answers else None,
        mode=mode,
        assessment=assessment,
        action=action,
        zone=zone,
        **context,
    )


@blp.route("/clients/<int:client_id>/assessments/new", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def new(client_id: int) -> Response:
    """The form of the instrument chosen; for ASAM, the edition first."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=True)
    code = request.args.get("instrument", "")
    instrument = get_instrument(code) if isinstance(code, str) else None
    if instrument is None:
        context = banner_context(client, user, current="assessment_pages.client_assessments")
        return page(
            "assessments/choose.html",
            status=200 if not code else 422,
            client=client,
            instrument_choices=_instrument_choices(),
            errors=FormErrors({"instrument": ["Choose the instrument to give."]}) if code else FormErrors(),
            **context,
        )
    edition = _edition(instrument, request.args.get("edition"))
    if edition == "":
        context = banner_context(client, user, current="assessment_pages.client_assessments")
        edition_item = next(m for m in instrument.modifiers if m.key == "edition")
        chosen = request.args.get("edition")
        return page(
            "assessments/edition.html",
            status=422 if chosen else 200,
            client=client,
            instrument=instrument,
            editions=[(o.value, o.label) for o in _options(instrument, edition_item, {}, scored=False)],
            errors=FormErrors({"edition": ["Choose the edition of the ASAM Criteria you assess with."]})
            if chosen
            else FormErrors(),
            **context,
        )
    values = {"answers.edition": edition} if edition else {}
    return _form_page(client, instrument, values, FormErrors(), mode="new")


def _posted_instrument() -> Instrument:
    instrument = get_instrument(request.form.get("instrument", ""))
    if instrument is None:
        not_found()
    return instrument


@blp.route("/clients/<int:client_id>/assessments/new", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def create(client_id: int) -> Response:
    """Save a draft assessment (POST /api/v1/clients/{id}/assessments): clinic scores it."""
    user = authenticated_user()
    client = load_client(client_id)
    instrument = _posted_instrument()
    values = form_values()
    zone = _zone(client)
    body = {
        "instrument": instrument.code,
        "answers": _answers_from_form(instrument, values),
        "administered_at": _administered_at(values, zone),
    }
    data, errors = load_form(AssessmentCreateSchema(), body)
    assessment = None
    if not errors:
        assessment, errors = attempt(ops.administer, client, actor=user, **data)
    if assessment is None:
        return _form_page(
            load_client(client_id, audit_read=True),
            instrument,
            values,
            _errors_for_form(errors),
            mode="new",
            status=422,
        )
    return redirect_to(url_for(".assessment", assessment_id=assessment.id, done="saved"))


def _zone(client: Client) -> str:
    from clinic.auth.models import Site

    return db.session.get_one(Site, client.site_id).timezone


@blp.route("/clients/<int:client_id>/assessments/preview", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def preview(client_id: int) -> Response:
    """The server's score of the answers chosen so far (an htmx fragment; nothing is saved)."""
    load_client(client_id)
    instrument = _posted_instrument()
    answers = _answers_from_form(instrument, form_values())
    return page("assessments/_preview.html", instrument=instrument, preview=preview_of(instrument, answers))


def _load(assessment_id: int, *, audit_read: bool = False) -> Assessment:
    return get_scoped_or_404(Assessment, assessment_id, authenticated_user(), audit_read=audit_read)


def _assessment_page(
    assessment: Assessment, *, errors: FormErrors | None = None, status: int = 200, note: str | None = None
) -> Response:
    user = authenticated_user()
    client = load_client(assessment.client_id, audit_read=True)
    context = banner_context(client, user, current="assessment_pages.client_assessments")
    instrument = get_instrument(assessment.instrument)
    if instrument is None:
        not_found()
    answers = assessment.answers
    shown = []
    for question in questions(instrument, answers):
        key = question.name.removeprefix("answers.")
        if key not in answers:
            continue
        chosen = _answer_key(answers[key])
        option = next((o for o in question.options if o.value == chosen), Option(chosen, chosen, None))
        shown.append((question, option))
    people = {
        u.id: u
        for u in db.session.query(User).filter(
            User.id.in_([i for i in (assessment.clinician_id, assessment.signed_by_id) if i is not None])
        )
    }
    score = instrument.score(answers) if instrument.version == assessment.version else None
    return page(
        "assessments/assessment.html",
        status=status,
        client=client,
        assessment=assessment,
        instrument=instrument,
        edition=answers.get("edition"),
        shown=shown,
        safety=bool(score and score.alerts),
        status_words=_status(assessment),
        people=people,
        errors=errors or FormErrors(),
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
        done=request.args.get("done"),
        note=note,
        zone=context["banner"].site.timezone,
        **context,
    )


@blp.route("/assessments/<int:assessment_id>", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def assessment(assessment_id: int) -> Response:
    """One assessment: its answers, score, severity and flags; sign a draft, amend a signed one."""
    return _assessment_page(_load(assessment_id, audit_read=True))


@blp.route("/assessments/<int:assessment_id>/sign", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def sign(assessment_id: int) -> Response:
    """Sign a draft (POST /api/v1/assessments/{id}/sign); it cannot change afterwards."""
    found = _load(assessment_id)
    signed, errors = attempt(ops.sign, found, actor=authenticated_user())
    if signed is None:
        return _assessment_page(_load(assessment_id, audit_read=True), errors=errors, status=409)
    return redirect_to(url_for(".assessment", assessment_id=found.id, done="signed"))


@blp.route("/assessments/<int:assessment_id>/edit", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def edit(assessment_id: int) -> Response:
    """Change a draft's answers or when it was given."""
    found = _load(assessment_id, audit_read=True)
    if found.status is not AssessmentStatus.DRAFT:
        return _assessment_page(found, note="This assessment is signed and cannot change; amend it instead.")
    instrument = get_instrument(found.instrument)
    if instrument is None:
        not_found()
    client = load_client(found.client_id)
    local = to_local(found.administered_at, _zone(client))
    values = {
        **_form_answers(found.answers),
        "administered_date": local.date().isoformat(),
        "administered_time": local.strftime("%H:%M"),
    }
    return _form_page(client, instrument, values, FormErrors(), mode="edit", assessment=found)


@blp.route("/assessments/<int:assessment_id>/edit", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def update(assessment_id: int) -> Response:
    """Save a draft's changes (PATCH /api/v1/assessments/{id})."""
    found = _load(assessment_id)
    instrument = get_instrument(found.instrument)
    if instrument is None:
        not_found()
    client = load_client(found.client_id)
    values = form_values()
    body: dict[str, Any] = {"answers": _answers_from_form(instrument, values)}
    if found.amends_id is None:
        body["administered_at"] = _administered_at(values, _zone(client))
    data, errors = load_form(AssessmentPatchSchema(), body)
    saved = None
    if not errors:
        saved, errors = attempt(ops.update_draft, found, data, actor=authenticated_user())
    if saved is None:
        return _form_page(
            load_client(found.client_id, audit_read=True),
            instrument,
            values,
            _errors_for_form(errors),
            mode="edit",
            assessment=found,
            status=409 if errors.problem and getattr(errors.problem, "code", 0) == 409 else 422,
        )
    return redirect_to(url_for(".assessment", assessment_id=found.id, done="saved"))


@blp.route("/assessments/<int:assessment_id>/amend", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def amend_form(assessment_id: int) -> Response:
    """Amend a signed assessment: its answers to change, and the reason."""
    found = _load(assessment_id, audit_read=True)
    instrument = get_instrument(found.instrument)
    if instrument is None:
        not_found()
    if found.status is not AssessmentStatus.SIGNED:
        return _assessment_page(found, note="A draft is not amended: change its answers, then sign it.")
    client = load_client(found.client_id)
    return _form_page(client, instrument, _form_answers(found.answers), FormErrors(), mode="amend", assessment=found)


@blp.route("/assessments/<int:assessment_id>/amend", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def amend(assessment_id: int) -> Response:
    """Save the amendment, a new draft linked to the signed one (POST /api/v1/assessments/{id}/amend)."""
    found = _load(assessment_id)
    instrument = get_instrument(found.instrument)
    if instrument is None:
        not_found()
    values = form_values()
    body = {"answers": _answers_from_form(instrument, values), "reason": values.get("reason", "")}
    data, errors = load_form(AmendSchema(), body)
    amendment = None
    if not errors:
        amendment, errors = attempt(ops.amend, found, actor=authenticated_user(), **data)
    if amendment is None:
        if "reason" in errors and not str(values.get("reason", "")).strip():
            errors["reason"] = ["Say why the assessment is amended."]
        return _form_page(
            load_client(found.client_id, audit_read=True),
            instrument,
            values,
            _errors_for_form(errors),
            mode="amend",
            assessment=found,
            status=409 if errors.problem else 422,
        )
    return redirect_to(url_for(".assessment", assessment_id=amendment.id, done="amended"))
