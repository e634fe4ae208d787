"""Doses and take-home supplies at an OTP, the take-home review, the dispensing log, missed doses.

The rules and their sources are in docs/dosing.md: take-home supply by time in treatment and the
clinician's review of the criteria (42 CFR 8.12(i)), the dispensing record (21 CFR 1304.24).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from clinic.audit.models import Outcome
from clinic.audit.operations import audit, record
from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, has_permission, read_scoped_page, scoped_select, site_scope
from clinic.clients.models import Client, ClientStatus, Episode
from clinic.core.errors import abort_problem
from clinic.core.http import mark_client_data
from clinic.core.pagination import Page
from clinic.core.signals import client_dosing
from clinic.core.time import local_today, start_of_day, to_local, utcnow
from clinic.core.unit_of_work import savepoint
from clinic.dosing.models import Dose, DoseKind, TakeHomeReview
from clinic.dosing.runs import rebuild_runs  # noqa: F401 - the runs kept in step with every dose written
from clinic.extensions import db
from clinic.notify.models import StaffNotificationKind
from clinic.notify.staff import send_safety_alert
from clinic.plans import medications
from clinic.plans.models import Medication, MedicationName

#: The criteria of 42 CFR 8.12(i)(2) a clinician reviews before take-homes, in the rule's order.
CRITERIA = (
    "no_active_sud_or_risky_conditions",
    "regular_attendance",
    "no_serious_behavioural_problems",
    "no_recent_diversion",
    "safe_transport_and_storage",
    "other_considerations",
)
#: The criterion whose answer may be the clinician's words rather than true or false.
FREE_TEXT_CRITERION = "other_considerations"

#: Orders whose daily doses an OTP observes, and whose missed days raise an alert.
DOSED_DAILY = frozenset({MedicationName.METHADONE, MedicationName.BUPRENORPHINE, MedicationName.BUPRENORPHINE_NALOXONE})

#: What the record says was dispensed when the request does not say: (strength, dosage form).
PRODUCTS: dict[MedicationName, tuple[str, str]] = {
    MedicationName.METHADONE: ("10 mg/mL", "oral solution"),
    MedicationName.BUPRENORPHINE: ("8 mg", "sublingual tablet"),
    MedicationName.BUPRENORPHINE_NALOXONE: ("8 mg/2 mg", "sublingual film"),
    MedicationName.NALTREXONE_ORAL: ("50 mg", "tablet"),
    MedicationName.NALTREXONE_XR: ("380 mg/vial", "extended-release injectable suspension"),
}


def _milligrams(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.001"))


def mg(amount: Decimal) -> str:
    """Milligrams as people write them: 100, 7.5, 0.25."""
    return format(amount.normalize(), "f")


def initials(name: str) -> str:
    """A dispenser's initials as the record keeps them: the first letter of each part of the name."""
    parts = [part for part in name.replace("-", " ").split() if part[:1].isalpha()]
    return "".join(part[0].upper() for part in parts)[:8] or "?"


def _site(client: Client) -> Site:
    return db.session.get_one(Site, client.site_id)


# --- time in treatment and the take-home review ---------------------------------------------------


def open_episode(client: Client) -> Episode | None:
    return db.session.scalars(
        select(Episode).where(Episode.client_id == client.id, Episode.discharged_on.is_(None))
    ).first()


def days_in_treatment(client: Client, day: date) -> int | None:
    """Days from the open episode's admission to ``day`` (0 on the day of admission); None without one."""
    episode = open_episode(client)
    if episode is None or day < episode.admitted_on:
        return None
    return (day - episode.admitted_on).days


def _in_treatment_on(client: Client, day: date) -> bool:
    """An episode of care covered ``day`` (admitted by then, not discharged before it)."""
    found = db.session.scalars(
        select(Episode.id).where(
            Episode.client_id == client.id,
            Episode.admitted_on <= day,
            or_(Episode.discharged_on.is_(None), Episode.discharged_on >= day),
        )
    ).first()
    return found is not None


def max_take_home_days(days: int | None) -> int:
    """42 CFR 8.12(i)(3): the most daily doses one take-home may hand over on that day in treatment."""
    if days is None:
        return 0
    allowed = 0
    for from_day, doses in sorted(current_app.config["DOSING_TAKE_HOME_LIMITS"]):
        if days >= from_day:
            allowed = doses
    return allowed


