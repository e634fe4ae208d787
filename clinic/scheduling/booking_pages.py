"""Console pages for booking: the availability finder, recurring series, group sessions, working hours.

Each page mirrors an endpoint of clinic.scheduling.api with the same permission and operation:
the finder shows the free slots of ``GET /availability`` (``availability.free_slots``) for the
clinicians of the site as the directory lists them (``GET /directory``); a slot chosen, or a time
typed, is booked with ``POST /appointments`` (``operations.book``, validated with
``AppointmentCreateSchema``; "Repeat" adds the RRULE that books a series); a group session's
seats are given with ``POST /appointments/{id}/attendees`` (``groups.add_attendee``); and a
clinician's week is ``GET``/``PUT /users/{id}/working-hours`` (``availability.working_week`` and
``set_working_hours``). A double booking is shown as the API's 409 names it, beside the form,
with everything chosen kept.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Response, request

from clinic.auth.directory import DirectoryClinician, directory_of
from clinic.auth.models import Role, Site, User
from clinic.auth.operations import get_user_or_404
from clinic.auth.permissions import (
    Permission,
    authenticated_user,
    read_scoped_page,
    require_site_in_scope,
    requires,
    scoped_select,
)
from clinic.clients import operations as client_ops
from clinic.clients.loaders import load_client
from clinic.clients.models import Client
from clinic.clients.schemas import ClientQuerySchema
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    as_id,
    attempt,
    current_site_id,
    form_values,
    load_form,
    not_found,
    page,
    redirect_to,
    visible_id,
)
from clinic.core.errors import APIError, abort_problem
from clinic.core.time import local_today, start_of_day, to_local, utcnow
from clinic.scheduling import availability, groups
from clinic.scheduling import operations as ops
from clinic.scheduling.conflicts import Slot
from clinic.scheduling.loaders import load_appointment
from clinic.scheduling.models import Appointment, AppointmentKind
from clinic.scheduling.schemas import (
    AppointmentCreateSchema,
    AttendeeCreateSchema,
    AvailabilityQuerySchema,
    WorkingHoursUpdateSchema,
)

blp = ConsoleBlueprint("booking_pages", __name__)

K = AppointmentKind

KIND_LABELS: dict[AppointmentKind, str] = {
    K.INTAKE_ASSESSMENT: "Intake assessment",
    K.INDIVIDUAL_THERAPY: "Individual therapy",
    K.GROUP_THERAPY: "Group therapy (a session with seats)",
    K.MEDICATION_VISIT: "Medication visit",
    K.PEER_SUPPORT: "Peer support",
    K.DRUG_SCREEN: "Drug screen",
    K.PLAN_REVIEW: "Plan review",
}
#: The length the form starts with for each kind (the user may change it).
DEFAULT_MINUTES: dict[AppointmentKind, int] = {
    K.INTAKE_ASSESSMENT: 60,
    K.INDIVIDUAL_THERAPY: 50,
    K.GROUP_THERAPY: 60,
    K.MEDICATION_VISIT: 20,
    K.PEER_SUPPORT: 45,
    K.DRUG_SCREEN: 15,
    K.PLAN_REVIEW: 30,
}
#: Short names other pages may link with (``/appointments/new?kind=assessment``).
KIND_ALIASES = {"assessment": K.INTAKE_ASSESSMENT, "group": K.GROUP_THERAPY, "therapy": K.INDIVIDUAL_THERAPY}
#: How far after a day without free time the finder looks, to point to the next day with some.
LOOK_AHEAD_DAYS = 7
#: "Repeat" choices and the RRULE each books (a series of the API's ``recurrence``).
REPEATS: dict[str, tuple[str, str]] = {
    "daily": ("Every day", "FREQ=DAILY"),
    "weekly": ("Every week", "FREQ=WEEKLY"),
    "fortnightly": ("Every 2 weeks", "FREQ=WEEKLY;INTERVAL=2"),
    "monthly": ("Every month, on the same date", "FREQ=MONTHLY"),
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: The values the finder keeps from one request to the next (all ids or choices, never client details).
_KEPT = (
    "client_id", "site_id", "kind", "clinician_id", "date", "duration_minutes", "capacity",
    "repeat", "repeat_end", "repeat_count", "repeat_until", "start_date", "start_time",
)
#: Where an error of the API's body is shown on the form.
_FIELD_OF = {
    "starts_at": "start_time",
    "recurrence": "repeat",
    "client_id": "client",
    "client_ids": "client",
    "from": "date",
    "to": "date",
    "timezone": "date",
}
_BOOKING_LABELS = {
    "client": "Client",
    "site_id": "Site",
    "kind": "Kind",
    "clinician_id": "Clinician",
    "date": "Date",
    "duration_minutes": "Length in minutes",
    "capacity": "Seats",
    "repeat": "Repeat",
    "start_time": "Time",
    "start_date": "Date of the time entered",
    "q": "Find the client",
}


# --- the finder's state ----------------------------------------------------------------------------


@dataclass
class Finder:
    """What the finder shows: the client, site, kind, clinician and day chosen, and the free slots."""

    user: User
    values: dict[str, str]
    client: Client | None
    site: Site
    sites: list[Site]
    kinds: list[AppointmentKind]
    kind: AppointmentKind
    clinicians: list[DirectoryClinician]
    clinician_id: int | None
    day: date
    duration: str
    errors: FormErrors = field(default_factory=FormErrors)
    slots: dict[date, list[Slot]] = field(default_factory=dict)

    @property
    def zone(self) -> str:
        return self.site.timezone

    @property
    def is_group(self) -> bool:
        return self.kind is K.GROUP_THERAPY

    @property
    def zone_label(self) -> str:
        """The zone's abbreviation on the chosen day (EST, CDT...)."""
        return zone_abbreviation(self.zone, self.day)

    def clinician_name(self, clinician_id: int) -> str:
        return next((c.name for c in self.clinicians if c.id == clinician_id), f"Clinician {clinician_id}")

    def day_slots(self) -> list[tuple[DirectoryClinician, list[Slot]]]:
        """The chosen day's free slots by clinician, clinicians by name."""
        by_clinician: dict[int, list[Slot]] = defaultdict(list)
        for slot in self.slots.get(self.day, []):
            by_clinician[slot.clinician_id].append(slot)
        return [(c, by_clinician[c.id]) for c in self.clinicians if by_clinician.get(c.id)]

    def next_free_day(self) -> date | None:
        later = [day for day, slots in self.slots.items() if day > self.day and slots]
        return min(later) if later else None

    def url(self, **changes: Any) -> str:
        """The finder's address with these values changed (None drops one)."""
        values: dict[str, Any] = {name: self.values.get(name, "") for name in _KEPT}
        values.update(
            client_id=self.client.id if self.client else "",
            site_id="" if self.client else self.site.id,
            kind=self.kind.value,
            clinician_id="" if self.clinician_id is None else self.clinician_id,
            date=self.day.isoformat(),
        )
        values.update(changes)
        return _finder_url(values)


