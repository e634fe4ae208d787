"""Console pages for clients: search and register, the chart, episodes, consents and disclosures.

Each view mirrors the API view of the same data (clinic.clients.api): the same permission, the
same loaders and operations, so every read is audited as the API's is and a client outside the
caller's sites is the "page not found" page. Forms validate with the API's schemas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, NoReturn

import phonenumbers
from flask import Response, request, url_for

from clinic.auth.directory import directory_of
from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import (
    Permission,
    authenticated_user,
    get_scoped_or_404,
    has_permission,
    require_site_in_scope,
    requires,
)
from clinic.clients import disclosures
from clinic.clients import operations as ops
from clinic.clients.banner import banner_context, care_summary
from clinic.clients.loaders import load_client
from clinic.clients.models import Channel, Client, ClientStatus, Consent, ConsentKind, Episode, SexAtBirth
from clinic.clients.schemas import (
    ClientCreateSchema,
    ClientQuerySchema,
    ConsentCreateSchema,
    DischargeSchema,
    EpisodeCreateSchema,
)
from clinic.clients.timeline import TimelineEntry
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    as_number,
    attempt,
    current_site_id,
    form_values,
    is_htmx,
    load_form,
    page,
    redirect_to,
    visible_id,
)
from clinic.console.dates import date_time, long_date
from clinic.core.errors import abort_problem
from clinic.core.pagination import decode_cursor, encode_cursor
from clinic.core.phones import default_region
from clinic.core.time import as_utc, local_today, to_local, utcnow
from clinic.extensions import db

blp = ConsoleBlueprint("client_pages", __name__)

#: Rows per page of the search results, matches in the top bar's list, entries per timeline page.
PAGE_SIZE = 25
QUICK_SIZE = 8
TIMELINE_SIZE = 20

STATUS_LABELS = {
    ClientStatus.PROSPECTIVE.value: ("Prospective", "blue"),
    ClientStatus.ACTIVE.value: ("Active", "green"),
    ClientStatus.DISCHARGED.value: ("Discharged", "grey"),
}
SEX_LABELS = {
    SexAtBirth.FEMALE.value: "Female",
    SexAtBirth.MALE.value: "Male",
    SexAtBirth.INTERSEX.value: "Intersex",
    SexAtBirth.UNKNOWN.value: "Unknown or not recorded",
}
#: Languages offered for messages to the client (any BCP 47 tag is accepted by the API).
LANGUAGES = (
    ("en", "English"),
    ("es", "Spanish"),
    ("zh", "Chinese"),
    ("vi", "Vietnamese"),
    ("ar", "Arabic"),
    ("ht", "Haitian Creole"),
    ("pt", "Portuguese"),
    ("ru", "Russian"),
    ("ko", "Korean"),
    ("fr", "French"),
)
CHANNEL_LABELS = {
    Channel.SMS.value: "Text messages (SMS)",
    Channel.EMAIL.value: "Email",
    Channel.VOICE.value: "Voice calls",
}
#: A contact consent in a sentence: "Contact by text message".
CONTACT_LABELS = {Channel.SMS.value: "text message", Channel.EMAIL.value: "email", Channel.VOICE.value: "voice call"}
#: The TEDS discharge reasons (clinic.clients.operations.TEDS_REASONS), as people read them.
TEDS_LABELS: dict[int, tuple[str, str]] = {
    1: ("Treatment completed", "The client completed the plan of care."),
    2: ("Dropped out", "The client left against advice or stopped coming."),
    3: ("Terminated by the facility", "Discharged for breaking program rules or not taking part."),
    4: ("Transferred", "Moved to another program or facility for more treatment."),
    5: ("Incarcerated", "Jailed or imprisoned."),
    6: ("Death", ""),
    7: ("Other", "Moved away, illness, hospitalization or another reason."),
}
#: ASAM levels of care (both editions) with their names; the edition's own list is the operation's.
ASAM_LABELS: dict[str, str] = {
    "0.5": "Early intervention",
    "1": "Outpatient services",
    "1-OTP": "Opioid treatment program (OTP)",
    "1.5": "Outpatient therapy (4th edition)",
    "1.7": "Medically managed outpatient (4th edition)",
    "2.1": "Intensive outpatient",
    "2.5": "Partial hospitalization / high-intensity outpatient",
    "2.7": "Medically managed intensive outpatient (4th edition)",
    "3.1": "Clinically managed low-intensity residential",
    "3.3": "Clinically managed population-specific high-intensity residential",
    "3.5": "Clinically managed high-intensity residential",
    "3.7": "Medically monitored intensive inpatient",
    "4": "Medically managed intensive inpatient",
    "1-WM": "Ambulatory withdrawal management without extended on-site monitoring",
    "2-WM": "Ambulatory withdrawal management with extended on-site monitoring",
    "3.2-WM": "Clinically managed residential withdrawal management",
    "3.7-WM": "Medically monitored inpatient withdrawal management",
    "4-WM": "Medically managed intensive inpatient withdrawal management",
}
TIMELINE_LABELS = {
    "appointment": "Appointment",
    "assessment": "Assessment",
    "consent.recorded": "Consent",
    "consent.revoked": "Consent revoked",
    "drug_screen": "Drug screen",
    "episode.admitted": "Admission",
    "episode.discharged": "Discharge",
    "intake_call": "Intake call",
    "plan.review": "Plan review",
    "plan.revision": "Plan",
}

REGISTER_LABELS = {
    "first_name": "Given name",
    "last_name": "Family name",
    "date_of_birth": "Date of birth",
    "sex_at_birth": "Sex at birth",
    "phone": "Phone",
    "email": "Email",
    "preferred_language": "Language for messages",
    "primary_clinician_id": "Primary clinician",
    "site_id": "Site",
}
EPISODE_LABELS = {
    "admitted_on": "Date of admission",
    "level_of_care": "Level of care",
    "asam_edition": "ASAM Criteria edition",
    "referral_source": "Referred by",
    "discharged_on": "Date of discharge",
    "reason_code": "Reason for discharge",
    "note": "Note",
}
CONSENT_LABELS = {
    "channel": "Channel",
    "granted_on": "Date consent was given",
    "evidence": "How consent was given",
    "recipient": "Recipient",
    "purpose": "Purpose of the disclosure",
    "information_description": "Information that may be disclosed",
    "disclosing_party": "Who may disclose",
    "signed_on": "Date signed",
    "signature_name": "Signed by",
    "expires_on": "Expiry date",
    "expiry_event": "Expiry event",
    "revocation_acknowledged": "Right to revoke",
}


#: What to say of a required field left empty (instead of the schema's "Missing data for required field.").
REQUIRED = {
    "first_name": "Enter the client's given name.",
    "last_name": "Enter the client's family name.",
    "date_of_birth": "Enter the date of birth.",
    "site_id": "Choose the client's site.",
    "admitted_on": "Enter the date of admission.",
    "level_of_care": "Choose the level of care.",
    "discharged_on": "Enter the date of discharge.",
    "reason_code": "Choose the reason for discharge.",
    "channel": "Choose how the client agreed to be contacted.",
    "granted_on": "Enter the date consent was given.",
    "evidence": "Say how consent was given.",
}
_MISSING = "Missing data for required field."


def _explained(errors: FormErrors) -> FormErrors:
    """The schema's and operations' messages, a required field left empty said as what to do."""
    return FormErrors({
        name: [REQUIRED.get(name, message) if message == _MISSING else message for message in messages]
        for name, messages in errors.items()
    })


def format_phone(value: str | None) -> str:
    """A stored E.164 number as people write it: national in the clinic's region, else international."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    national = phonenumbers.region_code_for_number(number) == default_region()
    style = phonenumbers.PhoneNumberFormat.NATIONAL if national else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