def latest_review(client: Client, *, as_of: datetime | None = None) -> TakeHomeReview | None:
    """The review in force: the latest one, or the latest made before ``as_of`` (a dispense recorded late)."""
    stmt = select(TakeHomeReview).where(TakeHomeReview.client_id == client.id)
    if as_of is not None:
        stmt = stmt.where(TakeHomeReview.decided_at < as_of)
    return db.session.scalars(stmt.order_by(TakeHomeReview.decided_at.desc(), TakeHomeReview.id.desc())).first()


def _criteria_view(review: TakeHomeReview | None) -> dict[str, Any]:
    stored = review.criteria if review is not None else {}
    return {name: stored.get(name) for name in CRITERIA}


def _review_blocks(review: TakeHomeReview | None, at: datetime) -> str | None:
    """Why the latest review does not allow take-homes at ``at`` (None when it does)."""
    valid_days = int(current_app.config["DOSING_TAKE_HOME_REVIEW_VALID_DAYS"])
    if review is None:
        return "No review of the take-home criteria is recorded."
    if review.decided_at < at - timedelta(days=valid_days):
        return f"The latest review of the take-home criteria is older than {valid_days} days."
    failed = [name for name, value in review.criteria.items() if value is False]
    if failed:
        return "The latest review found criteria not met: " + ", ".join(sorted(failed)) + "."
    # A criterion left unassessed (null) was not considered: the review does not decide take-homes.
    unassessed = [name for name in CRITERIA if name != FREE_TEXT_CRITERION and review.criteria.get(name) is None]
    if unassessed:
        return "The latest review did not assess: " + ", ".join(unassessed) + "."
    return None


def eligibilities(clients: Sequence[Client]) -> dict[int, dict[str, Any]]:
    """:func:`eligibility` of many clients (a page of the dosing window) in two queries, each audited."""
    ids = sorted({client.id for client in clients})
    if not ids:
        return {}
    episodes: dict[int, Episode] = {}
    for episode in db.session.scalars(
        select(Episode).where(Episode.client_id.in_(ids), Episode.discharged_on.is_(None)).order_by(Episode.id)
    ):
        episodes.setdefault(episode.client_id, episode)
    reviews: dict[int, TakeHomeReview] = {}
    for review in db.session.scalars(
        select(TakeHomeReview)
        .where(TakeHomeReview.client_id.in_(ids))
        .order_by(TakeHomeReview.decided_at, TakeHomeReview.id)
    ):
        reviews[review.client_id] = review  # the latest stands
    return {
        client.id: eligibility(client, episode=episodes.get(client.id), review=reviews.get(client.id), loaded=True)
        for client in clients
    }


def eligibility(
    client: Client,
    *,
    episode: Episode | None = None,
    review: TakeHomeReview | None = None,
    loaded: bool = False,
) -> dict[str, Any]:
    """Today's take-home eligibility: time in treatment, its limit, the latest review (audited).

    ``loaded`` says ``episode`` (the open one) and ``review`` (the latest) were loaded by the caller.
    """
    site = _site(client)
    day = local_today(site.timezone)
    if not loaded:
        episode, review = open_episode(client), latest_review(client)
    days = None if episode is None or day < episode.admitted_on else (day - episode.admitted_on).days
    blocked = _review_blocks(review, utcnow())
    limit = max_take_home_days(days)
    if review is not None:
        audit("read", review)
    else:  # time in treatment and its limit are the client's data even without a review
        record(
            "take_home_review.read",
            resource="take_home_review",
            client_id=client.id,
            details={"via": "take_home_eligibility"},
        )
    valid_days = int(current_app.config["DOSING_TAKE_HOME_REVIEW_VALID_DAYS"])
    return {
        "client_id": client.id,
        "on": day,
        "days_in_treatment": days,
        "max_take_home_days": limit,
        "criteria": _criteria_view(review),
        "decided_by": review.decided_by_id if review is not None else None,
        "decided_at": review.decided_at if review is not None else None,
        "note": review.note if review is not None else None,
        "review_valid_until": (
            to_local(review.decided_at + timedelta(days=valid_days), site.timezone).date()
            if review is not None
            else None
        ),
        "eligible": blocked is None and limit > 0,
        "reason": blocked if blocked is not None else (None if limit > 0 else "The client has no open episode."),
    }


