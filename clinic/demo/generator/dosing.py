# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""The OTP dosing record (docs/dosing.md): daily doses, take-homes and their reviews, naltrexone XR injections.

At an opioid treatment program, a client with a methadone or buprenorphine order is dosed every day
of the ``DOSING_HISTORY_DAYS`` before the reference day (bounded, so that a 100,000-client demo stays
quick to make; the reference day's own visits are left for the demo's users to record), at the dose in
force that day, from the site's lots, by the clinician on the dispensing rota. Stable clients past day
15 in treatment take doses home after a review of the 42 CFR 8.12(i)(2) criteria found them all met
(reviewed every 80 to 88 days, so one is always under 90 days old); the supply never passes the limit
for the day in treatment, the order's end or its next dose change. Some clients miss a day now and
then (never two in a row); a few have missed the last days and their clinician was alerted. Some
methadone clients take their dose in two observed parts; a few entries were voided and entered again.
Naltrexone XR injections, every 28 days, are recorded as doses.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from clinic.demo.generator.alerts import add_safety_alert
from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.medications import AGONISTS, Order
from clinic.demo.generator.sites import SiteStaff
from clinic.dosing.operations import CRITERIA, FREE_TEXT_CRITERION, PRODUCTS, initials
from clinic.plans.models import MedicationName

#: Days of dosing history: the days before the reference day (its own visits are left to record).
DOSING_HISTORY_DAYS = 90
#: Days between two reviews of the take-home criteria (always under DOSING_TAKE_HOME_REVIEW_VALID_DAYS).
REVIEW_EVERY_DAYS = (80, 89)
#: Daily doses taken home per visit, by how stable the client is: (days 15-30, day 31 on).
SUPPLIES = (((1, 6), 45), ((6, 6), 25), ((6, 13), 20), ((13, 27), 10))
LOT_PREFIXES = {"methadone": "MD", "buprenorphine": "BU", "buprenorphine_naloxone": "BN", "naltrexone_xr": "NX"}
VOID_REASON = "Recorded under the wrong lot number; entered again."


def lot_number(name: str, site_id: int, day: date) -> str:
    """The lot in use at the site that day: a new one every ten days or so."""
    return f"{LOT_PREFIXES[name]}{day:%y%m}-{site_id}{min((day.day - 1) // 10, 2) + 1}"


class _Dispenser:
    """Who is on the dispensing rota of a site on a day, and their initials as the record keeps them."""

    def __init__(self, site: SiteStaff) -> None:
        self.ids = site.clinician_ids
        names = site.clinician_names or tuple(f"Clinician {i + 1}" for i in range(len(self.ids)))
        self.initials = tuple(initials(name) for name in names)

    def on(self, day: date) -> tuple[int, str]:
        index = day.toordinal() % len(self.ids)
        return self.ids[index], self.initials[index]


def _dose_row(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    order: Order,
    kind: str,
    amount: Decimal,
    at: datetime,
    day: date,
    take_home_days: int = 0,
    *,
    split: bool = False,
) -> Row:
    strength, form = PRODUCTS[MedicationName(order.name)]
    covers = ctx.rules.naltrexone_xr_coverage_days if order.name == "naltrexone_xr" else 1
    rota = ctx.dispensers.get(site.site_id)
    if rota is None:
        rota = ctx.dispensers[site.site_id] = _Dispenser(site)
    dispenser_id, dispenser_initials = rota.on(day)
    return ctx.add(
        chunk,
        "doses",
        {
            "id": ctx.ids.take("doses"),
            "client_id": client_id,
            "site_id": site.site_id,
            "medication_id": order.id,
            "kind": kind,
            "amount_mg": amount,
            "take_home_days": take_home_days,
            "given_at": at,
            "given_on": day,
            "covered_from": day + timedelta(days=1) if take_home_days else day,
            # A naltrexone XR injection covers the weeks it lasts; any other entry its day or the days taken home.
            "covered_until": day + timedelta(days=take_home_days or covers - 1),
            "is_split": split,
            "lot_number": lot_number(order.name, site.site_id, day),
            "substance": order.name,
            "strength": strength,
            "dosage_form": form,
            "note": None,
            "dispenser_id": dispenser_id,
            "dispenser_initials": dispenser_initials,
            "voided_at": None,
            "voided_by_id": None,
            "void_reason": None,
            "created_at": at,
            "updated_at": at,
        },
    )


