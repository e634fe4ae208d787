"""The console's medication page: orders, dose history, the safety rules' messages and overrides.

Each view mirrors the API view of the same data (clinic.plans.api): the same permission, loaders
and operations (``medications.list_for_client``, ``add_medication``, ``update_medication``,
``mark_entered_in_error``), so every read is audited as the API's is, and a refusal by the
medication safety rules (docs/medications.md) is shown beside the fields it names, with the
override reason asked for when every rule broken may be overridden.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from flask import Response, current_app, request, url_for
from sqlalchemy import select

from clinic.audit.operations import audit
from clinic.auth.directory import directory_of
from clinic.auth.models import Site, User
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
from clinic.console.dates import long_date
from clinic.extensions import db
from clinic.plans import medications
from clinic.plans import operations as plan_ops
from clinic.plans.models import OPIOID_AGONISTS, Medication, MedicationName, MedicationPhase, Plan, PlanStatus
from clinic.plans.schemas import EnteredInErrorSchema, MedicationCreateSchema, MedicationPatchSchema
from clinic.plans.summary import MEDICATION_NAMES

blp = ConsoleBlueprint("medication_pages", __name__)

PHASE_LABELS: dict[str, tuple[str, str]] = {
    MedicationPhase.INDUCTION.value: ("Induction", "The first days; a buprenorphine induction needs a recent COWS."),
    MedicationPhase.STABILIZATION.value: ("Stabilization", "Finding the dose that holds."),
    MedicationPhase.MAINTENANCE.value: ("Maintenance", "A steady dose."),
    MedicationPhase.TAPER.value: ("Taper", "Coming down."),
}
UNITS = (("mg", "mg"), ("mcg", "mcg"), ("mL", "mL"))
RULE_LABELS: dict[str, str] = {
    "methadone_requires_otp": "Methadone only at an opioid treatment program",
    "induction_requires_cows": "Induction without a COWS of withdrawal",
    "dose_above_limit": "Dose above the limit",
    "methadone_first_dose": "Methadone first-day dose",
    "agonist_antagonist_conflict": "Agonist and naltrexone at the same time",
    "naltrexone_washout": "Naltrexone too soon after opioids",
    "duplicate_agonist": "Two opioid agonists at the same time",
}
LABELS = {
    "medication": "Medication",
    "dose": "Dose",
    "unit": "Unit",
    "frequency": "Frequency",
    "phase": "Phase",
    "prescriber_id": "Prescriber",
    "start_on": "Start date",
    "end_on": "End date",
    "first_dose_at": "First dose",
    "transfer_from_medication_id": "Replaces",
    "override_reason": "Override reason",
    "effective_on": "Takes effect on",
    "reason": "Reason",
    "safety-rules": "Safety rules",
}
REQUIRED = {
    "medication": "Choose the medication.",
    "dose": "Enter the dose.",
    "unit": "Choose the unit.",
    "frequency": "Enter how often, for example daily.",
    "phase": "Choose the phase.",
    "prescriber_id": "Choose the prescriber.",
    "start_on": "Enter the start date.",
    "reason": "Say why the entry was entered in error.",
}
_MISSING = "Missing data for required field."
_CREATE_FIELDS = (
    "medication",
    "dose",
    "unit",
    "frequency",
    "phase",
    "prescriber_id",
    "start_on",
    "end_on",
    "first_dose_at",
    "transfer_from_medication_id",
)
_PATCH_FIELDS = ("dose", "unit", "frequency", "phase", "end_on", "effective_on", "reason", "first_dose_at")
_DOSING = ("dose", "unit", "frequency", "phase")
#: Where a rule's message is shown: the form's field for the rule's field (a COWS is the phase's matter).
_RULE_FIELD = {"cows": "phase"}


def medication_name(value: Any) -> str:
    key = MedicationName(value) if not isinstance(value, MedicationName) else value
    return MEDICATION_NAMES.get(key, key.value)


def dose_text(dose: Any, unit: str) -> str:
    return f"{Decimal(str(dose)).normalize():f} {unit}"


@blp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "medication_name": medication_name,
        "dose_text": dose_text,
        "phase_labels": PHASE_LABELS,
        "rule_labels": RULE_LABELS,
        "labels": LABELS,
        "plans_url": _plans_url(),
    }


def _plans_url() -> str | None:
    """The client's Plans tab, when that page exists."""
    client_id = (request.view_args or {}).get("client_id")
    if client_id is None or "plan_pages.client_plans" not in current_app.view_functions:
        return None
    return url_for("plan_pages.client_plans", client_id=client_id)


