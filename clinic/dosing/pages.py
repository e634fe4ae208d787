"""The console's dosing window (/dosing), a client's doses, and the day's dispensing log.

The window lists the clients of an OTP with an order in force that day and records each dose with
the API's own schema and operation (``POST /clients/{id}/doses``): the same checks, the same
refusals, shown beside the field. With htmx the row is swapped and says what happened; without
JavaScript the form posts and the page comes back. Recording asks the dispenser to confirm the
client's name and date of birth first (two identifiers, docs/console.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from flask import Response, request, url_for
from sqlalchemy import and_, or_, select, tuple_, union_all
from sqlalchemy.orm import aliased

from clinic.audit.operations import record
from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, has_permission, requires
from clinic.clients.banner import banner_context
from clinic.clients.identifiers import normalise_mrn
from clinic.clients.loaders import load_client
from clinic.clients.models import Client, ClientStatus, Episode
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    as_id,
    as_number,
    attempt,
    current_site_id,
    form_values,
    is_htmx,
    load_form,
    not_found,
    page,
    redirect_to,
    visible_id,
)
from clinic.core.time import local_today, to_local, utcnow
from clinic.dosing import operations as ops
from clinic.dosing.models import Dose, DoseKind
from clinic.dosing.schemas import DoseCreateSchema, TakeHomeReviewSchema
from clinic.extensions import db
from clinic.plans import medications
from clinic.plans.models import Medication, MedicationDoseChange, MedicationName
from clinic.plans.schemas import EnteredInErrorSchema
from clinic.plans.summary import MEDICATION_NAMES

blp = ConsoleBlueprint("dosing_pages", __name__)

#: Medications dispensed at the window, named as the chart names them.
MEDICATION_LABELS = MEDICATION_NAMES
#: The take-home criteria of 42 CFR 8.12(i)(2), as the review form asks them.
CRITERIA_LABELS = {
    "no_active_sud_or_risky_conditions": (
        "No active substance use disorder or other risky physical or behavioural condition"
    ),
    "regular_attendance": "Regular attendance for supervised medication",
    "no_serious_behavioural_problems": "No serious behavioural problems that endanger the client, the public or others",
    "no_recent_diversion": "No recent diversion activity",
    "safe_transport_and_storage": "Take-home doses can be transported and stored safely",
    "other_considerations": "Other considerations: the benefit of take-homes outweighs the risk",
}
#: Rows of the window per page (a filter finds anyone further down).
WINDOW_PAGE = 50
#: Entries per page of a client's dose history.
HISTORY_PAGE = 30
IDENTITY_FIELD = "identity_confirmed"


@blp.context_processor
def _labels() -> dict[str, Any]:
    return {
        "MEDICATION_LABELS": MEDICATION_LABELS,
        "CRITERIA_LABELS": CRITERIA_LABELS,
        "mg": ops.mg,
        "entered_late": entered_late,
    }


# --- the day's list ---------------------------------------------------------------------------------


@dataclass
class WindowRow:
    """One order of one client on the window's day: what is ordered, what was given, what may be recorded."""

    client: Client
    order: Medication
    ordered: Decimal | None
    #: Entries of the order given on the day or covering it (voided ones left out), oldest first.
    entries: list[Dose]
    #: "dosed", "partial" (parts of a split dose), "covered" (a take-home or an injection), or "due".
    status: str
    given_mg: Decimal
    take_home_today: Dose | None
    covering: Dose | None
    missed_days: int | None
    eligibility: dict[str, Any] | None
    #: What the dispenser may record on the row: "observed", "take_home" (today's list: now; a past
    #: day's list: a late entry, with the time it was given).
    may_record: list[str] = field(default_factory=list)
    #: The row being worked: it shows its recording form (and the lot in use is looked up for it).
    worked: bool = False
    lot: str = ""
    #: The entry just recorded on this row (the row says what happened).
    recorded: Dose | None = None


def _status(order: Medication, day: date, entries: list[Dose], ordered: Decimal | None) -> tuple[str, Decimal]:
    observed = [e for e in entries if e.kind is DoseKind.OBSERVED and e.given_on == day]
    given = sum((e.amount_mg for e in observed), Decimal(0))
    if any(not e.is_split for e in observed) or (observed and ordered is not None and given >= ordered):
        return "dosed", given
    if observed:
        return "partial", given
    if any(e.covered_from <= day <= e.covered_until for e in entries):
        return "covered", given
    return "due", given