def _reviews(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    episode_id: int,
    admitted_on: date,
    first: date,
    last: date,
    clinician_id: int,
) -> list[tuple[date, bool]]:
    """The take-home reviews from day 15 in treatment to ``last``, the last one sometimes with a criterion
    not met; returns (day, all met) of those recorded (the ones from 90 days before ``first`` on)."""
    rng = ctx.record_rng
    valid = min(ctx.rules.take_home_review_valid_days, REVIEW_EVERY_DAYS[1] + 1)
    days = []
    day = admitted_on + timedelta(days=15 + rng.randrange(0, 10))
    while day <= last:
        days.append(day)
        day += timedelta(days=rng.randrange(REVIEW_EVERY_DAYS[0], valid))
    days = [d for d in days if d >= first - timedelta(days=valid)]
    stopped = bool(days) and ctx.showcase("take_homes_stopped", first=1, rate=0.05)
    made = []
    for index, day in enumerate(days):
        all_met = not (stopped and index == len(days) - 1)
        criteria: dict[str, object] = dict.fromkeys(CRITERIA, True)
        criteria[FREE_TEXT_CRITERION] = True
        note = "Criteria reviewed with the client: take-homes continue."
        if not all_met:
            criteria["regular_attendance"] = False
            note = "Missed pick-ups and a late screen: take-homes stop until the next review."
        at = ctx.instant(day, 14, rng.randrange(0, 60), site)
        ctx.add(
            chunk,
            "take_home_reviews",
            {
                "id": ctx.ids.take("take_home_reviews"),
                "client_id": client_id,
                "site_id": site.site_id,
                "episode_id": episode_id,
                "criteria": criteria,
                "note": note,
                "decided_by_id": clinician_id,
                "decided_at": at,
            },
        )
        made.append((day, all_met))
    return made


class _Client:
    """One client's dosing record under one order, built day by day."""

    def __init__(
        self, ctx: Context, chunk: Chunk, site: SiteStaff, client: Row, order: Order, admitted_on: date
    ) -> None:
        self.ctx, self.chunk, self.site, self.client, self.order = ctx, chunk, site, client, order
        self.admitted_on = admitted_on
        self.reviews: list[tuple[date, bool]] = []
        self.supply: tuple[int, int] = (0, 0)
        self.split = False
        #: The last day the record may dose through a take-home (None: open-ended).
        self.cap: date | None = None

    def row(
        self, kind: str, amount: Decimal, at: datetime, day: date, take_home_days: int = 0, *, split: bool = False
    ) -> Row:
        return _dose_row(
            self.ctx,
            self.chunk,
            self.site,
            self.client["id"],
            self.order,
            kind,
            amount,
            at,
            day,
            take_home_days,
            split=split,
        )

    def observed(self, day: date, dose: Decimal, at: datetime) -> datetime:
        """The day's observed dose (in two parts for a split dose); returns when it was recorded."""
        ctx = self.ctx
        if self.split:
            half = (dose / 2).quantize(Decimal("0.001"))
            self.row("observed", half, at, day, split=True)
            later = ctx.instant(day, 15, ctx.record_rng.randrange(0, 60), self.site)
            self.row("observed", dose - half, later, day, split=True)
            return at
        if ctx.showcase("voided_dose", first=2, rate=0.0003):
            wrong = self.row("observed", dose, at, day)
            wrong["lot_number"] = lot_number(self.order.name, self.site.site_id, day - timedelta(days=30))
            wrong["voided_at"] = wrong["updated_at"] = at + timedelta(minutes=10)
            wrong["voided_by_id"] = wrong["dispenser_id"]
            wrong["void_reason"] = VOID_REASON
            at += timedelta(minutes=11)
        self.row("observed", dose, at, day)
        return at

    def take_home_days(self, day: date) -> int:
        """Daily doses to take home after the visit of ``day``: none without a review that found every
        criterion met in the last 90 days, within the limit for the day in treatment, never past the
        order's next dose change or its end."""
        if self.split:
            return 0
        latest = None
        for review in self.reviews:
            if review[0] < day:
                latest = review
        if latest is None or not latest[1] or (day - latest[0]).days >= self.ctx.rules.take_home_review_valid_days:
            return 0
        # Take-homes from the second tier of the limits (day 15), the longer supplies from the last (day 31).
        in_treatment = (day - self.admitted_on).days
        limits = self.ctx.rules.take_home_limits
        if in_treatment < limits[min(1, len(limits) - 1)][0]:
            return 0
        wanted = self.supply[0] if in_treatment < limits[-1][0] else self.supply[1]
        days = min(wanted, self.ctx.rules.max_take_home_days(in_treatment))
        change = self.order.next_change_after(day)
        if change is not None:
            days = min(days, (change - day).days - 1)
        if self.cap is not None:
            days = min(days, (self.cap - day).days)
        return max(days, 0)