def record_review(client: Client, *, actor: User, criteria: dict[str, Any], note: str) -> TakeHomeReview:
    """Record the clinician's review of the take-home criteria; the latest review stands."""
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        abort_problem(
            422, "Unknown take-home criteria.", errors={f"criteria.{name}": ["Unknown criterion."] for name in unknown}
        )
    episode = open_episode(client)
    review = TakeHomeReview(
        client_id=client.id,
        site_id=client.site_id,
        episode_id=episode.id if episode is not None else None,
        criteria={name: criteria.get(name) for name in CRITERIA},
        note=note,
        decided_by_id=actor.id,
        decided_at=utcnow(),
    )
    db.session.add(review)
    db.session.flush()
    failed = sorted(name for name, value in review.criteria.items() if value is False)
    audit("create", review, details={"criteria_not_met": failed})
    return review


# --- doses -----------------------------------------------------------------------------------------


def _order(client: Client, medication_id: int) -> Medication:
    """The client's order, locked for the rest of the transaction (PostgreSQL): two doses or supplies
    recorded at once on the same order are checked one after the other, so neither covers a day twice.
    Looked up among the client's own orders, so the id of someone else's locks nothing of theirs."""
    med = db.session.scalars(
        select(Medication)
        .where(Medication.id == medication_id, Medication.client_id == client.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if med is None or med.client_id != client.id:
        abort_problem(
            422, "No such medication order for this client.", errors={"medication_id": ["Not an order of this client."]}
        )
    return med


def _day_doses(med: Medication, day: date) -> list[Dose]:
    return list(
        db.session.scalars(
            select(Dose).where(
                Dose.medication_id == med.id,
                Dose.given_on == day,
                Dose.kind == DoseKind.OBSERVED,
                Dose.voided_at.is_(None),
            )
        )
    )


def _covering(med: Medication, first: date, last: date) -> Dose | None:
    """A counted entry of the order that already doses a day of ``first``..``last``."""
    return db.session.scalars(
        select(Dose)
        .where(
            Dose.medication_id == med.id,
            Dose.voided_at.is_(None),
            Dose.covered_from <= last,
            Dose.covered_until >= first,
        )
        .order_by(Dose.covered_from, Dose.id)
    ).first()


def _check_take_home(client: Client, med: Medication, *, day: date, days: int, amount: Decimal, at: datetime) -> None:
    """Time in treatment, the review, and the order over every day the supply covers (422 on take_home_days)."""
    in_treatment = days_in_treatment(client, day)
    allowed = max_take_home_days(in_treatment)
    if days > allowed:
        why = (
            "The client has no open episode: no take-homes."
            if in_treatment is None
            else f"On day {in_treatment} in treatment at most {allowed} daily doses may be taken home."
        )
        abort_problem(422, why, errors={"take_home_days": [why]}, problem="take-home-limit")
    # A supply entered late needs a review made by the end of the day it was handed over.
    site = db.session.get_one(Site, client.site_id)
    by_then = start_of_day(day + timedelta(days=1), site.timezone)
    blocked = _review_blocks(latest_review(client, as_of=by_then), at)
    if blocked is not None:
        abort_problem(422, blocked, errors={"take_home_days": [blocked]}, problem="take-home-review")
    history = medications.counted_history(med)
    for offset in range(1, days + 1):
        covered = day + timedelta(days=offset)
        change = medications.change_in_force(med, covered, history)
        if change is None:
            why = f"The order does not run on {covered.isoformat()}, a day this supply would cover."
            abort_problem(422, why, errors={"take_home_days": [why]})
        if change.dose != amount:
            why = f"The ordered dose on {covered.isoformat()} is {mg(change.dose)} mg, not {mg(amount)} mg."
            abort_problem(422, why, errors={"take_home_days": [why]})


def _check_observed(med: Medication, *, day: date, amount: Decimal, ordered: Decimal, split: bool) -> None:
    """The day's ordered dose, whole (once a day: 409) or in parts that do not exceed it (422 on amount_mg)."""
    given_today = _day_doses(med, day)
    if split:
        total = sum((dose.amount_mg for dose in given_today), Decimal(0)) + amount
        if total > ordered:
            why = f"The day's parts would come to {mg(total)} mg; the ordered dose is {mg(ordered)} mg."
            abort_problem(422, why, errors={"amount_mg": [why]})
        return
    if amount != ordered:
        why = f"The ordered dose on {day.isoformat()} is {mg(ordered)} mg."
        abort_problem(422, why, errors={"amount_mg": [why]})
    if given_today:
        abort_problem(409, f"This order's dose of {day.isoformat()} is already recorded.", problem="already-dosed")


def record_dose(
    client: Client,
    *,
    actor: User,
    medication_id: int,
    kind: DoseKind,
    amount_mg: float | Decimal,
    given_at: datetime,
    lot_number: str,
    take_home_days: int | None = None,
    split: bool = False,
    note: str | None = None,
    strength: str | None = None,
    dosage_form: str | None = None,
) -> Dose:
    """Record a dose observed at the OTP, or a take-home supply, checked against the day's order."""
    site = _site(client)
    if not site.is_otp:
        abort_problem(
            422,
            "Doses are recorded only at an opioid treatment program.",
            errors={"medication_id": ["The client's site is not an opioid treatment program (is_otp)."]},
            problem="not-an-otp",
        )
    med = _order(client, medication_id)
    day = to_local(given_at, site.timezone).date()
    ordered = medications.dose_on(med, day)
    if ordered is None:
        why = f"No active order of {med.medication.value} on {day.isoformat()}."
        abort_problem(422, why, errors={"medication_id": [why]}, problem="no-active-order")
    if not _in_treatment_on(client, day):
        why = f"The client was not in treatment (no episode of care open) on {day.isoformat()}."
        abort_problem(422, why, errors={"medication_id": [why]}, problem="not-in-treatment")
    amount = _milligrams(amount_mg)
    if kind is DoseKind.OBSERVED:
        days = 0
        covered_from = covered_until = day
        if med.medication is MedicationName.NALTREXONE_XR:  # one injection covers weeks
            covered_until = day + timedelta(days=int(current_app.config["MED_NALTREXONE_XR_COVERAGE_DAYS"]) - 1)
        _check_observed(med, day=day, amount=amount, ordered=ordered, split=split)
    else:
        if split:
            abort_problem(422, "A take-home supply is not split.", errors={"split": ["Only observed doses are split."]})
        days = int(take_home_days or 0)
        if amount != ordered:
            why = f"The ordered dose on {day.isoformat()} is {mg(ordered)} mg (give one daily dose)."
            abort_problem(422, why, errors={"amount_mg": [why]})
        _check_take_home(client, med, day=day, days=days, amount=amount, at=given_at)
        covered_from, covered_until = day + timedelta(days=1), day + timedelta(days=days)
    already = _covering(med, covered_from, covered_until)
    if already is not None and not (kind is DoseKind.OBSERVED and already.kind is DoseKind.OBSERVED):
        why = f"{already.covered_from.isoformat()} is already dosed (entry {already.id})."
        abort_problem(
            409,
            why,
            errors={"take_home_days" if kind is DoseKind.TAKE_HOME else "administered_at": [why]},
            problem="already-covered",
        )
    default_strength, default_form = PRODUCTS[med.medication]
    dose = Dose(
        client_id=client.id,
        site_id=site.id,
        medication_id=med.id,
        kind=kind,
        amount_mg=amount,
        take_home_days=days,
        given_at=given_at,
        given_on=day,
        covered_from=covered_from,
        covered_until=covered_until,
        is_split=bool(split) and kind is DoseKind.OBSERVED,
        lot_number=lot_number,
        substance=med.medication.value,
        strength=strength or default_strength,
        dosage_form=dosage_form or default_form,
        note=note,
        dispenser_id=actor.id,
        dispenser_initials=initials(actor.name),
    )
    try:
        with savepoint():
            db.session.add(dose)
            db.session.flush()
    except IntegrityError:  # another dispenser recorded the day's dose at the same moment
        abort_problem(409, f"This order's dose of {day.isoformat()} is already recorded.", problem="already-dosed")
    if kind is DoseKind.OBSERVED and med.medication is MedicationName.NALTREXONE_XR:
        medications.record_injection(med, day)
    late = day < local_today(site.timezone)  # entered on a later day than it was given: the trail says so
    audit(
        "create",
        dose,
        details={"kind": kind.value, "medication": med.medication.value, "split": dose.is_split, "late_entry": late},
    )
    return dose


def _locked(dose: Dose) -> Dose:
    """The entry, locked until the transaction ends and read as it stands: two corrections sent
    together are made one after the other (the second finds it voided)."""
    return db.session.scalars(
        select(Dose).where(Dose.id == dose.id).with_for_update(key_share=True).execution_options(populate_existing=True)
    ).one()


def void_dose(dose: Dose, *, actor: User, reason: str) -> Dose:
    """Mark an entry entered in error: it stays in the record, voided with the reason, and counts nowhere."""
    dose = _locked(dose)
    if dose.voided_at is not None:
        abort_problem(409, "This entry is already voided.", problem="already-voided")
    dose.voided_at = utcnow()
    dose.voided_by_id = actor.id
    dose.void_reason = reason
    db.session.flush()
    med = db.session.get_one(Medication, dose.medication_id)
    if dose.kind is DoseKind.OBSERVED and med.medication is MedicationName.NALTREXONE_XR:
        # The coverage runs from the latest injection that still counts (the order's start without one).
        med.last_injection_on = db.session.scalar(
            select(func.max(Dose.given_on)).where(
                Dose.medication_id == med.id, Dose.kind == DoseKind.OBSERVED, Dose.voided_at.is_(None)
            )
        )
        db.session.flush()
    audit("void", dose, details={"reason": reason})
    return dose


def list_doses(
    client: Client,
    user: User,
    *,
    from_on: date | None = None,
    to_on: date | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Dose]:
    """The client's doses (voided ones included), newest local day first; each read audited."""
    stmt = scoped_select(Dose, user).where(Dose.client_id == client.id)
    if from_on is not None:
        stmt = stmt.where(Dose.given_on >= from_on)
    if to_on is not None:
        stmt = stmt.where(Dose.given_on <= to_on)
    return read_scoped_page(
        stmt, keys=[Dose.given_on, Dose.id], limit=limit, cursor=cursor, via="list", descending=True
    )


def dose_view(dose: Dose) -> dict[str, Any]:
    """A dose as the API shows it."""
    observed = dose.kind is DoseKind.OBSERVED
    return {
        **{column.key: getattr(dose, column.key) for column in Dose.__table__.columns},
        "administered_at": dose.given_at if observed else None,
        "dispensed_at": None if observed else dose.given_at,
        "split": dose.is_split,
        "entered_in_error": (
            None
            if dose.voided_at is None
            else {"reason": dose.void_reason, "by_user_id": dose.voided_by_id, "at": dose.voided_at}
        ),
    }


# --- the dispensing log (21 CFR 1304.24) -----------------------------------------------------------

#: The log's columns, in order: the fields of 21 CFR 1304.24, the lot number, and the correction.
LOG_COLUMNS = (
    "dose_id",
    "date",
    "time",
    "substance",
    "strength",
    "dosage_form",
    "client_name",
    "mrn",
    "kind",
    "split",
    "amount_consumed_mg",
    "amount_taken_home_mg",
    "take_home_days",
    "take_home_form",
    "dispenser_initials",
    "lot_number",
    "voided",
    "void_reason",
    "voided_at",
)


def load_site(site_id: int, user: User) -> Site:
    """A site whose dispensing record ``user`` may read: one of their sites (404 otherwise)."""
    mark_client_data()
    site = db.session.get(Site, site_id) if site_id in site_scope(user) else None
    if site is None:
        if db.session.get(Site, site_id) is not None:  # another's site: answered like a missing one, audited
            record(
                "access.denied",
                resource="site",
                resource_id=site_id,
                outcome=Outcome.DENIED,
                user_id=user.id,
                details={"reason": "outside the user's sites", "via": "dispensing_log"},
            )
        abort_problem(404, "Not found.")
    return site


def dispensing_log(site: Site, day: date) -> dict[str, Any]:
    """The site's dispensing record of one local day, voided entries included; each entry's read audited."""
    record("dispensing_log.read", resource="site", resource_id=site.id, details={"date": day.isoformat()})
    rows = db.session.execute(
        select(Dose, Client.first_name, Client.last_name, Client.mrn)
        .join(Client, Client.id == Dose.client_id)
        .where(Dose.site_id == site.id, Dose.given_on == day)
        .order_by(Dose.given_at, Dose.id)
    ).all()
    entries = []
    consumed = taken_home = Decimal(0)
    for dose, first_name, last_name, mrn in rows:
        audit("read", dose, details={"via": "dispensing_log"})
        observed = dose.kind is DoseKind.OBSERVED
        home = Decimal(0) if observed else dose.amount_mg * dose.take_home_days
        if dose.voided_at is None:
            consumed += dose.amount_mg if observed else Decimal(0)
            taken_home += home
        entries.append(
            {
                "dose_id": dose.id,
                "date": day,
                "time": to_local(dose.given_at, site.timezone).strftime("%H:%M"),
                "substance": dose.substance,
                "strength": dose.strength,
                "dosage_form": dose.dosage_form,
                "client_id": dose.client_id,
                "client_name": f"{last_name}, {first_name}",
                "mrn": mrn,
                "kind": dose.kind.value,
                "split": dose.is_split,
                "amount_consumed_mg": dose.amount_mg if observed else Decimal(0),
                "amount_taken_home_mg": home,
                "take_home_days": dose.take_home_days,
                "take_home_form": None if observed else dose.dosage_form,
                "dispenser_initials": dose.dispenser_initials,
                "lot_number": dose.lot_number,
                "voided": dose.voided_at is not None,
                "void_reason": dose.void_reason,
                "voided_at": dose.voided_at,
            }
        )
    return {
        "site_id": site.id,
        "date": day,
        "items": entries,
        "totals": {"amount_consumed_mg": consumed, "amount_taken_home_mg": taken_home},
    }


# --- coverage and missed doses ---------------------------------------------------------------------


def coverage_intervals(client_ids: Iterable[int] | None = None) -> Any:
    """SELECT of (client_id, covered_from, covered_until) of every entry that counts (not voided).

    The days a client is dosed are the union of these intervals: an observed dose covers its day,
    a take-home supply the days after the visit. For reports that join it in SQL.
    """
    stmt = select(Dose.client_id, Dose.covered_from, Dose.covered_until).where(Dose.voided_at.is_(None))
    if client_ids is not None:
        stmt = stmt.where(Dose.client_id.in_(sorted(set(client_ids))))
    return stmt


def covered_days(client_ids: Iterable[int], from_on: date, to_on: date) -> dict[int, set[date]]:
    """The days in ``from_on``..``to_on`` on which each client was dosed (observed or take-home)."""
    wanted = sorted(set(client_ids))
    days: dict[int, set[date]] = {client_id: set() for client_id in wanted}
    if not wanted:
        return days
    stmt = coverage_intervals(wanted).where(Dose.covered_from <= to_on, Dose.covered_until >= from_on)
    for client_id, first, last in db.session.execute(stmt):
        day = max(first, from_on)
        while day <= min(last, to_on):
            days[client_id].add(day)
            day += timedelta(days=1)
    return days


@dataclass
class MissedDoses:
    """A client with a daily-dosed order in force at an OTP, and the days since their last dose."""

    client_id: int
    #: The first day of the earliest order in force (days before it are never missed).
    start_on: date
    #: The last day up to the evaluated day that an entry dosed, if any.
    last_covered_on: date | None
    #: The last day that can be missed: the site's yesterday (today is not over).
    through: date
    medication_ids: list[int] = field(default_factory=list)
    prescriber_ids: list[int] = field(default_factory=list)

    @property
    def first_missed_on(self) -> date:
        after_dose = self.last_covered_on + timedelta(days=1) if self.last_covered_on is not None else self.start_on
        return max(after_dose, self.start_on)

    @property
    def missed_days(self) -> int:
        return max((self.through - self.first_missed_on).days + 1, 0)


def missed_doses(
    site: Site, *, client_ids: Sequence[int] | None = None, at_least: int | None = None
) -> list[MissedDoses]:
    """Every client of ``site`` (an OTP) with a daily-dosed order in force through the site's yesterday,
    and how many days they have gone without a dose, in one query for all of them.

    ``at_least`` keeps only those who missed that many days or more (filtered in SQL).
    """
    through = local_today(site.timezone) - timedelta(days=1)
    last_covered = select(Dose.client_id, func.max(Dose.covered_until).label("last_covered_on")).where(
        Dose.voided_at.is_(None), Dose.covered_from <= through
    )
    if client_ids is not None:  # a page of clients: their doses only, not the whole record
        last_covered = last_covered.where(Dose.client_id.in_(sorted(set(client_ids))))
    covered = last_covered.group_by(Dose.client_id).subquery()
    stmt = (
        select(
            Medication.client_id,
            Medication.id,
            Medication.prescriber_id,
            Medication.start_on,
            covered.c.last_covered_on,
        )
        .join(Client, Client.id == Medication.client_id)
        .outerjoin(covered, covered.c.client_id == Medication.client_id)
        .where(
            Medication.site_id == site.id,
            Client.site_id == site.id,
            Client.status != ClientStatus.DISCHARGED,
            Medication.medication.in_(DOSED_DAILY),
            Medication.start_on <= through,
            or_(Medication.end_on.is_(None), Medication.end_on >= through),
        )
        .order_by(Medication.client_id, Medication.start_on, Medication.id)
    )
    if client_ids is not None:
        stmt = stmt.where(Medication.client_id.in_(sorted(set(client_ids))))
    if at_least is not None:
        cutoff = through - timedelta(days=at_least)
        stmt = stmt.where(
            or_(covered.c.last_covered_on.is_(None), covered.c.last_covered_on <= cutoff),
            Medication.start_on <= cutoff + timedelta(days=1),
        )
    found: dict[int, MissedDoses] = {}
    for client_id, medication_id, prescriber_id, start_on, last_covered_on in db.session.execute(stmt):
        entry = found.get(client_id)
        if entry is None:
            entry = found[client_id] = MissedDoses(client_id, start_on, last_covered_on, through)
        entry.medication_ids.append(medication_id)
        if prescriber_id not in entry.prescriber_ids:
            entry.prescriber_ids.append(prescriber_id)
    return [entry for entry in found.values() if at_least is None or entry.missed_days >= at_least]


def alert_missed_doses() -> int:
    """Alert the clinician and the prescriber of each client who missed the set number of days in a row.

    One alert per run of missed days (its first day is in the alert's key), so running it again,
    or the next day while the run goes on, alerts nobody twice.
    """
    threshold = int(current_app.config["DOSING_MISSED_DOSE_ALERT_DAYS"])
    raised = 0
    for site in db.session.scalars(select(Site).where(Site.is_otp.is_(True)).order_by(Site.id)):
        missed = missed_doses(site, at_least=threshold)
        clients = {
            c.id: c for c in db.session.scalars(select(Client).where(Client.id.in_([m.client_id for m in missed])))
        }
        for entry in missed:
            client = clients[entry.client_id]
            made = send_safety_alert(
                client,
                kind=StaffNotificationKind.MISSED_DOSES,
                title=f"Missed doses: {entry.missed_days} days in a row",
                body=(
                    f"A client on daily dosing at {site.name} has had no observed dose and no take-home "
                    f"since {entry.first_missed_on.isoformat()} ({entry.missed_days} days). Open the client's "
                    "doses to follow up."
                ),
                resource="medication",
                resource_id=entry.medication_ids[0],
                dedupe_key=f"missed_doses:{client.id}:{entry.first_missed_on.isoformat()}",
                also_user_ids=entry.prescriber_ids,
            )
            raised += 1 if made else 0
    return raised


def dosing_status(client: Client) -> dict[str, Any]:
    """``last_dose_on`` and ``missed_dose_days`` of the client (None when not dosed at an OTP)."""
    site = _site(client)
    today = local_today(site.timezone)
    last = db.session.scalar(
        select(func.max(Dose.covered_until)).where(
            Dose.client_id == client.id, Dose.voided_at.is_(None), Dose.covered_from <= today
        )
    )
    missed: int | None = None
    if site.is_otp:
        found = missed_doses(site, client_ids=[client.id])
        missed = found[0].missed_days if found else None
        if missed and last is not None and last >= today:
            missed = 0  # dosed (or covered) today: the run of missed days has ended
    if last is not None or missed is not None:  # the answer tells something of the dosing record
        record("dose.read", resource="dose", client_id=client.id, details={"via": "client"})
    return {"last_dose_on": None if last is None else min(last, today), "missed_dose_days": missed}


@client_dosing.connect
def _client_dosing(client: Client, *, user: User, **_: Any) -> dict[str, Any] | None:
    if not has_permission(user, Permission.CLINICAL_READ):
        return None
    return dosing_status(client)