#: How far back the lot in use at the counter is looked for (a lot older than this is not offered).
LOT_LOOKBACK_DAYS = 30


def _latest_lots(site: Site, day: date, substances: Iterable[MedicationName]) -> dict[str, str]:
    """The lot last recorded at the site for each of ``substances`` in the month before ``day``: the one in use.

    One statement: for each medication, the site's newest doses read backwards through the (site, day)
    index until one of that substance is found. Asked only for the rows being worked, so a list of
    50 clients does not pay for it.
    """
    newest = []
    for medication in sorted(set(substances), key=lambda m: m.value):
        latest = (
            select(Dose.substance, Dose.lot_number)
            .where(
                Dose.site_id == site.id,
                Dose.substance == medication.value,
                Dose.voided_at.is_(None),
                Dose.given_on >= day - timedelta(days=LOT_LOOKBACK_DAYS),
                Dose.given_on <= day,
            )
            .order_by(Dose.given_on.desc(), Dose.given_at.desc(), Dose.id.desc())
            .limit(1)
            .subquery()
        )
        newest.append(select(latest.c.substance, latest.c.lot_number))
    if not newest:
        return {}
    return {substance: lot for substance, lot in db.session.execute(union_all(*newest))}  # noqa: C416


def _in_force(site: Site, day: date, order: Any = Medication) -> list[Any]:
    """The conditions of an order on the window's list: dispensed at the window, of the site, running that day."""
    return [
        order.site_id == site.id,
        order.medication.in_(list(MEDICATION_LABELS)),
        order.start_on <= day,
        or_(order.end_on.is_(None), order.end_on >= day),
    ]


def _listed_clients(site: Site, day: date, query: str, *, narrowed: bool = False) -> list[Any]:
    """The conditions of a client on the list: of the site, in care, matching the filter if any.

    In care: not discharged. A list narrowed to a client (by id, or by the filter) of a past day also holds a
    client discharged since whose episode covered that day: a dose given before a discharge may still be
    entered late, as the API allows. The whole list leaves them out: finding them would read every episode
    the site closed since, on every page of it.
    """
    in_care: Any = Client.status != ClientStatus.DISCHARGED
    if narrowed and day < local_today(site.timezone):
        covered = select(Episode.id).where(
            Episode.client_id == Client.id, Episode.admitted_on <= day, Episode.discharged_on >= day
        )
        in_care = or_(in_care, covered.exists())
    conditions: list[Any] = [Client.site_id == site.id, in_care]
    words = query.strip()
    if words:
        mrn = normalise_mrn(words)
        name_match: Any
        if "," in words:
            family, _, given = (part.strip() for part in words.partition(","))
            # autoescape: a typed % or _ is a character of the name, not a wildcard.
            name_match = and_(
                Client.last_name.istartswith(family, autoescape=True),
                Client.first_name.istartswith(given, autoescape=True),
            )
        else:
            name_match = and_(
                *(
                    or_(
                        Client.last_name.icontains(part, autoescape=True),
                        Client.first_name.icontains(part, autoescape=True),
                    )
                    for part in words.split()
                )
            )
        conditions.append(or_(name_match, Client.mrn == mrn) if mrn else name_match)
    return conditions


def _window_query(site: Site, day: date, query: str) -> Any:
    """Every (order, client) row of the day's list, unsorted (what the page reads a page of)."""
    return (
        select(Medication, Client)
        .join(Client, Client.id == Medication.client_id)
        .where(*_in_force(site, day), *_listed_clients(site, day, query))
    )


def _sort_key() -> tuple[Any, ...]:
    """A to Z by family name, then given name: the clients' search keys (case and accents folded)."""
    return (Client.search_last, Client.search_first, Client.id, Medication.id)