def zone_abbreviation(zone: str, day: date) -> str:
    """The zone's abbreviation on ``day`` (EST, CDT...); a name that is no zone (typed, refused) as typed."""
    try:
        info = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # no such zone, not a zone's name, a name too long
        return zone
    return datetime.combine(day, time(12), tzinfo=info).tzname() or zone


def _finder_url(values: Mapping[str, Any]) -> str:
    kept = {
        name: values[name]
        for name in _KEPT
        if values.get(name) not in (None, "") or (name == "clinician_id" and name in values)
    }
    if kept.get("clinician_id") is None:
        kept.pop("clinician_id", None)
    return "/appointments/new" + ("?" + urlencode(kept) if kept else "")


def _allowed_kinds(user: User) -> list[AppointmentKind]:
    """The kinds the user may book: those the booking operation's own check lets through."""
    allowed = []
    for kind in AppointmentKind:
        try:
            ops.require_kind_rights(user, kind)
        except APIError:
            continue
        allowed.append(kind)
    return allowed


def _kind(raw: str, allowed: list[AppointmentKind]) -> AppointmentKind:
    value = raw.strip().lower()
    kind = KIND_ALIASES.get(value) or next((k for k in AppointmentKind if k.value == value), None)
    return kind if kind in allowed else allowed[0]