@blp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "phone": format_phone,
        "status_labels": STATUS_LABELS,
        "sex_labels": SEX_LABELS,
        "asam_labels": ASAM_LABELS,
        "teds_labels": TEDS_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "contact_labels": CONTACT_LABELS,
        "timeline_labels": TIMELINE_LABELS,
        "languages": dict(LANGUAGES),
        "when": when,
    }


def when(at: datetime, zone: str) -> str:
    """An entry's time in the site's zone; a day's entry (local midnight) as its date alone."""
    local = to_local(as_utc(at), zone)
    if local.time() == time.min:
        return long_date(at, zone)
    return date_time(at, zone)


def _ints(values: dict[str, Any], *names: str) -> dict[str, Any]:
    """Form fields that hold ids or codes, as the integers the API's schemas take (others left to fail)."""
    for name in names:
        if name in values:
            values[name] = as_number(values[name])
    return values


def _site_today(site_id: int) -> date:
    return local_today(db.session.get_one(Site, site_id).timezone)


def _sites_of(user: User) -> dict[int, Site]:
    return {site.id: site for site in sorted(user.sites, key=lambda s: s.name)}


# --- search ----------------------------------------------------------------------------------


@blp.route("/clients/search", methods=["GET"])
@requires(Permission.CLIENTS_READ)
def quick_search() -> Response:
    """The top bar's as-you-type search: up to eight matches as links, each read audited as a search."""
    user = authenticated_user()
    q = request.args.get("q", "").strip()
    context: dict[str, Any] = {"q": q, "clients": [], "more": False, "message": None, "sites": _sites_of(user)}
    if not q:
        return page("clients/_quick_results.html", **context)
    data, errors = load_form(ClientQuerySchema(), {"q": q})
    if not errors:
        found, errors = attempt(ops.search_clients, user, q=data["q"], limit=QUICK_SIZE, cursor=None)
    if errors:
        context["message"] = next(iter(errors.values()))[0]
    else:
        context["clients"] = found.items
        context["more"] = found.next_cursor is not None
    return page("clients/_quick_results.html", **context)


