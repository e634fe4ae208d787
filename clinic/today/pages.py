"""The clinician's day (/today): appointments with one-click check-in and complete, alerts, reviews due, follow-ups.

Check in and Complete are the API's status changes (``POST /appointments/{id}/check-in`` and
``/complete``): the same loader, the same operation, the same permission. With htmx the row is
swapped and says what happened; without JavaScript the form posts and the page comes back.
"""

from __future__ import annotations

from typing import Any

from flask import Response, url_for

from clinic.auth.models import Site
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.clients.loaders import clients_by_id
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    attempt,
    current_site,
    form_values,
    is_htmx,
    load_form,
    page,
    redirect_to,
)
from clinic.core.time import to_local, utcnow
from clinic.intake.pages import RISK_LABELS, URGENT_RISKS
from clinic.scheduling import operations as scheduling_ops
from clinic.scheduling.loaders import load_appointment
from clinic.scheduling.models import Appointment, AppointmentStatus
from clinic.scheduling.schemas import LateEntrySchema
from clinic.today import operations as ops

blp = ConsoleBlueprint("today_pages", __name__)


@blp.context_processor
def _risk_labels() -> dict[str, Any]:
    """The follow-ups' risk flags in the intake queue's words and colours (intake/_risk.html)."""
    return {"RISK_LABELS": RISK_LABELS, "URGENT_RISKS": URGENT_RISKS}


@blp.route("/today", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ, Permission.CLINICAL_READ, Permission.INTAKE_READ)
def today() -> Response:
    user = authenticated_user()
    site: Site | None = current_site()
    if site is None:
        return page("today/today.html", day=None)
    return page("today/today.html", day=ops.clinician_day(user, site))


@blp.route("/today/appointments/<int:appointment_id>/check-in", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def check_in(appointment_id: int) -> Response:
    """The client arrived: the API's check-in."""
    appointment = load_appointment(appointment_id)
    _, errors = attempt(
        scheduling_ops.transition, appointment, AppointmentStatus.CHECKED_IN, actor=authenticated_user()
    )
    return _after_change(appointment, errors)


@blp.route("/today/appointments/<int:appointment_id>/complete", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def complete(appointment_id: int) -> Response:
    """The visit took place: the API's complete (an ended one with the reason it is recorded late)."""
    appointment = load_appointment(appointment_id)
    values = form_values()
    data, errors = load_form(LateEntrySchema(), values)
    if not errors:
        _, errors = attempt(
            scheduling_ops.transition,
            appointment,
            AppointmentStatus.COMPLETED,
            actor=authenticated_user(),
            late_entry_reason=data.get("late_entry_reason"),
        )
    return _after_change(appointment, errors, values)


def _after_change(appointment: Appointment, errors: FormErrors, values: dict[str, Any] | None = None) -> Response:
    """htmx: the row, saying what happened or why not. A form post: back to the day, or the day with the refusal.

    A refused change is undone (``attempt``); the page that shows the refusal is a page view,
    audited as the day's reads always are.
    """
    user = authenticated_user()
    if is_htmx():
        own = next((s for s in user.sites if s.id == appointment.site_id), None)
        tz = own.timezone if own is not None else appointment.timezone
        now = utcnow()
        return page(
            "today/appointment_row.html",
            appointment=appointment,
            clients=clients_by_id(user, [appointment.client_id] if appointment.client_id else []),
            tz=tz,
            now=now,
            on=to_local(now, tz).date(),
            errors=errors,
            values=values or {},
        )
    if not errors:
        return redirect_to(url_for("today_pages.today") + f"#appointment-{appointment.id}")
    site: Site | None = current_site()
    day = ops.clinician_day(user, site) if site is not None else None
    status = 422 if any(name != "_schema" for name in errors) else 409
    return page(
        "today/today.html", status=status, day=day, refused={appointment.id: errors}, values=values or {},
    )