def _finder(user: User, raw: Mapping[str, str]) -> Finder:
    """The finder's state from the request's values (query or form), the client's read audited.

    A client, site or clinician the user may not see (or text in the place of its id) is the
    "page not found" page, as the client's own page would be.
    """
    values = {name: str(raw.get(name, "")).strip() for name in _KEPT if name in raw}
    client_id = as_id(values.get("client_id"))
    if values.get("client_id") and client_id is None:
        not_found()
    client = load_client(client_id, audit_read=True) if client_id is not None else None
    directory = directory_of(user)
    sites = list(directory.sites)
    if not sites:
        abort_problem(404, "You work at no site.")
    by_id = {site.id: site for site in sites}
    wanted = visible_id(values.get("site_id"), by_id) or current_site_id() or 0
    site = by_id[client.site_id] if client is not None else by_id.get(wanted) or sites[0]
    clinicians = [c for c in directory.clinicians if site.id in c.site_ids]
    allowed = _allowed_kinds(user)
    kind = _kind(values.get("kind", ""), allowed)
    errors = FormErrors()
    if "clinician_id" in values:
        chosen = visible_id(values["clinician_id"], (c.id for c in directory.clinicians))
        # A colleague of another of the user's sites (the site was just changed): any clinician.
        clinician_id = chosen if any(c.id == chosen for c in clinicians) else None
    else:
        clinician_id = user.id if any(c.id == user.id for c in clinicians) else None
    day = local_today(site.timezone)
    if values.get("date"):
        try:
            day = date.fromisoformat(values["date"])
        except ValueError:
            errors["date"] = ["Not a valid date."]
    duration = values.get("duration_minutes") or str(DEFAULT_MINUTES[kind])
    return Finder(
        user=user, values=values, client=client, site=site, sites=sites, kinds=allowed, kind=kind,
        clinicians=clinicians, clinician_id=clinician_id, day=day, duration=duration, errors=errors,
    )


def _find_slots(finder: Finder) -> None:
    """The chosen day's free slots (the API's availability operation); when it has none, the next week's,
    to point to the next day with free time."""
    if finder.errors:
        return
    found = _free_slots(finder, finder.day, finder.day + timedelta(days=1))
    if found == [] and not finder.errors:
        following = finder.day + timedelta(days=1)
        found = _free_slots(finder, following, following + timedelta(days=LOOK_AHEAD_DAYS))
    by_day: dict[date, list[Slot]] = defaultdict(list)
    for slot in found or []:
        by_day[to_local(slot.starts_at, finder.zone).date()].append(slot)
    finder.slots = dict(by_day)


def _free_slots(finder: Finder, first: date, last: date) -> list[Slot] | None:
    """Free slots starting on the days ``first`` up to ``last`` (excluded), or None with the errors kept."""
    minutes = as_id(finder.duration)
    query: dict[str, Any] = {
        "site_id": finder.site.id,
        "from": start_of_day(first, finder.zone).isoformat(),
        "to": start_of_day(last, finder.zone).isoformat(),
        "duration_minutes": finder.duration,
        "kind": finder.kind.value,
        "step_minutes": 30 if minutes is not None and minutes >= 30 else 15,
    }
    if finder.clinician_id is not None:
        query["clinician_id"] = finder.clinician_id
    data, errors = load_form(AvailabilityQuerySchema(), query)
    if not errors:
        found, errors = attempt(availability.free_slots, actor=finder.user, **data)
    if errors:
        finder.errors.update(_on_form(errors))
        return None
    return list(found)


def _on_form(errors: Mapping[str, list[str]]) -> FormErrors:
    """The API's field errors under the names of the form's fields."""
    shown = FormErrors()
    for key, messages in errors.items():
        head = key.split(".")[0]
        shown.setdefault(_FIELD_OF.get(head, key), []).extend(messages)
    return shown


@dataclass(frozen=True)
class Clash:
    """One double booking, as the API's 409 names it (``clashes``)."""

    party: str
    party_id: int | None
    appointment_id: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    requested_starts_at: datetime | None


@dataclass(frozen=True)
class Refusal:
    detail: str
    clashes: list[Clash]
    #: What was asked for: the start and the clinician.
    starts_at: datetime | None = None
    clinician_id: int | None = None