@blp.route("/clients", methods=["GET"])
@requires(Permission.CLIENTS_READ)
def search() -> Response:
    """Find clients by name, MRN or phone (all of the caller's clients without a search), A to Z."""
    user = authenticated_user()
    filters = {name: request.args.get(name, "").strip() for name in ("q", "status", "site_id", "mine")}
    visible_id(filters["site_id"], user.site_ids)  # another site (or text): the "page not found" page
    args = {name: filters[name] for name in ("q", "status", "site_id") if filters[name]}
    if filters["mine"] and user.role is Role.CLINICIAN:
        args["clinician_id"] = str(user.id)
    if request.args.get("cursor"):
        args["cursor"] = request.args["cursor"]
    data, errors = load_form(ClientQuerySchema(), args)
    found = None
    if not errors:
        found, errors = attempt(ops.search_clients, user, **{**data, "limit": PAGE_SIZE})
    next_url = None
    if found is not None and found.next_cursor:
        kept: dict[str, Any] = {name: value for name, value in filters.items() if value}
        next_url = url_for("client_pages.search", **kept, cursor=found.next_cursor)
    return page(
        "clients/search.html",
        status=422 if errors else 200,
        filters=filters,
        errors=errors,
        clients=found.items if found is not None else [],
        next_url=next_url,
        first_page=not request.args.get("cursor"),
        sites=_sites_of(user),
        site_options=[(site.id, site.name) for site in _sites_of(user).values()],
        today=_site_today(current_site_id() or min(user.site_ids)) if user.site_ids else utcnow().date(),
        can_register=has_permission(user, Permission.CLIENTS_WRITE),
        is_clinician=user.role is Role.CLINICIAN,
    )


# --- register --------------------------------------------------------------------------------