def add_dosing(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client: Row,
    episode_id: int,
    admitted_on: date,
    order: Order | None,
    last_day: date,
    clinician_id: int,
) -> None:
    """The client's dosing record under ``order`` up to ``last_day`` (the order's last day at the latest)."""
    if not ctx.with_dosing or not site.spec.is_otp or order is None:
        return
    if order.name == "naltrexone_xr":
        _injections(ctx, chunk, site, client["id"], order, last_day)
        return
    # The record runs through the reference day's eve: today's visits are for the demo's users to record.
    yesterday = ctx.today - timedelta(days=1)
    first = max(order.start_on, ctx.today - timedelta(days=DOSING_HISTORY_DAYS))
    last = min(order.end_on or yesterday, last_day, yesterday)
    if order.name not in AGONISTS or first > last:
        return
    rng = ctx.record_rng
    record = _Client(ctx, chunk, site, client, order, admitted_on)
    # Most clients months into treatment are stable enough for take-homes; fewer new ones are.
    stable = rng.random() < (0.8 if (first - admitted_on).days >= 60 else 0.45)
    miss_rate = weighted(rng, ((0.0, 30), (0.02, 40), (0.06, 20), (0.12, 10))) * (1 if stable else 1.5)
    record.supply = weighted(rng, SUPPLIES)
    # A current run of missed days: the last dose a few days ago, the clinician alerted.
    threshold = ctx.rules.missed_dose_alert_days
    streak = (
        order.end_on is None
        and last == yesterday
        and (last - first).days > threshold + 10
        and ctx.showcase("missed_streak", first=2, rate=0.04)
    )
    if streak:
        last = ctx.today - timedelta(days=threshold + 1 + rng.randrange(0, 5))
    if streak or last < yesterday:
        record.cap = last
    record.split = order.name == "methadone" and not stable and ctx.showcase("split_dose", first=1, rate=0.03)
    if stable:
        record.reviews = _reviews(ctx, chunk, site, client["id"], episode_id, admitted_on, first, last, clinician_id)
    day = first
    missed_yesterday = True  # never miss the first day of the record
    last_covered: date | None = None
    while day <= last:
        if not missed_yesterday and day < last and rng.random() < miss_rate:
            missed_yesterday = True
            day += timedelta(days=1)
            continue
        missed_yesterday = False
        dose = order.dose_on(day)
        at = ctx.instant(day, 6, 0, site) + timedelta(minutes=rng.randrange(0, 300))
        if dose is None:
            break
        at = record.observed(day, dose, at)
        take_home = record.take_home_days(day)
        if take_home:
            record.row("take_home", dose, at + timedelta(minutes=2), day, take_home)
        last_covered = day + timedelta(days=take_home)
        day += timedelta(days=take_home + 1)
    if streak and last_covered is not None:
        _missed_dose_alert(ctx, chunk, site, client, order, last_covered + timedelta(days=1))


def _missed_dose_alert(
    ctx: Context, chunk: Chunk, site: SiteStaff, client: Row, order: Order, first_missed: date
) -> None:
    """The alert the hourly check raised once the run of missed days reached the threshold."""
    threshold = ctx.rules.missed_dose_alert_days
    raised_on = first_missed + timedelta(days=threshold)
    at = datetime.combine(raised_on, time(0, ctx.record_rng.randrange(1, 60)), tzinfo=ctx.zones[site.site_id])
    at = at.astimezone(ctx.now.tzinfo)
    acknowledged = not ctx.showcase("open_missed_dose_alert", first=2, rate=0.5)
    add_safety_alert(
        ctx,
        chunk,
        site,
        client,
        "missed_doses",
        f"Missed doses: {threshold} days in a row",
        f"A client on daily dosing at {site.spec.name} has had no observed dose and no take-home since "
        f"{first_missed.isoformat()} ({threshold} days). Open the client's doses to follow up.",
        "medication",
        order.id,
        f"missed_doses:{client['id']}:{first_missed.isoformat()}",
        at,
        acknowledged_after=timedelta(hours=ctx.record_rng.randrange(1, 8)) if acknowledged else None,
    )


def _injections(ctx: Context, chunk: Chunk, site: SiteStaff, client_id: int, order: Order, last_day: date) -> None:
    """Naltrexone XR injections from the order's start, every 28 days (sometimes a few days late)."""
    rng = ctx.record_rng
    last = min(order.end_on or ctx.today, last_day, ctx.today - timedelta(days=1))
    day = order.start_on
    given = None
    while day <= last:
        dose = order.dose_on(day)
        at = ctx.instant(day, rng.randrange(9, 16), rng.randrange(0, 60), site)
        if dose is None:
            break
        _dose_row(ctx, chunk, site, client_id, order, "observed", dose, at, day)
        given = day
        day += timedelta(days=ctx.rules.naltrexone_xr_coverage_days + weighted(rng, ((0, 80), (1, 8), (3, 8), (6, 4))))
    if given is not None:
        order.row["last_injection_on"] = given
