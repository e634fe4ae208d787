"""Console pages for the schedule: day and week views, and an appointment with its status changes.

Each page mirrors the API (clinic/scheduling/api.py). The schedule lists appointments with the
API's list operation, so each row's read is audited as ``GET /appointments`` audits it; the
appointment page loads the appointment as ``GET /appointments/{id}`` does (``appointment.read``),
a group's seats as ``GET /appointments/{id}/attendees``, a series' occurrences as the list with
``series_id``, and its reminders through notify (the ``appointment_reminders`` signal) as
``GET /appointments/{id}/reminders``. Every action posts a form (htmx-enhanced) to a view that
loads the appointment, validates with the API's schema and calls the operation the API's endpoint
calls; a refusal (a status change the machine does not allow, a missing late-entry reason, a
clash) comes back as a message on the appointment's page, never an error page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Response, request, url_for

from clinic.audit.operations import audit
from clinic.auth import operations as auth_ops
from clinic.auth.directory import Directory, directory_of
from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import Permission, authenticated_user, has_permission, requires
from clinic.clients.banner import client_banner
from clinic.clients.loaders import clients_by_id
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
    visible_id,
)
from clinic.core.errors import APIError
from clinic.core.pagination import MAX_LIMIT
from clinic.core.signals import appointment_reminders, values_from
from clinic.core.time import local_today, start_of_day, to_local, utcnow
from clinic.extensions import db
from clinic.scheduling import groups
from clinic.scheduling import operations as ops
from clinic.scheduling.loaders import load_appointment
from clinic.scheduling.models import (
    OPEN_STATUSES,
    SEATED_ATTENDEE_STATUSES,
    Appointment,
    AppointmentAttendee,
    AppointmentStatus,
    AttendeeStatus,
)
from clinic.scheduling.schemas import (
    AppointmentPatchSchema,
    AttendanceSchema,
    CancelSchema,
    LateEntrySchema,
    ScopeArgsSchema,
)

blp = ConsoleBlueprint("scheduling_pages", __name__)

S = AppointmentStatus
VIEWS = ("day", "week")
#: The years a schedule can show (appointments are booked from 2000, at most three years ahead).
SHOWN_YEARS = (2000, 2999)
#: Occurrences of a series listed on an appointment's page.
SERIES_SHOWN = 60

#: What the page says after each action (the ``done`` query of the page it returns to).
DONE = {
    "confirmed": "The client's confirmation is recorded.",
    "checked_in": "The client is checked in.",
    "completed": "The appointment is completed.",
    "no_show": "The client is recorded as a no-show.",
    "cancelled": "The appointment is cancelled.",
    "changed": "The changes are saved.",
    "attendance": "Attendance is recorded.",
}


# --- the schedule --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    site: Site
    day: date
    view: str
    #: None: every clinician of the site.
    clinician_id: int | None

    def query(self, **changes: Any) -> dict[str, Any]:
        values = {
            "date": self.day.isoformat(),
            "view": self.view,
            "site_id": self.site.id,
            "clinician_id": self.clinician_id if self.clinician_id is not None else "all",
        }
        values.update(changes)
        return values

    def url(self, **changes: Any) -> str:
        return url_for("scheduling_pages.schedule") + "?" + urlencode(self.query(**changes))


def _filters(user: User, directory: Directory) -> tuple[Filters | None, FormErrors]:
    """The schedule's filters from the query, each defaulting as the page says; errors for unreadable ones."""
    errors = FormErrors()
    args = request.args
    sites = {site.id: site for site in directory.sites}
    # Another site, or a clinician of none of the user's sites (or text in their place), is the
    # "page not found" page: a schedule the user may not see, answered as one that does not exist.
    site_id = visible_id(args.get("site_id"), sites) or current_site_id()
    site = sites.get(site_id) if site_id is not None else None
    if site is None:
        return None, errors
    day = local_today(site.timezone)
    if args.get("date"):
        try:
            asked = date.fromisoformat(args["date"])
        except ValueError:
            errors["date"] = ["Enter a real date, for example 2026-03-04."]
        else:
            if SHOWN_YEARS[0] <= asked.year <= SHOWN_YEARS[1]:
                day = asked
            else:
                errors["date"] = [f"Enter a date from {SHOWN_YEARS[0]} to {SHOWN_YEARS[1]}."]
    view = args.get("view", "day")
    if view not in VIEWS:
        errors["view"] = ["Choose day or week."]
        view = "day"
    at_site = {c.id for c in directory.clinicians if site.id in c.site_ids}
    raw = args.get("clinician_id")
    clinician_id: int | None
    if raw is None:
        clinician_id = user.id if user.role is Role.CLINICIAN and user.id in at_site else None
    elif raw in ("", "all"):
        clinician_id = None
    else:
        chosen = visible_id(raw, (c.id for c in directory.clinicians))
        # A colleague of another of the user's sites (the site was just changed): the whole site.
        clinician_id = chosen if chosen in at_site else None
    return Filters(site=site, day=day, view=view, clinician_id=clinician_id), errors