def _register_form(
    values: Mapping[str, Any], errors: FormErrors, *, status: int = 200, candidates: Sequence[Any] = ()
) -> Response:
    user = authenticated_user()
    directory = directory_of(user)
    sites = {site.id: site for site in directory.sites}
    clinicians = [
        (c.id, c.name if len(sites) == 1 else f"{c.name} ({', '.join(sites[s].name for s in c.site_ids)})")
        for c in directory.clinicians
    ]
    return page(
        "clients/new.html",
        status=status,
        values=values,
        errors=errors,
        labels=REGISTER_LABELS,
        sites=[(site.id, site.name) for site in directory.sites],
        clinicians=clinicians,
        languages=LANGUAGES,
        sexes=list(SEX_LABELS.items()),
        candidates=candidates,
        site_names={site.id: site.name for site in directory.sites},
    )


@blp.route("/clients/new", methods=["GET"])
@requires(Permission.CLIENTS_WRITE)
def new_client() -> Response:
    return _register_form({"site_id": current_site_id(), "preferred_language": "en"}, FormErrors())


@blp.route("/clients/new", methods=["POST"])
@requires(Permission.CLIENTS_WRITE)
def register() -> Response:
    """Register a prospective client (POST /api/v1/clients); likely duplicates are shown to choose from."""
    user = authenticated_user()
    values = form_values()
    allow_duplicate = values.pop("allow_duplicate", "") == "yes"
    # A site or a clinician the user cannot see (or text in their place) is the "page not found" page.
    sent = dict(values)
    for name, visible in (("site_id", user.site_ids),
                          ("primary_clinician_id", [c.id for c in directory_of(user).clinicians])):
        if name in sent:
            sent[name] = visible_id(sent[name], visible)
    data, errors = load_form(ClientCreateSchema(), sent)
    client = None
    if not errors:
        require_site_in_scope(data["site_id"], user)
        client, errors = attempt(ops.register_client, actor=user, allow_duplicate=allow_duplicate, **data)
    if client is None:
        refusal = errors.problem
        duplicate = refusal is not None and refusal.problem == "likely-duplicate"
        candidates = [
            {**c, "date_of_birth": date.fromisoformat(c["date_of_birth"])} for c in refusal.extra.get("candidates", [])
        ] if duplicate else []
        status = 409 if candidates else 422
        return _register_form(values, _explained(errors), status=status, candidates=candidates)
    return redirect_to(url_for("client_pages.chart", client_id=client.id, registered=1))


# --- the chart -------------------------------------------------------------------------------


def _timeline_key(entry: TimelineEntry) -> tuple[Any, str, int]:
    return (as_utc(entry.at), entry.kind, entry.resource_id)


def _timeline_page(client: Client, user: User, cursor: str | None) -> tuple[list[TimelineEntry], str | None]:
    """One page of the client's timeline (the API's, audited as it is), newest first."""
    entries = ops.client_timeline(client, user)
    newest = sorted(entries, key=_timeline_key, reverse=True)
    if cursor:
        at, kind, resource_id = decode_cursor(cursor, 3)
        bound = (as_utc(at), kind, resource_id)
        newest = [entry for entry in newest if _timeline_key(entry) < bound]
    shown = newest[:TIMELINE_SIZE]
    more = len(newest) > TIMELINE_SIZE
    next_cursor = encode_cursor(list(_timeline_key(shown[-1]))) if more and shown else None
    return shown, next_cursor