def _page_query(
    site: Site,
    day: date,
    query: str,
    *,
    client_id: int | None,
    only: int | None,
    anchor: tuple[str, str, int, int] | None,
) -> Any:
    """A page of the list: its clients first, read in order from the clients' name index and stopping after
    a page (those with an order on the list), then their orders; a page far down the list reads about a
    page of clients too, where sorting every order of the site would read the site's whole list."""
    ordered = select(Medication.id).where(Medication.client_id == Client.id, *_in_force(site, day))
    narrowed = client_id is not None or bool(query.strip())
    clients = select(Client).where(*_listed_clients(site, day, query, narrowed=narrowed), ordered.exists())
    if client_id is not None:
        clients = clients.where(Client.id == client_id)
    if anchor is not None:  # one row comparison on the index's own columns: the index starts there
        clients = clients.where(tuple_(Client.search_last, Client.search_first, Client.id) >= tuple_(*anchor[:3]))
    # The page's orders belong to at most a page of clients after the anchor's, plus the anchor's own.
    page = clients.order_by(Client.search_last, Client.search_first, Client.id).limit(WINDOW_PAGE + 2).subquery()
    client = aliased(Client, page)
    stmt = select(Medication, client).join(client, client.id == Medication.client_id).where(*_in_force(site, day))
    keys = (client.search_last, client.search_first, client.id, Medication.id)
    if only is not None:
        stmt = stmt.where(Medication.id == only)
    if anchor is not None:
        stmt = stmt.where(tuple_(*keys) > tuple_(*anchor))
    return stmt.order_by(*keys).limit(WINDOW_PAGE + 1)


def _may_record(
    order: Medication,
    status: str,
    take_home_today: Dose | None,
    eligibility: dict[str, Any] | None,
    *,
    judged: bool,
) -> list[str]:
    """What may still be recorded on a row: an observed dose (or its next part), a take-home supply.

    ``judged``: the client's take-home eligibility today was loaded (the row being worked), and a
    take-home is offered only when they may take doses home now. Otherwise (a light row of the list,
    or a late entry, which the API judges by the review in force that day) one may be tried.
    """
    may = []
    if status in ("due", "partial"):
        may.append("observed")
    takes_home = not judged or (eligibility is not None and eligibility["eligible"])
    if order.medication in ops.DOSED_DAILY and takes_home and take_home_today is None and status != "covered":
        may.append("take_home")
    return may