def _period(filters: Filters) -> tuple[date, date]:
    """The first day shown and the day after the last (a week runs Monday to Sunday)."""
    if filters.view == "week":
        monday = filters.day - timedelta(days=filters.day.weekday())
        return monday, monday + timedelta(days=7)
    return filters.day, filters.day + timedelta(days=1)


def _clinician_names(directory: Directory, ids: Iterable[int]) -> dict[int, str]:
    names = {c.id: c.name for c in directory.clinicians}
    missing = sorted(set(ids) - set(names))
    if missing:
        names.update(auth_ops.staff_names(missing))
    return names


@blp.route("/schedule", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
def schedule() -> Response:
    """Day and week views of a site's appointments, of one clinician or all, read as the API lists them."""
    user = authenticated_user()
    directory = directory_of(user)
    filters, errors = _filters(user, directory)
    if filters is None:
        return page("scheduling/schedule.html", filters=None, errors=errors, sites=directory.sites)
    first, after = _period(filters)
    zone = filters.site.timezone
    listed = ops.list_appointments(
        user,
        limit=MAX_LIMIT,
        cursor=request.args.get("cursor") or None,
        from_=start_of_day(first, zone),
        to=start_of_day(after, zone),
        site_id=filters.site.id,
        clinician_id=filters.clinician_id,
    )
    appointments = listed.items
    days: list[tuple[date, list[Appointment]]] = [(first + timedelta(days=n), []) for n in range((after - first).days)]
    by_day: dict[date, list[Appointment]] = dict(days)  # the same lists: filled in place
    for appointment in appointments:
        by_day.setdefault(to_local(appointment.starts_at, zone).date(), []).append(appointment)
    step = timedelta(days=7 if filters.view == "week" else 1)
    return page(
        "scheduling/schedule.html",
        status=422 if errors else 200,
        errors=errors,
        filters=filters,
        sites=directory.sites,
        site_options=[(site.id, site.name) for site in directory.sites],
        clinician_options=[("all", "All clinicians")]
        + [(c.id, c.name) for c in directory.clinicians if filters.site.id in c.site_ids],
        first=first,
        last=after - timedelta(days=1),
        today=local_today(filters.site.timezone),
        appointments=appointments,
        days=days,
        clients=clients_by_id(user, (a.client_id for a in appointments if a.client_id is not None)),
        clinician_names=_clinician_names(directory, (a.clinician_id for a in appointments)),
        previous_url=filters.url(date=(filters.day - step).isoformat()),
        next_day_url=filters.url(date=(filters.day + step).isoformat()),
        today_url=filters.url(date=local_today(filters.site.timezone).isoformat()),
        view_urls={view: filters.url(view=view) for view in VIEWS},
        more_url=filters.url(cursor=listed.next_cursor) if listed.next_cursor else None,
        seated=ops.seated,
    )


# --- one appointment -----------------------------------------------------------------------------


def _may_act(user: User, appointment: Appointment) -> bool:
    """Whether the reader may change this appointment (the API's permission and the kind's rights)."""
    if not has_permission(user, Permission.APPOINTMENTS_WRITE):
        return False
    try:
        ops.require_kind_rights(user, appointment.kind)
    except APIError:
        return False
    return True


def _people(appointment: Appointment) -> list[int]:
    """The staff the page names: the clinician, and who made a late entry."""
    ids = [appointment.clinician_id]
    if appointment.late_entry_by_id is not None:
        ids.append(appointment.late_entry_by_id)
    return ids


def _appointment_page(
    appointment: Appointment,
    *,
    status: int = 200,
    errors: FormErrors | None = None,
    action: str | None = None,
    form: dict[str, Any] | None = None,
    done: str | None = None,
) -> Response:
    user = authenticated_user()
    site = db.session.get_one(Site, appointment.site_id)
    attendees: list[AppointmentAttendee] = groups.list_attendees(appointment) if appointment.is_group else []
    client_ids = [appointment.client_id] if appointment.client_id is not None else [a.client_id for a in attendees]
    clients = clients_by_id(user, client_ids)
    # The appointment's read names its client, or a group's seated attendees; a seat given up is
    # still listed with the client's name, a read of that client's record audited on its own.
    named = set(appointment.audit_client_ids())
    for shown in clients.values():
        if shown.id not in named:
            audit("read", shown, details={"via": "attendees"})
    series: list[Appointment] = []
    series_more = False
    if appointment.series_id is not None:
        listed = ops.list_appointments(user, limit=SERIES_SHOWN, cursor=None, series_id=appointment.series_id)
        series, series_more = listed.items, listed.next_cursor is not None
    # A one-to-one appointment shows the client banner every client page shows (two identifiers,
    # site, episode, flags) before any action that records care; its reads are audited as the chart's.
    client = clients.get(appointment.client_id) if appointment.client_id is not None else None
    banner = client_banner(client, user, current="") if client is not None and not appointment.is_group else None
    answers: list[list[Any]] = values_from(appointment_reminders, appointment)
    reminders = [row for answer in answers for row in answer]
    may_act = _may_act(user, appointment)
    options = {option.target.value: option for option in ops.transition_options(appointment)} if may_act else {}
    directory = directory_of(user)
    now = utcnow()
    local_start = to_local(appointment.starts_at, site.timezone)
    return page(
        "scheduling/appointment.html",
        status=status,
        appointment=appointment,
        site=site,
        zone=site.timezone,
        today=local_today(site.timezone),
        clients=clients,
        banner=banner,
        attendees=attendees,
        seated=[a for a in attendees if a.status in SEATED_ATTENDEE_STATUSES],
        clinician_names=_clinician_names(directory, _people(appointment)),
        clinician_options=[(c.id, c.name) for c in directory.clinicians if site.id in c.site_ids],
        start_date=local_start.date().isoformat(),
        start_time=local_start.strftime("%H:%M"),
        series=series,
        series_more=series_more,
        rule=describe_rule(appointment.series.recurrence) if appointment.series is not None else None,
        reminders=reminders,
        may_act=may_act,
        options=options,
        late=any(option.late_entry for option in options.values()),
        ended=now >= appointment.ends_at,
        attendance_opens=appointment.starts_at - ops.CHECK_IN_OPENS,
        now=now,
        is_open=appointment.status in OPEN_STATUSES,
        errors=errors or FormErrors(),
        action=action,
        form=form or {},
        done=DONE.get(done or ""),
        schedule_url=url_for(
            "scheduling_pages.schedule",
            date=to_local(appointment.starts_at, site.timezone).date().isoformat(),
            site_id=site.id,
        ),
    )


@blp.route("/appointments/<int:appointment_id>", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
def appointment_page(appointment_id: int) -> Response:
    """One appointment: who, when, its status and what can be done now, its series, seats and reminders."""
    appointment = load_appointment(appointment_id, audit_read=True)
    return _appointment_page(appointment, done=request.args.get("done"))


def _after(
    appointment: Appointment, done: str, errors: FormErrors, *, action: str, form: dict[str, Any] | None = None
) -> Response:
    """Back to the appointment saying what was done; or the page again with the refusal and what was typed.

    The refused change is undone (``attempt``, as the API's is); the page shown with its message is
    a read of the appointment, audited as such.
    """
    if not errors:
        response = Response("", status=303)
        response.headers["Location"] = url_for("scheduling_pages.appointment_page", appointment_id=appointment.id,
                                               done=done)
        return response
    audit("read", appointment)
    # htmx swaps only successful answers (the message is in the page); a form post says what failed.
    status = 200 if is_htmx() else 422 if any(key != "_schema" for key in errors) else 409
    return _appointment_page(appointment, status=status, errors=errors, action=action, form=form)


def _posted(default: str, *, drop_empty: bool = True) -> tuple[dict[str, Any], str]:
    """The posted form's values, and which of the page's forms sent it (its hidden ``_form``)."""
    values = form_values(drop_empty=drop_empty)
    return values, str(values.pop("_form", None) or default)


def _run(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> FormErrors:
    _result, errors = attempt(operation, *args, **kwargs)
    return errors


@blp.route("/appointments/<int:appointment_id>/confirm", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def confirm(appointment_id: int) -> Response:
    """The client confirmed (by phone, at the desk): the API's confirm."""
    appointment = load_appointment(appointment_id)
    errors = _run(ops.confirm, appointment, actor=authenticated_user())
    return _after(appointment, "confirmed", errors, action="confirm")


@blp.route("/appointments/<int:appointment_id>/check-in", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def check_in(appointment_id: int) -> Response:
    """The client arrived: the API's check-in."""
    appointment = load_appointment(appointment_id)
    errors = _run(ops.transition, appointment, S.CHECKED_IN, actor=authenticated_user())
    return _after(appointment, "checked_in", errors, action="check_in")


def _outcome(appointment_id: int, target: AppointmentStatus, action: str) -> Response:
    """Complete or no-show, as the API's: with a ``late_entry_reason`` once the appointment has ended."""
    appointment = load_appointment(appointment_id)
    values, action = _posted(action)
    data, errors = load_form(LateEntrySchema(), values)
    if not errors:
        errors = _run(
            ops.transition, appointment, target, actor=authenticated_user(),
            late_entry_reason=data.get("late_entry_reason"),
        )
    return _after(appointment, target.value, errors, action=action, form=values)


@blp.route("/appointments/<int:appointment_id>/complete", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def complete(appointment_id: int) -> Response:
    """The appointment took place: after check-in, or once it has ended with the reason it is recorded late."""
    return _outcome(appointment_id, S.COMPLETED, "complete")


@blp.route("/appointments/<int:appointment_id>/no-show", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def no_show(appointment_id: int) -> Response:
    """The client did not come (once it has begun; once it has ended, with the reason it is recorded late)."""
    return _outcome(appointment_id, S.NO_SHOW, "no_show")


def _scope(values: dict[str, Any], errors: FormErrors) -> str:
    """The series scope posted (``this`` by default), validated with the API's query schema."""
    scope_values = {"scope": values.pop("scope")} if "scope" in values else {}
    data, scope_errors = load_form(ScopeArgsSchema(), scope_values)
    errors.update(scope_errors)
    return str(data.get("scope", "this"))


@blp.route("/appointments/<int:appointment_id>/cancel", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def cancel(appointment_id: int) -> Response:
    """Cancel, by the client or the clinic; for a series this one, the following or all (the API's cancel)."""
    appointment = load_appointment(appointment_id)
    values, action = _posted("cancel")
    body = dict(values)
    errors = FormErrors()
    scope = _scope(body, errors)
    data, body_errors = load_form(CancelSchema(), body)
    errors.update(body_errors)
    if not errors:
        errors = _run(
            ops.cancel, appointment, by=data["by"], reason=data.get("reason"), scope=scope,
            actor=authenticated_user(), late_entry_reason=data.get("late_entry_reason"),
        )
    return _after(appointment, "cancelled", errors, action=action, form=values)


#: The change form's fields that map one to one onto the API's PATCH body.
_CHANGE_FIELDS = ("duration_minutes", "clinician_id", "location")


def _changes(appointment: Appointment, values: dict[str, Any], zone: str) -> dict[str, Any]:
    """The PATCH body of what the form changed: the date and time become ``starts_at`` in the site's time."""
    local = to_local(appointment.starts_at, zone)
    body: dict[str, Any] = {}
    on, at = values.get("starts_date", ""), values.get("starts_time", "")
    if (on, at) != (local.date().isoformat(), local.strftime("%H:%M")):
        body["starts_at"] = f"{on}T{at}" if on and at else (on or at or "")
    current = {
        "duration_minutes": str(appointment.duration_minutes),
        "clinician_id": str(appointment.clinician_id),
        "location": appointment.location or "",
    }
    for name in _CHANGE_FIELDS:
        value = str(values.get(name, "")).strip()
        if value == current[name]:
            continue
        # The API's schema takes numbers as JSON numbers: a number typed is sent as one, anything else as typed.
        body[name] = (value or None) if name == "location" else (as_number(value) if value else None)
    return body


@blp.route("/appointments/<int:appointment_id>/change", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def change(appointment_id: int) -> Response:
    """Move or change an open appointment; for a series this one, the following or all (the API's PATCH)."""
    appointment = load_appointment(appointment_id)
    site = db.session.get_one(Site, appointment.site_id)
    values, action = _posted("change", drop_empty=False)
    body = dict(values)
    # A clinician of none of the user's sites (or text in their place): the "page not found" page.
    clinicians = {c.id for c in directory_of(authenticated_user()).clinicians} | {appointment.clinician_id}
    visible_id(body.get("clinician_id"), clinicians)
    errors = FormErrors()
    scope = _scope(body, errors)
    changes = _changes(appointment, body, site.timezone)
    if not changes and not errors:
        errors["_schema"] = ["Nothing was changed: change the date, time, length, clinician or place first."]
    data, patch_errors = load_form(AppointmentPatchSchema(), changes) if changes else ({}, FormErrors())
    for key, messages in patch_errors.items():
        errors[{"starts_at": "starts_date"}.get(key, key)] = messages
    if not errors:
        errors = _run(ops.update, appointment, data, scope=scope, actor=authenticated_user())
        if "starts_at" in errors:
            errors["starts_date"] = errors.pop("starts_at")
    return _after(appointment, "changed", errors, action=action, form=values)


@blp.route("/appointments/<int:appointment_id>/attendees/<int:client_id>/attendance", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
def attendance(appointment_id: int, client_id: int) -> Response:
    """Whether a registered client came to the group session: the API's attendance."""
    appointment = load_appointment(appointment_id)
    values, action = _posted(f"attendance-{client_id}")
    data, errors = load_form(AttendanceSchema(), values)
    if not errors:
        errors = _run(
            groups.mark_attendance, appointment, client_id, status=AttendeeStatus(data["status"]),
            actor=authenticated_user(),
        )
    return _after(appointment, "attendance", errors, action=action, form=values)


# --- presentation helpers ------------------------------------------------------------------------

_DAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday",
         "SA": "Saturday", "SU": "Sunday"}
_UNITS = {"DAILY": ("day", "Daily"), "WEEKLY": ("week", "Weekly"), "MONTHLY": ("month", "Monthly")}


def describe_rule(rule: str) -> str:
    """An RRULE in words: ``FREQ=WEEKLY;BYDAY=MO,WE;COUNT=8`` is "Weekly on Monday and Wednesday, 8 times"."""
    parts = dict(item.split("=", 1) for item in rule.split(";") if "=" in item)
    unit, adverb = _UNITS.get(parts.get("FREQ", ""), ("", ""))
    if not unit:
        return rule
    interval = int(parts["INTERVAL"]) if parts.get("INTERVAL", "").isdigit() else 1
    words = adverb if interval == 1 else f"Every {interval} {unit}s"
    days = [_DAYS.get(day[-2:], day) for day in parts.get("BYDAY", "").split(",") if day]
    if days:
        words += " on " + (days[0] if len(days) == 1 else ", ".join(days[:-1]) + " and " + days[-1])
    if parts.get("BYMONTHDAY"):
        words += f" on day {parts['BYMONTHDAY']} of the month"
    if parts.get("COUNT"):
        words += f", {parts['COUNT']} times"
    elif parts.get("UNTIL"):
        until = parts["UNTIL"][:8]
        try:
            words += ", until " + datetime.strptime(until, "%Y%m%d").strftime("%b %-d, %Y")  # noqa: DTZ007 - a date
        except ValueError:
            words += f", until {until}"
    return words