@blp.route("/clients/<int:client_id>", methods=["GET"])
@requires(Permission.CLIENTS_READ)
def chart(client_id: int) -> Response:
    """The chart: the banner, the care in force, consents, registration details, then the timeline."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=True)
    context = banner_context(client, user)
    consents = ops.visible_consents(client, user)
    timeline, next_cursor = _timeline_page(client, user, None)
    clinician = db.session.get(User, client.primary_clinician_id) if client.primary_clinician_id else None
    return page(
        "clients/chart.html",
        client=client,
        care=care_summary(client, user),
        consents=consents,
        today=context["banner"].on,
        timeline=timeline,
        next_cursor=next_cursor,
        primary_clinician=clinician,
        registered=request.args.get("registered") == "1",
        can_write_clinical=has_permission(user, Permission.CLINICAL_WRITE),
        **context,
    )


@blp.route("/clients/<int:client_id>/timeline", methods=["GET"])
@requires(Permission.CLIENTS_READ)
def timeline(client_id: int) -> Response:
    """The timeline's next (older) entries: rows for htmx to append, or a page of their own."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=not is_htmx())
    entries, next_cursor = _timeline_page(client, user, request.args.get("cursor"))
    site = db.session.get_one(Site, client.site_id)
    if is_htmx():
        return page("clients/_timeline_items.html", client=client, timeline=entries, next_cursor=next_cursor,
                    zone=site.timezone)
    return page("clients/timeline.html", client=client, timeline=entries, next_cursor=next_cursor,
                **banner_context(client, user, current="client_pages.chart"))


# --- episodes --------------------------------------------------------------------------------


def _episodes_page(client: Client, values: Mapping[str, Any], errors: FormErrors, *, status: int = 200) -> Response:
    user = authenticated_user()
    episodes = ops.list_episodes(client)
    context = banner_context(client, user, episodes=episodes)
    today = context["banner"].on
    open_episode = context["banner"].open_episode
    defaults = {"discharged_on": today.isoformat()} if open_episode else {"admitted_on": today.isoformat(),
                                                                           "asam_edition": "3"}
    levels = sorted(ops.ASAM_LEVELS["4"], key=lambda code: list(ASAM_LABELS).index(code))
    return page(
        "clients/episodes.html",
        status=status,
        client=client,
        episodes=episodes,
        values={**defaults, **values},
        errors=errors,
        labels=EPISODE_LABELS,
        levels=[(code, f"{code} — {ASAM_LABELS.get(code, code)}") for code in levels],
        reasons=[(code, label, hint) for code, (label, hint) in TEDS_LABELS.items()],
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
        done=request.args.get("done"),
        **context,
    )