def _instant(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _refusal(error: APIError, data: Mapping[str, Any]) -> Refusal:
    clashes = [
        Clash(
            party=str(item.get("party", "")),
            party_id=item.get("party_id"),
            appointment_id=item.get("appointment_id"),
            starts_at=_instant(item.get("starts_at")),
            ends_at=_instant(item.get("ends_at")),
            requested_starts_at=_instant(item.get("requested_starts_at")),
        )
        for item in error.extra.get("clashes", [])
        if isinstance(item, Mapping)
    ]
    return Refusal(detail=str(error.detail or "Double booking."), clashes=clashes,
                   starts_at=data.get("starts_at"), clinician_id=data.get("clinician_id"))


def _render_finder(finder: Finder, *, status: int = 200, refusal: Refusal | None = None,
                   results: list[Client] | None = None, q: str = "", search_errors: FormErrors | None = None,
                   errors: FormErrors | None = None) -> Response:
    _find_slots(finder)
    shown = FormErrors(finder.errors)
    for key, messages in (errors or {}).items():
        shown.setdefault(key, []).extend(messages)
    return page(
        "scheduling/booking_new.html",
        status=422 if status == 200 and shown else status,
        f=finder,
        errors=shown,
        labels=_BOOKING_LABELS,
        refusal=refusal,
        results=results,
        q=q,
        search_errors=search_errors or FormErrors(),
        kind_options=[(kind.value, KIND_LABELS[kind]) for kind in finder.kinds],
        clinician_options=[(c.id, c.name) for c in finder.clinicians],
        site_options=[(site.id, site.name) for site in finder.sites],
        repeat_options=[("", "Does not repeat"), *((name, label) for name, (label, _rule) in REPEATS.items())],
        today=local_today(finder.zone),
        one_day=timedelta(days=1),
    )


# --- the finder and booking ------------------------------------------------------------------------


@blp.route("/appointments/new", methods=["GET"])
@requires(Permission.APPOINTMENTS_WRITE, Permission.CLIENTS_READ)
def new() -> Response:
    """The availability finder: a client, kind, clinician and day, and the free times to book."""
    return _render_finder(_finder(authenticated_user(), request.args))


@blp.route("/appointments/new/client-search", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE, Permission.CLIENTS_READ)
def find_client() -> Response:
    """Find the client to book for, by name, MRN or phone (posted: search terms stay out of the address)."""
    user = authenticated_user()
    values = form_values(drop_empty=False)
    finder = _finder(user, values)
    q = str(values.get("q", "")).strip()
    results, errors = _search(user, q, site_id=None)
    return _render_finder(finder, status=422 if errors else 200, results=results, q=q, search_errors=errors)


def _search(user: User, q: str, *, site_id: int | None) -> tuple[list[Client] | None, FormErrors]:
    """Clients matching ``q`` in the user's sites (or ``site_id``): the API's client search, audited."""
    if not q:
        return None, FormErrors({"q": ["Enter a name, MRN or phone number."]})
    data, errors = load_form(ClientQuerySchema(), {"q": q, "limit": 10})
    if errors:
        return None, errors
    found, errors = attempt(client_ops.search_clients, user, q=data["q"], site_id=site_id, limit=10, cursor=None)
    if errors:
        return None, FormErrors({"q": [m for messages in errors.values() for m in messages]})
    return list(found.items), errors


@blp.route("/appointments/new", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE, Permission.CLIENTS_READ)
def book() -> Response:
    """Book the slot chosen (``slot``) or the time entered (``action=book``); else show the free times again."""
    user = authenticated_user()
    values = form_values(drop_empty=False)
    slot = str(values.get("slot", ""))
    if not slot and values.get("action") != "book":
        if not str(values.get("start_time", "")).strip():
            values.pop("start_date", None)  # the day chosen stands for it
        return redirect_to(_finder_url(values))
    finder = _finder(user, values)
    body = _booking_body(finder, slot)
    data, errors = load_form(AppointmentCreateSchema(), body)
    refusal: Refusal | None = None
    appointment: Appointment | None = None
    if not errors:
        refused: list[Refusal] = []
        appointment, errors = attempt(_booking(refused), user=user, data=data)
        refusal = refused[0] if refused else None
    if appointment is not None:
        if appointment.is_group:
            return redirect_to(f"/appointments/{appointment.id}/attendees/new?created=1")
        return redirect_to(f"/appointments/{appointment.id}")
    if refusal is not None:
        errors.pop("_schema", None)
    return _render_finder(finder, status=409 if refusal else 422, refusal=refusal, errors=_on_form(errors))


def _booking(refused: list[Refusal]) -> Callable[..., Appointment]:
    def run(*, user: User, data: dict[str, Any]) -> Appointment:
        require_site_in_scope(data["site_id"], user)
        try:
            return ops.book(actor=user, **data)
        except APIError as error:
            if error.code == 409:
                refused.append(_refusal(error, data))
            raise

    return run


def _number(raw: str | None) -> int | str | None:
    """A whole number typed in a form as the API's JSON would carry it (text kept for its error)."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    return int(text) if re.fullmatch(r"-?\d{1,9}", text) else text


def _recurrence(values: Mapping[str, str]) -> str | None:
    """The RRULE of the "Repeat" choices: the frequency, and the end as a count or a last date."""
    choice = REPEATS.get(values.get("repeat", ""))
    if choice is None:
        return None
    rule = choice[1]
    if values.get("repeat_end") == "until":
        until = values.get("repeat_until", "").replace("-", "")
        return f"{rule};UNTIL={until}" if until else rule
    count = values.get("repeat_count", "")
    return f"{rule};COUNT={count}" if count else rule


def _booking_body(finder: Finder, slot: str) -> dict[str, Any]:
    """The body of ``POST /appointments`` the form describes."""
    values = finder.values
    body: dict[str, Any] = {
        "site_id": finder.site.id,
        "kind": finder.kind.value,
        "duration_minutes": _number(values.get("duration_minutes") or finder.duration),
    }
    if slot:
        clinician, _sep, starts_at = slot.partition("|")
        # A clinician of none of the user's sites (or text): the "page not found" page.
        body["clinician_id"] = visible_id(clinician, (c.id for c in directory_of(finder.user).clinicians))
        body["starts_at"] = starts_at
    else:
        if finder.clinician_id is not None:
            body["clinician_id"] = finder.clinician_id
        if values.get("start_date") and values.get("start_time"):
            # A wall-clock time of the site: the API reads it in the site's zone.
            body["starts_at"] = f"{values['start_date']}T{values['start_time']}"
    if finder.is_group:
        body["client_ids"] = [finder.client.id] if finder.client else []
        if values.get("capacity"):
            body["capacity"] = _number(values["capacity"])
    elif finder.client is not None:
        body["client_id"] = finder.client.id
    recurrence = _recurrence(values)
    if recurrence:
        body["recurrence"] = recurrence
    return {name: value for name, value in body.items() if value is not None}


# --- group sessions: seats ---------------------------------------------------------------------------


def _seated_clients(user: User, appointment: Appointment) -> list[Client]:
    """The clients holding a seat, by name: each read audited as the client list is."""
    ids = [a.client_id for a in ops.seated(appointment)]
    if not ids:
        return []
    stmt = scoped_select(Client, user).where(Client.id.in_(ids))
    keys = [Client.search_last, Client.search_first, Client.id]
    return list(read_scoped_page(stmt, keys=keys, limit=len(ids), cursor=None, via="attendees").items)


def _render_seats(appointment: Appointment, *, status: int = 200, errors: FormErrors | None = None,
                  results: list[Client] | None = None, q: str = "", added: bool = False,
                  created: bool = False) -> Response:
    user = authenticated_user()
    directory = directory_of(user)
    site = next(s for s in directory.sites if s.id == appointment.site_id)
    clinician = next((c.name for c in directory.clinicians if c.id == appointment.clinician_id), None)
    attendees = groups.list_attendees(appointment) if appointment.is_group else []
    seated = _seated_clients(user, appointment) if appointment.is_group else []
    seated_ids = {c.id for c in seated}
    return page(
        "scheduling/booking_seats.html",
        status=status,
        appointment=appointment,
        site=site,
        clinician=clinician,
        attendees=attendees,
        seated=seated,
        seated_ids=seated_ids,
        seats_left=max((appointment.capacity or 0) - len(seated), 0),
        kind_labels=KIND_LABELS,
        errors=errors or FormErrors(),
        results=results,
        q=q,
        added=added,
        created=created,
        now_date=local_today(site.timezone),
        is_open=groups.takes_attendees(appointment),
    )


@blp.route("/appointments/<int:appointment_id>/attendees/new", methods=["GET"])
@requires(Permission.APPOINTMENTS_WRITE, Permission.CLIENTS_READ)
def seats(appointment_id: int) -> Response:
    """A group session's seats: who holds one, how many are left, and a search to add a client."""
    appointment = load_appointment(appointment_id, audit_read=True)
    return _render_seats(appointment, added=request.args.get("added") == "1",
                         created=request.args.get("created") == "1")


@blp.route("/appointments/<int:appointment_id>/attendees/new", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE, Permission.CLIENTS_READ)
def add_seat(appointment_id: int) -> Response:
    """Find a client (``q``), or give the client chosen (``client_id``) a seat: the API's add attendee."""
    user = authenticated_user()
    values = form_values()
    if "client_id" not in values:
        appointment = load_appointment(appointment_id, audit_read=True)
        q = str(values.get("q", "")).strip()
        results, errors = _search(user, q, site_id=appointment.site_id)
        return _render_seats(appointment, status=422 if errors else 200, errors=errors, results=results, q=q)
    appointment = load_appointment(appointment_id)
    # The client is loaded as any client page loads one: another site's (or text in place of the
    # id) is the "page not found" page, the attempt audited as denied.
    client_id = as_id(values["client_id"])
    if client_id is None:
        not_found()
    load_client(client_id)
    data, errors = load_form(AttendeeCreateSchema(), {"client_id": client_id})
    if not errors:
        _attendee, errors = attempt(groups.add_attendee, appointment, data["client_id"], actor=user)
    if errors:
        return _render_seats(appointment, status=409 if "_schema" in errors else 422, errors=errors)
    return redirect_to(f"/appointments/{appointment.id}/attendees/new?added=1")


# --- working hours -----------------------------------------------------------------------------------


_CELL = re.compile(r"^h-(\d{1,9})-([0-6])-(\d{1,2})-(start|end)$")
#: Stretches a day may have at one site on the form (the API allows up to 70 in the week).
_MAX_STRETCHES = 10


@dataclass
class HoursGrid:
    """The week as the form shows it: per (site, weekday), the stretches ``(start, end)`` as typed."""

    cells: dict[tuple[int, int], list[tuple[str, str]]]

    def rows(self, site_id: int, weekday: int) -> list[tuple[int, str, str]]:
        """The stretches of one cell, then a blank one to add another."""
        stretches = self.cells.get((site_id, weekday), [])
        return [(n, start, end) for n, (start, end) in enumerate([*stretches, ("", "")])]


def _grid_of(week: availability.WorkingWeek) -> HoursGrid:
    cells: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    for stretch in week.weekly:
        cells[(stretch.site_id, stretch.weekday)].append((f"{stretch.start:%H:%M}", f"{stretch.end:%H:%M}"))
    return HoursGrid(dict(cells))


def _posted_grid(sites: list[Site]) -> tuple[HoursGrid, list[dict[str, Any]], list[str]]:
    """The grid posted, the ``weekly`` list of the API's body, and the cell id of each of its entries."""
    typed: dict[tuple[int, int, int], dict[str, str]] = defaultdict(dict)
    site_ids = {site.id for site in sites}
    for name, value in request.form.items():
        match = _CELL.match(name)
        if match is None or int(match.group(1)) not in site_ids or int(match.group(3)) >= _MAX_STRETCHES:
            continue
        typed[(int(match.group(1)), int(match.group(2)), int(match.group(3)))][match.group(4)] = value.strip()
    cells: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    weekly: list[dict[str, Any]] = []
    cell_ids: list[str] = []
    for site_id, weekday, _n in sorted(typed):
        entry = typed[(site_id, weekday, _n)]
        start, end = entry.get("start", ""), entry.get("end", "")
        if not start and not end:
            continue
        n = len(cells[(site_id, weekday)])
        cells[(site_id, weekday)].append((start, end))
        stretch: dict[str, Any] = {"weekday": weekday, "site_id": site_id}
        if start:
            stretch["start"] = start
        if end:
            stretch["end"] = end
        weekly.append(stretch)
        cell_ids.append(f"h-{site_id}-{weekday}-{n}")
    return HoursGrid(dict(cells)), weekly, cell_ids


def _hours_errors(errors: Mapping[str, list[str]], cell_ids: list[str]) -> FormErrors:
    """``weekly.3.end`` → the field of the third stretch's end; the list's own errors → the form's."""
    shown = FormErrors()
    for key, messages in errors.items():
        parts = key.split(".")
        said = messages
        if parts[0] == "weekly" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(cell_ids):
            part = parts[2] if len(parts) > 2 and parts[2] in ("start", "end") else "start"
            name = f"{cell_ids[int(parts[1])]}-{part}"
        elif parts[0] == "weekly":
            name = "_schema"
            said = ["Give at least one day's hours."] if not cell_ids else messages
        else:
            name = key
        shown.setdefault(name, []).extend(said)
    return shown


def _hours_labels(sites: list[Site]) -> dict[str, str]:
    labels = {"timezone": "Time zone"}
    for site in sites:
        for weekday, day in enumerate(WEEKDAYS):
            for n in range(_MAX_STRETCHES):
                for part in ("start", "end"):
                    which = "starts" if part == "start" else "ends"
                    labels[f"h-{site.id}-{weekday}-{n}-{part}"] = f"{day} at {site.name}, hours {n + 1} {which}"
    return labels


def _render_hours(clinician: User, grid: HoursGrid | None, *, week: availability.WorkingWeek | None,
                  timezone: str | None, status: int = 200, errors: FormErrors | None = None,
                  saved: bool = False, refused: str | None = None) -> Response:
    sites = sorted(clinician.sites, key=lambda s: (s.name, s.id))
    today = utcnow().date()
    zones = sorted({s.timezone for s in sites} | ({timezone} if timezone else set()))
    return page(
        "scheduling/booking_working_hours.html",
        status=status,
        clinician=clinician,
        hour_sites=[(site, zone_abbreviation(timezone or site.timezone, today)) for site in sites],
        grid=grid,
        week=week,
        timezone=timezone or "",
        zone_options=[("", "Each site's own time zone"), *((zone, zone.replace("_", " ")) for zone in zones)],
        weekdays=WEEKDAYS,
        errors=errors or FormErrors(),
        labels=_hours_labels(sites) if errors else {},
        saved=saved,
        refused=refused,
        now=utcnow(),
    )


@blp.route("/admin/users/<int:user_id>/working-hours", methods=["GET"])
@requires(Permission.SELF)
def working_hours(user_id: int) -> Response:
    """A clinician's weekly working hours (administrators, or the clinician themself: the API's rule)."""
    actor = authenticated_user()
    availability.require_working_hours_rights(actor, user_id)
    clinician = get_user_or_404(user_id)
    week, errors = attempt(availability.working_week, clinician)
    if errors:
        refused = next(iter(m for messages in errors.values() for m in messages), "No working hours.")
        return _render_hours(clinician, None, week=None, timezone=None, refused=refused)
    return _render_hours(clinician, _grid_of(week), week=week, timezone=week.timezone,
                         saved=request.args.get("saved") == "1")


@blp.route("/admin/users/<int:user_id>/working-hours", methods=["POST"])
@requires(Permission.SELF)
def save_working_hours(user_id: int) -> Response:
    """Replace the clinician's week with the grid posted: the API's ``PUT /users/{id}/working-hours``."""
    actor = authenticated_user()
    availability.require_working_hours_rights(actor, user_id)
    clinician = get_user_or_404(user_id)
    if clinician.role is not Role.CLINICIAN:
        return working_hours(user_id)
    grid, weekly, cell_ids = _posted_grid(list(clinician.sites))
    timezone = request.form.get("timezone", "").strip() or None
    body: dict[str, Any] = {"weekly": weekly}
    if timezone:
        body["timezone"] = timezone
    data, errors = load_form(WorkingHoursUpdateSchema(), body)
    if not errors:
        _week, errors = attempt(availability.set_working_hours, clinician, actor=actor, **data)
    if errors:
        return _render_hours(clinician, grid, week=None, timezone=timezone, status=422,
                             errors=_hours_errors(errors, cell_ids))
    return redirect_to(f"/admin/users/{clinician.id}/working-hours?saved=1")