# --- the wall clock of the client's site ----------------------------------------------------------


class _SiteZone:
    """Offset-less times (a ``datetime-local`` field) are read in the client's site's zone."""

    zone: ClassVar[str] = "UTC"

    def wall_clock_zone(self, data: Mapping[str, Any]) -> str | None:
        return self.zone


def _create_schema(zone: str) -> MedicationCreateSchema:
    schema_class = type("ConsoleMedicationCreate", (_SiteZone, MedicationCreateSchema), {"zone": zone})
    return schema_class()  # type: ignore[no-any-return]


def _patch_schema(zone: str) -> MedicationPatchSchema:
    schema_class = type("ConsoleMedicationPatch", (_SiteZone, MedicationPatchSchema), {"zone": zone})
    return schema_class()  # type: ignore[no-any-return]


# --- reading ------------------------------------------------------------------------------------


def _user_names(orders: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    ids: set[int] = set()
    for order in orders:
        ids.add(order["prescriber_id"])
        ids.update(o["by_user_id"] for o in order["overrides"] if o["by_user_id"])
        for entry in order["history"]:
            if entry["changed_by_id"]:
                ids.add(entry["changed_by_id"])
            if entry["entered_in_error"] and entry["entered_in_error"]["by_user_id"]:
                ids.add(entry["entered_in_error"]["by_user_id"])
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.name).where(User.id.in_(ids)))
    return {row.id: row.name for row in rows}


def _entry_status(order: Mapping[str, Any], today: date) -> dict[int, str]:
    """Each history entry's state on ``today``: in-force, scheduled, earlier, error (entered in error)."""
    running = order["start_on"] <= today and (order["end_on"] is None or order["end_on"] >= today)
    counted = [e for e in order["history"] if e["entered_in_error"] is None]
    begun = [e for e in counted if e["effective_on"] <= today]
    in_force = begun[-1]["id"] if begun and running else None
    states: dict[int, str] = {}
    for entry in order["history"]:
        if entry["entered_in_error"] is not None:
            states[entry["id"]] = "error"
        elif entry["id"] == in_force:
            states[entry["id"]] = "in-force"
        elif entry["effective_on"] > today and entry["effective_on"] <= order["start_on"]:
            states[entry["id"]] = "at-start"  # an order not begun yet: its first dose
        elif entry["effective_on"] > today:
            states[entry["id"]] = "scheduled"
        else:
            states[entry["id"]] = "earlier"
    return states


def _active_plan(client: Client) -> Plan | None:
    plans = plan_ops.list_plans(client)  # audited as plan.read (via list), as the API's list is
    return next((plan for plan in plans if plan.status is PlanStatus.ACTIVE), None)


def _is_current(order: Mapping[str, Any], today: date) -> bool:
    return order["end_on"] is None or order["end_on"] >= today


def _order(client: Client, medication_id: int) -> Medication:
    med = get_scoped_or_404(Medication, medication_id, authenticated_user())
    if med.client_id != client.id:
        not_found()
    return med


@blp.route("/clients/<int:client_id>/medications", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def client_medications(client_id: int) -> Response:
    """The client's orders, current first, each with its dose history (GET /api/v1/clients/{id}/medications)."""
    user = authenticated_user()
    client = load_client(client_id, audit_read=True)
    context = banner_context(client, user)
    today = context["banner"].on
    orders = medications.list_for_client(client)  # audited as medication.read (via list)
    plan = _active_plan(client)
    current = [o for o in orders if _is_current(o, today)]
    ended = [o for o in orders if not _is_current(o, today)]
    done = request.args.get("done")
    return page(
        "plans/medications.html",
        client=client,
        current=current,
        ended=ended,
        plan=plan,
        today=today,
        names=_user_names(orders),
        states={o["id"]: _entry_status(o, today) for o in orders},
        agonists={m.value for m in OPIOID_AGONISTS},
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
        done=done if done in ("started", "changed", "scheduled", "error", "unchanged") else None,
        done_id=request.args.get("medication_id", type=int),
        **context,
    )


# --- the safety rules on a form ----------------------------------------------------------------


_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}))?\b")