def window_rows(
    site: Site,
    day: date,
    user: User,
    *,
    query: str = "",
    after: tuple[int, int] | None = None,
    only: int | None = None,
    client_id: int | None = None,
    worked: bool | None = False,
) -> tuple[list[WindowRow], tuple[int, int] | None]:
    """The rows of the window (one order each), A to Z by family name; the cursor of the next page.

    ``only`` / ``client_id`` narrow the list to one order / one client's orders; ``worked`` opens the
    rows' recording forms (None: when the list is one client's, found by ``query`` or asked for by id).
    Each client shown is an audited read of their dosing record.
    """
    anchor = None
    if after is not None:
        keys = db.session.execute(
            select(Client.search_last, Client.search_first).where(Client.id == after[0], Client.site_id == site.id)
        ).first()
        anchor = None if keys is None else (keys[0], keys[1], after[0], after[1])
    found = db.session.execute(_page_query(site, day, query, client_id=client_id, only=only, anchor=anchor)).all()
    more = len(found) > WINDOW_PAGE
    found = found[:WINDOW_PAGE]
    if not found:
        return [], None
    order_ids = [order.id for order, _client in found]
    client_ids = sorted({client.id for _order, client in found})
    entries: dict[int, list[Dose]] = {order_id: [] for order_id in order_ids}
    for dose in db.session.scalars(
        select(Dose)
        .where(
            Dose.medication_id.in_(order_ids),
            Dose.voided_at.is_(None),
            or_(Dose.given_on == day, (Dose.covered_from <= day) & (Dose.covered_until >= day)),
        )
        .order_by(Dose.given_at, Dose.id)
    ):
        entries[dose.medication_id].append(dose)
    today = local_today(site.timezone)
    # The run of missed days is counted up to the site's yesterday: it is news on today's list only.
    missed = (
        {m.client_id: m.missed_days for m in ops.missed_doses(site, client_ids=client_ids)}
        if site.is_otp and day == today
        else {}
    )
    changes: dict[int, list[MedicationDoseChange]] = {order_id: [] for order_id in order_ids}
    for change in db.session.scalars(
        select(MedicationDoseChange)
        .where(
            MedicationDoseChange.medication_id.in_(order_ids),
            MedicationDoseChange.entered_in_error_at.is_(None),
            MedicationDoseChange.effective_on <= day,  # a change dated later is not in force that day
        )
        .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
    ):
        changes[change.medication_id].append(change)
    can_write = has_permission(user, Permission.CLINICAL_WRITE) and site.is_otp and day <= today
    if worked is None:
        worked = (bool(query.strip()) or client_id is not None) and len(client_ids) == 1
    # Take-home eligibility (two statements and an audited read per client) only for the rows being worked.
    judged = worked and day == today
    eligibilities: dict[int, dict[str, Any]] = {}
    if judged:
        eligibilities = ops.eligibilities(
            list({client.id: client for order, client in found if order.medication in ops.DOSED_DAILY}.values())
        )
    details = {"via": "dosing_window", "date": day.isoformat()}
    rows = []
    for order, client in found:
        record("dose.read", resource="dose", client_id=client.id, details=details)
        in_force = medications.change_in_force(order, day, changes[order.id])
        ordered = None if in_force is None else in_force.dose
        mine = entries[order.id]
        status, given = _status(order, day, mine, ordered)
        take_home_today = next((e for e in mine if e.kind is DoseKind.TAKE_HOME and e.given_on == day), None)
        covering = next((e for e in mine if e.given_on != day and e.covered_from <= day <= e.covered_until), None)
        eligibility = eligibilities.get(client.id) if order.medication in ops.DOSED_DAILY else None
        may = (
            _may_record(order, status, take_home_today, eligibility, judged=judged)
            if can_write and ordered is not None
            else []
        )
        rows.append(
            WindowRow(
                client=client,
                order=order,
                ordered=ordered,
                entries=mine,
                status=status,
                given_mg=given,
                take_home_today=take_home_today,
                covering=covering,
                missed_days=missed.get(client.id) if status == "due" else None,  # a dose today ends the run
                eligibility=eligibility,
                may_record=may,
            )
        )
    if worked:
        _lots_for(rows, site, day)
    last_order, last_client = found[-1]
    return rows, ((last_client.id, last_order.id) if more else None)


def _lots_for(rows: list[WindowRow], site: Site, day: date) -> None:
    """Open the recording form of ``rows``: the lot in use that day at the site is offered in it."""
    lots = _latest_lots(site, day, {row.order.medication for row in rows if row.may_record})
    for row in rows:
        row.worked = True
        row.lot = lots.get(row.order.medication.value, "")


def entered_late(dose: Dose, zone: str) -> bool:
    """The entry was written on a later day than it was given (a late entry): the record shows it as such."""
    return to_local(dose.created_at, zone).date() > dose.given_on


def _user_site(user: User, raw: Any) -> Site | None:
    chosen = visible_id(raw, user.site_ids) or current_site_id()
    return next((site for site in user.sites if site.id == chosen), None)


def _day(site: Site, raw: str | None) -> date | None:
    """The day asked for (the site's today without one); None when it is not a date."""
    if not raw:
        return local_today(site.timezone)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def _cursor(raw: str | None) -> tuple[int, int] | None:
    parts = (raw or "").split("-")
    if len(parts) != 2:
        return None
    client_id, order_id = as_id(parts[0]), as_id(parts[1])
    return (client_id, order_id) if client_id and order_id else None


def _window_page(
    user: User,
    site: Site | None,
    day: date | None,
    *,
    query: str = "",
    client_id: int | None = None,
    refused: dict[int, FormErrors] | None = None,
    values: dict[int, dict[str, Any]] | None = None,
    status: int = 200,
    done: int | None = None,
) -> Response:
    if site is None:
        return page("dosing/window.html", site=None, sites=list(user.sites))
    if day is None:
        return page(
            "dosing/window.html",
            status=422,
            site=site,
            sites=list(user.sites),
            day=None,
            bad_date=True,
            today=local_today(site.timezone),
        )
    rows: list[WindowRow] = []
    next_cursor = None
    if site.is_otp:
        after = _cursor(request.args.get("after"))
        rows, next_cursor = window_rows(site, day, user, query=query, client_id=client_id, after=after, worked=None)
        if done is not None:
            for row in rows:
                if row.order.id == done:
                    row.recorded = _newest_entry(row.order.id)
    today = local_today(site.timezone)
    base = url_for("dosing_pages.window", site_id=site.id, date=day.isoformat())
    next_url = None
    if next_cursor is not None:
        next_url = f"{base}&after={next_cursor[0]}-{next_cursor[1]}"
    return page(
        "dosing/window.html",
        status=status,
        site=site,
        sites=list(user.sites),
        day=day,
        today=today,
        rows=rows,
        query=query,
        client_id=client_id,
        base_url=base,
        next_url=next_url,
        refused=refused or {},
        values=values or {},
        counts={name: sum(1 for row in rows if row.status == name) for name in ("due", "partial", "dosed", "covered")},
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
    )


