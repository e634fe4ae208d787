"""The console's overdose prevention page of a client: naloxone and overdose events (``/clients/{id}/overdose``).

Each form is the API's: ``POST /clients/{id}/naloxone``, ``POST /clients/{id}/overdose-events`` and
``POST /overdose-events/{id}/confirm-death``, with the same schema, operation and permission; the
lists are the API's ``GET`` of each (audited ``naloxone_dispense.read``, ``overdose_event.read``).
Whether naloxone is due is the report's rule (:func:`clinic.overdose.operations.naloxone_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, request, url_for

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
)
from clinic.core.time import local_today
from clinic.extensions import db
from clinic.overdose import operations as ops
from clinic.overdose.models import NaloxoneFormulation, OverdoseEvent, OverdoseSource
from clinic.overdose.schemas import NaloxoneCreateSchema, OverdoseEventCreateSchema

blp = ConsoleBlueprint("overdose_pages", __name__)

FORMULATIONS = {
    NaloxoneFormulation.NASAL_4MG.value: "Nasal spray, 4 mg",
    NaloxoneFormulation.NASAL_8MG.value: "Nasal spray, 8 mg",
    NaloxoneFormulation.IM_0_4MG.value: "Intramuscular injection, 0.4 mg/mL",
    NaloxoneFormulation.OTHER.value: "Other",
}
SOURCES = {
    OverdoseSource.CLIENT_REPORT.value: ("The client", "The client told staff."),
    OverdoseSource.ED_NOTICE.value: ("An emergency department", "A notice from the hospital."),
    OverdoseSource.FAMILY.value: ("Family or a friend", None),
    OverdoseSource.OTHER.value: ("Someone else", "Say who in the note."),
}
NALOXONE_USED = (("true", "Yes"), ("false", "No"), ("unknown", "Not known"))
LABELS = {
    "dispensed_on": "Date dispensed",
    "formulation": "Formulation",
    "quantity": "Units handed over",
    "education_given": "Overdose response taught",
    "occurred_on": "Date of the overdose",
    "fatal": "Fatal",
    "naloxone_used": "Naloxone used",
    "substances": "Substances",
    "setting": "Where it happened",
    "source": "Reported by",
    "note": "Note",
}
_MISSING = "Missing data for required field."
_REQUIRED = {
    "dispensed_on": "Enter the date the naloxone was handed over.",
    "formulation": "Choose the formulation.",
    "quantity": "Enter how many units were handed over.",
    "education_given": "Say whether overdose response was taught.",
    "occurred_on": "Enter the date of the overdose.",
    "fatal": "Say whether the overdose was fatal.",
    "naloxone_used": "Say whether naloxone was used (or that it is not known).",
    "source": "Choose who reported the overdose.",
}
_NALOXONE_FIELDS = ("dispensed_on", "formulation", "quantity", "education_given")


def _form_errors(errors: FormErrors) -> FormErrors:
    """Errors keyed by the form's fields (``substances.0`` → ``substances``), a missing field said as what to do."""
    mapped = FormErrors()
    for key, messages in errors.items():
        name = key.split(".", 1)[0]
        for message in messages:
            said = _REQUIRED.get(name, message) if message == _MISSING else message
            if said not in mapped.setdefault(name, []):
                mapped[name].append(said)
    mapped.problem = errors.problem
    return mapped


def _overdose_page(
    client: Client,
    *,
    status: int = 200,
    naloxone_values: Mapping[str, Any] | None = None,
    naloxone_errors: FormErrors | None = None,
    event_values: Mapping[str, Any] | None = None,
    event_errors: FormErrors | None = None,
    confirm_errors: Mapping[int, list[str]] | None = None,
) -> Response:
    user = authenticated_user()
    site = db.session.get_one(Site, client.site_id)
    today = local_today(site.timezone)
    dispenses = ops.list_naloxone(client)
    events = ops.list_overdoses(client)
    context = banner_context(client, user)
    return page(
        "overdose/overdose.html",
        status=status,
        client=client,
        today=today,
        dispenses=dispenses,
        naloxone=ops.naloxone_status(dispenses, today),
        events=events,
        prompts=ops.discharge_prompts(events),
        naloxone_values=naloxone_values or {"dispensed_on": today.isoformat(), "quantity": "2"},
        naloxone_errors=naloxone_errors or FormErrors(),
        event_values=event_values or {"occurred_on": today.isoformat()},
        event_errors=event_errors or FormErrors(),
        confirm_errors=confirm_errors or {},
        labels=LABELS,
        formulations=FORMULATIONS,
        sources=SOURCES,
        source_options=[(value, label, hint) for value, (label, hint) in SOURCES.items()],
        naloxone_used=dict(NALOXONE_USED),
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
        done=request.args.get("done"),
        **context,
    )


@blp.route("/clients/<int:client_id>/overdose", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def client_overdose(client_id: int) -> Response:
    """Naloxone dispensed (and whether it is due) and overdose events, with the forms to record each."""
    return _overdose_page(load_client(client_id, audit_read=True))


@blp.route("/clients/<int:client_id>/naloxone", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def record_naloxone(client_id: int) -> Response:
    """Record naloxone handed to the client (POST /api/v1/clients/{id}/naloxone)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values()
    body = {**values, "quantity": as_number(values.get("quantity"))} if "quantity" in values else values
    data, errors = load_form(NaloxoneCreateSchema(), body)
    dispense = None
    if not errors:
        dispense, errors = attempt(ops.record_naloxone, client, actor=user, **data)
    if dispense is None:
        return _overdose_page(
            load_client(client_id, audit_read=True),
            status=422,
            naloxone_values=values,
            naloxone_errors=_form_errors(errors),
        )
    return redirect_to(url_for("overdose_pages.client_overdose", client_id=client.id, done="naloxone"))


@blp.route("/clients/<int:client_id>/overdose-events", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def record_overdose(client_id: int) -> Response:
    """Record an overdose and alert the client's clinician (POST /api/v1/clients/{id}/overdose-events)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values()
    body: dict[str, Any] = {name: value for name, value in values.items() if name != "substances"}
    body["substances"] = [part.strip().lower() for part in str(values.get("substances", "")).split(",") if part.strip()]
    if "naloxone_used" in body and body["naloxone_used"] == "unknown":
        body["naloxone_used"] = None
    data, errors = load_form(OverdoseEventCreateSchema(), body)
    event = None
    if not errors:
        event, errors = attempt(ops.record_overdose, client, actor=user, **data)
    if event is None:
        return _overdose_page(
            load_client(client_id, audit_read=True), status=422, event_values=values, event_errors=_form_errors(errors)
        )
    done = "fatal" if event.fatal else "overdose"
    return redirect_to(url_for("overdose_pages.client_overdose", client_id=client.id, done=done))


@blp.route("/clients/<int:client_id>/overdose-events/<int:event_id>/confirm-death", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def confirm_death(client_id: int, event_id: int) -> Response:
    """Confirm a fatal overdose: the open episode is discharged with TEDS reason 6 (POST .../confirm-death)."""
    user = authenticated_user()
    client = load_client(client_id)
    event = get_scoped_or_404(OverdoseEvent, event_id, user)
    if event.client_id != client.id:
        not_found()
    confirmed, errors = attempt(ops.confirm_death, event, actor=user)
    if confirmed is None:
        messages = [message for found in errors.values() for message in found]
        return _overdose_page(load_client(client_id, audit_read=True), status=422, confirm_errors={event_id: messages})
    return redirect_to(url_for("overdose_pages.client_overdose", client_id=client.id, done="death-confirmed"))