def _in_words(detail: str, site: Site) -> str:
    """A rule's message as people read it: medication names, dates as written in the US."""
    for value in sorted((m.value for m in MedicationName), key=len, reverse=True):
        # The codes ("buprenorphine_naloxone (order 12)", "for methadone (400 mg per day)"), not the prose.
        code = rf"\b{value}\b" if "_" in value else rf"\b{value}\b(?= \()"
        detail = re.sub(code, medication_name(value), detail)

    def day(match: re.Match[str]) -> str:
        try:
            written = long_date(date(int(match[1]), int(match[2]), int(match[3])))
        except ValueError:
            return match[0]
        if match[4]:
            hour, minute = int(match[4]), int(match[5])
            written += f", {hour % 12 or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"
        return written

    detail = _ISO_DAY.sub(day, detail).replace("to open end", "with no end date")
    return detail.replace("(is_otp)", "(OTP)").replace("This site", site.name)


def _refusal(errors: FormErrors, site: Site, *, override_asked: bool, reason: str) -> tuple[FormErrors, dict[str, Any]]:
    """The form's errors and what the page says of the safety rules an operation refused with."""
    problem = errors.problem
    if problem is None or getattr(problem, "problem", None) != "medication-safety":
        return _explained(errors), {}
    broken = list(problem.extra.get("rules", []))
    shown = FormErrors()
    for rule in broken:
        field = _RULE_FIELD.get(rule["field"], rule["field"])
        suffix = (
            " You may override this rule with a reason." if rule["overridable"] else " This rule cannot be overridden."
        )
        shown.setdefault(field, []).append(_in_words(rule["detail"], site) + suffix)
    overridable = bool(broken) and all(rule["overridable"] for rule in broken)
    if overridable:  # in the summary too, whose link takes the keyboard to the reason
        shown["override_reason"] = [
            "Say why you override the rules, or change the order."
            if override_asked and not reason.strip()
            else "Give your reason to go ahead with override, or change the order."
        ]
    return shown, {"rules": broken, "overridable": overridable}


def _explained(errors: FormErrors) -> FormErrors:
    found = FormErrors(
        {
            _RULE_FIELD.get(name, name): [REQUIRED.get(name, m) if m == _MISSING else m for m in messages]
            for name, messages in errors.items()
        }
    )
    found.problem = errors.problem
    return found


def _overriding() -> tuple[bool, str]:
    """Whether the form was sent with *… with override*, and the reason typed."""
    return request.form.get("action") == "override", request.form.get("override_reason", "")


# --- starting an order ---------------------------------------------------------------------------


def _prescribers(user: User, site_id: int) -> list[tuple[int, str]]:
    return [(c.id, c.name) for c in directory_of(user).clinicians if site_id in c.site_ids]


def _new_page(
    client: Client,
    values: Mapping[str, Any],
    errors: FormErrors,
    *,
    status: int = 200,
    safety: Mapping[str, Any] | None = None,
) -> Response:
    user = authenticated_user()
    context = banner_context(client, user, current="medication_pages.client_medications")
    today = context["banner"].on
    site: Site = context["banner"].site
    plan = _active_plan(client)
    orders = medications.list_for_client(client) if plan is not None else []
    replaceable = [
        (
            o["id"],
            f"{medication_name(o['medication'])} {dose_text(o['dose'], o['unit'])} {o['frequency']}, "
            f"since {long_date(o['start_on'])}",
        )
        for o in orders
        if _is_current(o, today)
    ]
    meds = []
    for name in MedicationName:
        hint = _medication_hint(name, site)
        meds.append((name.value, medication_name(name), hint))
    return page(
        "plans/medication_new.html",
        status=status,
        client=client,
        plan=plan,
        site=site,
        values={"unit": "mg", "frequency": "daily", "start_on": today.isoformat(), "prescriber_id": user.id, **values},
        errors=errors,
        safety=safety or {},
        meds=meds,
        units=UNITS,
        phases=[(key, label, hint) for key, (label, hint) in PHASE_LABELS.items()],
        prescribers=_prescribers(user, client.site_id),
        replaceable=replaceable,
        **context,
    )


def _medication_hint(name: MedicationName, site: Site) -> str:
    if name is MedicationName.METHADONE:
        if site.is_otp:
            return "Dispensed by this opioid treatment program; first day at most 50 mg."
        return f"Not at {site.name}: methadone is dispensed only by an opioid treatment program (OTP)."
    return {
        MedicationName.BUPRENORPHINE: "Sublingual; usual maximum 24 mg a day.",
        MedicationName.BUPRENORPHINE_NALOXONE: "Sublingual film or tablet; usual maximum 24 mg a day.",
        MedicationName.NALTREXONE_ORAL: "Tablets; 7 days opioid-free first (14 after methadone).",
        MedicationName.NALTREXONE_XR: "380 mg injection every 4 weeks; opioid-free first.",
    }[name]