def _newest_entry(order_id: int) -> Dose | None:
    return db.session.scalars(
        select(Dose).where(Dose.medication_id == order_id).order_by(Dose.created_at.desc(), Dose.id.desc())
    ).first()


@blp.route("/dosing", methods=["GET", "POST"])
@requires(Permission.CLINICAL_READ)
def window() -> Response:
    """The day's list of an OTP: who is due, what is ordered, what was given; each row opens its recording form.

    The filter (name or MRN) is posted, so a client's name never lands in a URL or the browser's history.
    ``client_id`` opens that client's rows (the no-JavaScript way to a row's form, and the way in from
    the client's doses page).
    """
    user = authenticated_user()
    site = _user_site(user, request.values.get("site_id"))
    day = _day(site, request.values.get("date")) if site is not None else None
    query = request.form.get("q", "") if request.method == "POST" else ""
    done = as_id(request.args.get("done", ""))
    return _window_page(
        user, site, day, query=query[:100], client_id=as_id(request.values.get("client_id", "")), done=done
    )


#: The late entry's own fields: why it is entered late (kept as the entry's note), and the time it was given.
LATE_REASON_FIELD = "late_reason"
GIVEN_TIME_FIELD = "given_time"
_CLOCK = re.compile(r"\s*(\d{1,2})(?::(\d{2}))?\s*([AaPp][Mm])?\s*")


def _wall_clock(raw: str) -> time | None:
    """A time of day as typed: 08:30 (a browser's time field), 8:30, 8:30 PM, 8 am; None if it is not one."""
    match = _CLOCK.fullmatch(raw)
    if match is None:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), (match.group(3) or "").lower()
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _dose_body(values: dict[str, Any], order: Medication, day: date, today: date) -> tuple[dict[str, Any], FormErrors]:
    """The window's form as the API's body: now today; on a past day, a late entry at the time it was given."""
    errors = FormErrors()
    if not values[IDENTITY_FIELD]:
        errors[IDENTITY_FIELD] = ["Confirm the client's name and date of birth before recording."]
    kind = values.get("kind", "observed")
    body: dict[str, Any] = {"medication_id": order.id, "kind": kind, "lot_number": values.get("lot_number", "")}
    if "amount_mg" in values:
        body["amount_mg"] = values["amount_mg"]
    given_at: str | None = utcnow().isoformat()
    if day < today:
        given_at = None
        raw_time = values.get(GIVEN_TIME_FIELD, "")
        clock = _wall_clock(raw_time)
        if clock is None:
            errors[GIVEN_TIME_FIELD] = [
                "Enter the time the dose was given, like 08:30 or 2:15 PM."
                if raw_time
                else "Enter the time the dose was given."
            ]
        else:  # the site's wall-clock time, read in the client's site's zone by the API's schema
            given_at = datetime.combine(day, clock).isoformat(timespec="minutes")
        reason = values.get(LATE_REASON_FIELD, "").strip()
        if not reason:
            errors[LATE_REASON_FIELD] = ["Say why the dose is entered late: it is kept with the entry."]
        body["note"] = reason
    if kind == "take_home":
        if given_at is not None:
            body["dispensed_at"] = given_at
        body["take_home_days"] = as_number(values.get("take_home_days", ""))
        if body["take_home_days"] == "":
            del body["take_home_days"]
    else:
        if given_at is not None:
            body["administered_at"] = given_at
        body["split"] = bool(values["split"])
    return body, errors