@blp.route("/clients/<int:client_id>/episodes", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def episodes(client_id: int) -> Response:
    """The client's episodes of care, newest first; admit, or discharge the open one."""
    return _episodes_page(load_client(client_id, audit_read=True), {}, FormErrors())


@blp.route("/clients/<int:client_id>/episodes", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def admit(client_id: int) -> Response:
    """Admit the client to an episode of care (POST /api/v1/clients/{id}/episodes)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values()
    data, errors = load_form(EpisodeCreateSchema(), values)
    episode = None
    if not errors:
        episode, errors = attempt(ops.admit, client, actor=user, **data)
    if episode is None:
        return _episodes_page(load_client(client_id, audit_read=True), values, _explained(errors), status=422)
    return redirect_to(url_for("client_pages.episodes", client_id=client.id, done="admitted"))


@blp.route("/clients/<int:client_id>/episodes/<int:episode_id>/discharge", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def discharge(client_id: int, episode_id: int) -> Response:
    """Discharge the client from the episode with a TEDS reason (POST /api/v1/episodes/{id}/discharge)."""
    user = authenticated_user()
    client = load_client(client_id)
    episode = get_scoped_or_404(Episode, episode_id, user)
    if episode.client_id != client.id:
        _not_found()
    values = form_values()
    data, errors = load_form(DischargeSchema(), _ints(dict(values), "reason_code"))
    done = None
    if not errors:
        done, errors = attempt(ops.discharge, episode, actor=user, discharged_on=data["discharged_on"],
                               reason_code=data["reason_code"], note=data.get("note"))
    if done is None:
        return _episodes_page(load_client(client_id, audit_read=True), values, _explained(errors), status=422)
    return redirect_to(url_for("client_pages.episodes", client_id=client.id, done="discharged"))


def _not_found() -> NoReturn:
    abort_problem(404, "Not found.")


# --- consents and disclosures ----------------------------------------------------------------


@blp.route("/clients/<int:client_id>/consents", methods=["GET"])
@requires(Permission.CLIENTS_READ)
def consents(client_id: int) -> Response:
    """The client's consents and, for clinicians, the accounting of disclosures."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=True)
    clinical = has_permission(user, Permission.CLINICAL_READ)
    context = banner_context(client, user)
    return page(
        "clients/consents.html",
        client=client,
        consents=ops.visible_consents(client, user),
        disclosures=disclosures.accounting(client) if clinical else None,
        today=context["banner"].on,
        can_write=has_permission(user, Permission.CLIENTS_WRITE),
        can_write_clinical=has_permission(user, Permission.CLINICAL_WRITE),
        done=request.args.get("done"),
        **context,
    )


def _consent_form(client: Client, kind: str, values: Mapping[str, Any], errors: FormErrors, *,
                  status: int = 200) -> Response:
    user = authenticated_user()
    context = banner_context(client, user, current="client_pages.consents")
    return page(
        "clients/consent_new.html",
        status=status,
        client=client,
        kind=kind,
        values=values,
        errors=errors,
        labels=CONSENT_LABELS,
        channels=list(CHANNEL_LABELS.items()),
        today=context["banner"].on,
        **context,
    )


def _consent_kind(raw: str | None, user: User) -> str:
    if raw == ConsentKind.DISCLOSURE.value and has_permission(user, Permission.CLINICAL_WRITE):
        return ConsentKind.DISCLOSURE.value
    return ConsentKind.COMMUNICATION.value


@blp.route("/clients/<int:client_id>/consents/new", methods=["GET"])
@requires(Permission.CLIENTS_WRITE)
def new_consent(client_id: int) -> Response:
    """The form for a communication consent, or (clinicians) a 42 CFR 2.31 disclosure consent."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=True)
    kind = _consent_kind(request.args.get("kind"), user)
    today = _site_today(client.site_id).isoformat()
    site = db.session.get_one(Site, client.site_id)
    defaults = (
        {"granted_on": today}
        if kind == ConsentKind.COMMUNICATION.value
        else {"signed_on": today, "disclosing_party": site.name,
              "signature_name": f"{client.first_name} {client.last_name}"}
    )
    return _consent_form(client, kind, defaults, FormErrors())


@blp.route("/clients/<int:client_id>/consents", methods=["POST"])
@requires(Permission.CLIENTS_WRITE)
def record_consent(client_id: int) -> Response:
    """Record a consent (POST /api/v1/clients/{id}/consents)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values()
    kind = _consent_kind(values.get("kind"), user)  # the form to show again
    # The kind posted, as the API takes it: who may record a disclosure consent is the operation's rule.
    data, errors = load_form(ConsentCreateSchema(), {**values, "kind": values.get("kind", kind)})
    consent = None
    if not errors:
        fields = {name: value for name, value in data.items() if name != "kind"}
        consent, errors = attempt(ops.record_consent, client, actor=user, kind=data["kind"], fields=fields)
    if consent is None:
        return _consent_form(load_client(client_id, audit_read=True), kind, values, _explained(errors), status=422)
    return redirect_to(url_for("client_pages.consents", client_id=client.id, done="recorded"))


@blp.route("/clients/<int:client_id>/consents/<int:consent_id>/revoke", methods=["POST"])
@requires(Permission.CLIENTS_WRITE)
def revoke_consent(client_id: int, consent_id: int) -> Response:
    """Revoke a consent (POST /api/v1/consents/{id}/revoke); it stops applying from the next request."""
    user = authenticated_user()
    client = load_client(client_id)
    consent: Consent = ops.get_consent_or_404(consent_id, user)
    if consent.client_id != client.id:
        _not_found()
    ops.revoke_consent(consent, actor=user)
    return redirect_to(url_for("client_pages.consents", client_id=client.id, done="revoked"))