@blp.route("/clients/<int:client_id>/medications/new", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def new_medication(client_id: int) -> Response:
    """The form to start a medication under the client's active plan (a transfer names the order it replaces)."""
    client = load_client(client_id, audit_read=True)
    values: dict[str, Any] = {}
    transfer = request.args.get("transfer_from", type=int)
    if transfer is not None:
        values["transfer_from_medication_id"] = transfer
    return _new_page(client, values, FormErrors())


@blp.route("/clients/<int:client_id>/medications", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def start_medication(client_id: int) -> Response:
    """Start a medication (POST /api/v1/plans/{id}/medications), overriding the rules that allow it."""
    user = authenticated_user()
    client = load_client(client_id)
    site = db.session.get_one(Site, client.site_id)
    values = form_values()
    # Chosen from lists, never typed: an id the user may not see is the "page not found" page.
    visible_id(values.get("prescriber_id"), [c.id for c in directory_of(user).clinicians])
    orders_of_client = db.session.scalars(select(Medication.id).where(Medication.client_id == client.id))
    visible_id(values.get("transfer_from_medication_id"), list(orders_of_client))
    plan = _active_plan(client)
    if plan is None:
        return _new_page(load_client(client_id, audit_read=True), values, FormErrors(), status=409)
    asked, reason = _overriding()
    body = {key: values[key] for key in _CREATE_FIELDS if key in values}
    for key in ("prescriber_id", "transfer_from_medication_id"):
        if key in body:
            body[key] = as_number(body[key])
    data, errors = load_form(_create_schema(site.timezone), body)
    safety: dict[str, Any] = {}
    started = None
    if not errors:
        override = reason.strip() if asked and reason.strip() else None
        started, errors = attempt(medications.add_medication, plan, actor=user, override_reason=override, **data)
        if started is None:
            errors, safety = _refusal(errors, site, override_asked=asked, reason=reason)
    else:
        errors = _explained(errors)
    if started is None:
        return _new_page(load_client(client_id, audit_read=True), values, errors, status=422, safety=safety)
    return redirect_to(
        url_for("medication_pages.client_medications", client_id=client.id, done="started", medication_id=started["id"])
        + f"#order-{started['id']}"
    )


# --- changing an order ---------------------------------------------------------------------------


def _view_of(med: Medication) -> dict[str, Any]:
    return medications.detail_view(med)


def _change_page(
    client: Client,
    med: Medication,
    values: Mapping[str, Any],
    errors: FormErrors,
    *,
    status: int = 200,
    safety: Mapping[str, Any] | None = None,
) -> Response:
    user = authenticated_user()
    if "medication" in errors:  # no such field on this form: the summary links to the rules shown
        errors["safety-rules"] = errors.pop("medication")
    context = banner_context(client, user, current="medication_pages.client_medications")
    order = _view_of(med)
    today = context["banner"].on
    defaults = {
        "effective_on": today.isoformat(),
        "dose": f"{Decimal(str(order['dose'])).normalize():f}",
        "unit": order["unit"],
        "frequency": order["frequency"],
        "phase": order["phase"].value,
        "end_on": order["end_on"].isoformat() if order["end_on"] else "",
    }
    return page(
        "plans/medication_change.html",
        status=status,
        client=client,
        order=order,
        values={**defaults, **values},
        errors=errors,
        safety=safety or {},
        units=UNITS,
        phases=[(key, label, hint) for key, (label, hint) in PHASE_LABELS.items()],
        today=today,
        **context,
    )


@blp.route("/clients/<int:client_id>/medications/<int:medication_id>/change", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def change_medication_form(client_id: int, medication_id: int) -> Response:
    """The form to change an order's dose, unit, frequency, phase or end, now or from a later day."""
    client = load_client(client_id, audit_read=True)
    med = _order(client, medication_id)
    audit("read", med, details={"via": "change-form"})
    return _change_page(client, med, {}, FormErrors())


def _same_dose(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a)).quantize(Decimal("0.001")) == Decimal(str(b)).quantize(Decimal("0.001"))
    except InvalidOperation:
        return False


@blp.route("/clients/<int:client_id>/medications/<int:medication_id>/change", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def change_medication(client_id: int, medication_id: int) -> Response:
    """Change an order (PATCH /api/v1/medications/{id}): a later day schedules the change."""
    user = authenticated_user()
    client = load_client(client_id)
    med = _order(client, medication_id)
    site = db.session.get_one(Site, med.site_id)
    values = form_values(drop_empty=False)
    asked, reason = _overriding()
    body = {key: values[key] for key in _PATCH_FIELDS if values.get(key, "").strip() != ""}
    if values.get("end_on", "").strip() == "" and "end_on" in values:
        body["end_on"] = None
    data, errors = load_form(_patch_schema(site.timezone), body)
    safety: dict[str, Any] = {}
    if errors:
        errors = _explained(errors)
    else:
        before = _view_of(med)
        changes: dict[str, Any] = {}
        for key in _DOSING:
            if key in data and not (_same_dose(data[key], before[key]) if key == "dose" else data[key] == before[key]):
                changes[key] = data[key]
        if "end_on" in data and data["end_on"] != before["end_on"]:
            changes["end_on"] = data["end_on"]
        if not changes:
            errors = FormErrors(
                {"_schema": ["Nothing was changed: change the dose, unit, frequency, phase or end date."]}
            )
        else:
            for key in ("effective_on", "reason", "first_dose_at"):
                if data.get(key) is not None:
                    changes[key] = data[key]
            if asked and reason.strip():
                changes["override_reason"] = reason.strip()
            effective_on = changes.get("effective_on")
            changed, errors = attempt(medications.update_medication, med, changes, actor=user)
            if changed is not None:
                scheduled = (
                    effective_on is not None
                    and any(k in changes for k in _DOSING)
                    and bool(changed["scheduled_changes"])
                    and any(c["effective_on"] == effective_on for c in changed["scheduled_changes"])
                )
                return redirect_to(
                    url_for(
                        "medication_pages.client_medications",
                        client_id=client.id,
                        done="scheduled" if scheduled else "changed",
                        medication_id=med.id,
                    )
                    + f"#order-{med.id}"
                )
            errors, safety = _refusal(errors, site, override_asked=asked, reason=reason)
    return _change_page(load_client(client_id, audit_read=True), med, values, errors, status=422, safety=safety)


# --- entered in error ----------------------------------------------------------------------------


def _error_page(
    client: Client, med: Medication, change_id: int, values: Mapping[str, Any], errors: FormErrors, *, status: int = 200
) -> Response:
    user = authenticated_user()
    context = banner_context(client, user, current="medication_pages.client_medications")
    order = _view_of(med)
    entry = next((e for e in order["history"] if e["id"] == change_id), None)
    if entry is None:
        not_found()
    return page(
        "plans/medication_entered_in_error.html",
        status=status,
        client=client,
        order=order,
        entry=entry,
        values=values,
        errors=errors,
        **context,
    )


@blp.route(
    "/clients/<int:client_id>/medications/<int:medication_id>/history/<int:change_id>/entered-in-error", methods=["GET"]
)
@requires(Permission.CLINICAL_WRITE)
def entered_in_error_form(client_id: int, medication_id: int, change_id: int) -> Response:
    """Ask why an entry of the dose history was entered in error."""
    client = load_client(client_id, audit_read=True)
    med = _order(client, medication_id)
    audit("read", med, details={"via": "entered-in-error-form"})
    return _error_page(client, med, change_id, {}, FormErrors())


@blp.route(
    "/clients/<int:client_id>/medications/<int:medication_id>/history/<int:change_id>/entered-in-error",
    methods=["POST"],
)
@requires(Permission.CLINICAL_WRITE)
def mark_entered_in_error(client_id: int, medication_id: int, change_id: int) -> Response:
    """Mark the entry entered in error (POST /api/v1/medications/{id}/history/{change_id}/entered-in-error)."""
    user = authenticated_user()
    client = load_client(client_id)
    med = _order(client, medication_id)
    values = form_values()
    data, errors = load_form(EnteredInErrorSchema(), {k: v for k, v in values.items() if k == "reason"})
    done = None
    if not errors:
        done, errors = attempt(medications.mark_entered_in_error, med, change_id, reason=data["reason"], actor=user)
    if done is None:
        return _error_page(
            load_client(client_id, audit_read=True),
            med,
            change_id,
            values,
            _explained(errors),
            status=422 if errors.problem is None or errors.problem.code == 422 else 409,
        )
    return redirect_to(
        url_for("medication_pages.client_medications", client_id=client.id, done="error", medication_id=med.id)
        + f"#order-{med.id}"
    )