def _form_errors(schema_errors: FormErrors, body: dict[str, Any], late: bool) -> FormErrors:
    """The schema's errors named after the window's fields (the time and the reason of a late entry)."""
    found = FormErrors()
    for name, messages in schema_errors.items():
        if late and name in ("administered_at", "dispensed_at"):
            found.setdefault(GIVEN_TIME_FIELD, []).extend(messages)
        elif name == "note":
            found.setdefault(LATE_REASON_FIELD, []).extend(messages)
        elif name == "take_home_days" and "take_home_days" not in body:
            found[name] = ["Enter how many daily doses the client takes home."]
        else:  # today's administered_at / dispensed_at (now): shown at the top of the form, as the row's refusal
            found[name] = messages
    found.problem = schema_errors.problem
    return found


@blp.route("/dosing/clients/<int:client_id>/orders/<int:medication_id>/doses", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def record_dose(client_id: int, medication_id: int) -> Response:
    """Record an observed dose or a take-home supply from the window (POST /api/v1/clients/{id}/doses).

    On today's list it is given now; on a past day's list it is a late entry: the time it was given and
    why it is entered late (kept as the entry's note) are required.
    """
    user = authenticated_user()
    client = load_client(client_id)
    order = db.session.scalars(
        select(Medication).where(Medication.id == medication_id, Medication.client_id == client.id)
    ).first()
    if order is None:
        not_found()
    site = db.session.get_one(Site, client.site_id)
    today = local_today(site.timezone)
    day = _day(site, request.form.get("date"))
    values = form_values(lists=("split", IDENTITY_FIELD))
    errors = FormErrors()
    if day is None or day > today:
        day = today if day is None else day
        errors["_schema"] = ["A dose is recorded on today's list, or entered late on a past day's."]
        body: dict[str, Any] = {}
    else:
        body, errors = _dose_body(values, order, day, today)
    late = day < today
    dose = None
    if "_schema" not in errors:
        data, schema_errors = load_form(DoseCreateSchema(), body)
        for name, messages in _form_errors(schema_errors, body, late).items():
            errors.setdefault(name, messages)  # the window's own message first (a time not typed, say)
        if not errors:
            given_at = (
                data.pop("administered_at", None) if data["kind"] is DoseKind.OBSERVED else data.pop("dispensed_at")
            )
            data.pop("dispensed_at", None)
            dose, refused = attempt(ops.record_dose, client, actor=user, given_at=given_at, **data)
            errors = _form_errors(refused, body, late) if refused else refused
    if is_htmx():
        rows, _ = window_rows(site, day, user, only=order.id, client_id=client.id, worked=True)
        row = rows[0] if rows else None
        if row is not None and dose is not None:
            row.recorded = dose
        return page(
            "dosing/_row_swap.html",
            row=row,
            errors=errors,
            values=values if errors else {},
            day=day,
            today=today,
            site=site,
            focus="done" if dose is not None else "error",
        )
    if dose is not None:
        return redirect_to(
            url_for("dosing_pages.window", site_id=site.id, date=day.isoformat(), client_id=client.id, done=order.id)
            + f"#order-{order.id}"
        )
    problem = getattr(errors, "problem", None)
    status = 409 if getattr(problem, "code", None) == 409 else 422
    return _window_page(
        user,
        site,
        day,
        client_id=client.id,
        refused={order.id: errors},
        values={order.id: values},
        status=status,
    )


# --- a client's doses ----------------------------------------------------------------------------------


def _review_values(values: dict[str, Any]) -> tuple[dict[str, Any], FormErrors]:
    """The review form as the API's body: each criterion yes / no / not assessed, other considerations in words."""
    criteria: dict[str, Any] = {}
    errors = FormErrors()
    answers = {"yes": True, "no": False, "unknown": None}
    for name in ops.CRITERIA:
        raw = values.get(f"criteria.{name}", "unknown")
        if raw not in answers:
            errors[f"criteria.{name}"] = ["Choose met, not met or not assessed."]
            continue
        criteria[name] = answers[raw]
    words = values.get("other_considerations_text", "").strip()
    if words and criteria.get(ops.FREE_TEXT_CRITERION) is not False:
        criteria[ops.FREE_TEXT_CRITERION] = words
    body: dict[str, Any] = {"criteria": criteria}
    if "note" in values:
        body["note"] = values["note"]
    return body, errors


def _doses_page(
    client: Client,
    user: User,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    done: str | None = None,
    void_errors: dict[int, FormErrors] | None = None,
) -> Response:
    cursor = request.args.get("cursor") or None
    found = ops.list_doses(client, user, limit=HISTORY_PAGE, cursor=cursor)
    site = db.session.get_one(Site, client.site_id)
    orders = {m.id: m for m in db.session.scalars(select(Medication).where(Medication.client_id == client.id))}
    next_url = (
        url_for("dosing_pages.client_doses", client_id=client.id, cursor=found.next_cursor)
        if found.next_cursor
        else None
    )
    return page(
        "dosing/client_doses.html",
        status=status,
        **banner_context(client, user, current="dosing_pages.client_doses"),
        client=client,
        site=site,
        doses=found.items,
        orders=orders,
        next_url=next_url,
        first_page=cursor is None,
        dosing=ops.dosing_status(client),
        today=local_today(site.timezone),
        eligibility=ops.eligibility(client),
        values=values or {},
        errors=errors or FormErrors(),
        void_errors=void_errors or {},
        done=done,
        can_write=has_permission(user, Permission.CLINICAL_WRITE),
    )


@blp.route("/clients/<int:client_id>/doses", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def client_doses(client_id: int) -> Response:
    """The client's doses (voided ones marked), take-home eligibility and its review."""
    user = authenticated_user()
    done = request.args.get("done")
    return _doses_page(
        load_client(client_id, audit_read=True), user, done=done if done in ("review", "voided") else None
    )


@blp.route("/clients/<int:client_id>/doses/review", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def review(client_id: int) -> Response:
    """Record a review of the take-home criteria (PUT /api/v1/clients/{id}/take-home-eligibility)."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values()
    body, errors = _review_values(values)
    data: dict[str, Any] = {}
    if not errors:
        data, errors = load_form(TakeHomeReviewSchema(), body)
    if not errors:
        _, errors = attempt(ops.record_review, client, actor=user, **data)
    if errors:
        return _doses_page(load_client(client_id, audit_read=True), user, status=422, values=values, errors=errors)
    return redirect_to(url_for("dosing_pages.client_doses", client_id=client.id, done="review") + "#eligibility")


@blp.route("/clients/<int:client_id>/doses/<int:dose_id>/entered-in-error", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def void(client_id: int, dose_id: int) -> Response:
    """Mark an entry entered in error with the reason (POST /api/v1/doses/{id}/entered-in-error)."""
    user = authenticated_user()
    client = load_client(client_id)
    dose = get_scoped_or_404(Dose, dose_id, user)
    if dose.client_id != client.id:
        not_found()
    values = form_values()
    data, errors = load_form(EnteredInErrorSchema(), values)
    if not errors:
        _, errors = attempt(ops.void_dose, dose, actor=user, reason=data["reason"])
    if errors:
        status = 409 if getattr(errors.problem, "code", None) == 409 else 422
        return _doses_page(
            load_client(client_id, audit_read=True),
            user,
            status=status,
            void_errors={dose.id: errors},
            values={f"reason-{dose.id}": values.get("reason", "")},
        )
    return redirect_to(url_for("dosing_pages.client_doses", client_id=client.id, done="voided") + f"#dose-{dose.id}")


# --- the day's dispensing log ------------------------------------------------------------------------------


@blp.route("/dosing/log", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def log() -> Response:
    """The site's dispensing record of the day, to print; the CSV is the API's (GET /sites/{id}/dispensing-log)."""
    user = authenticated_user()
    raw_site = request.args.get("site_id")
    site_id = visible_id(raw_site, user.site_ids) or current_site_id()
    if site_id is None:
        not_found()
    site = ops.load_site(site_id, user)
    day = _day(site, request.args.get("date"))
    if day is None:
        return page("dosing/log.html", status=422, site=site, day=None, log=None, bad_date=True)
    return page(
        "dosing/log.html",
        site=site,
        day=day,
        log=ops.dispensing_log(site, day),
        csv_url=f"/api/v1/sites/{site.id}/dispensing-log?date={day.isoformat()}&format=csv",
    )
