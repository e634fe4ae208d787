# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Episodes of care, and the assessments that open them."""

from __future__ import annotations

from datetime import date, timedelta

from clinic.demo.generator.assessments import add_assessment, answers_for
from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.dosing import add_dosing
from clinic.demo.generator.medications import NALTREXONE, add_medication
from clinic.demo.generator.overdose import FATAL_OVERDOSE_PER_CLIENTS, FATAL_OVERDOSE_SHARE, add_overdose_prevention
from clinic.demo.generator.people import REFERRAL_SOURCES
from clinic.demo.generator.plans import add_plan, add_screens
from clinic.demo.generator.scheduling import book_care_appointments
from clinic.demo.generator.sites import SiteStaff

#: TEDS reasons 1..7 with their weights among discharges.
DISCHARGE_REASONS = ((1, 24), (2, 42), (3, 8), (4, 10), (5, 5), (6, 2), (7, 9))
TEDS_DEATH = 6


def add_episode(
    ctx: Context, chunk: Chunk, site: SiteStaff, client: Row, admitted_on: date, clinician_id: int
) -> date | None:
    """An episode from ``admitted_on`` with everything in it; returns its discharge day (None: open).

    After a death (TEDS reason 6) ``client["_deceased"]`` is set: there is no readmission.
    """
    rng = ctx.rng
    # Length of stay: a third leave early, the rest stay months to years.
    stay = int(rng.expovariate(1 / 40)) if rng.random() < 0.35 else int(rng.expovariate(1 / 320))
    discharged_on: date | None = admitted_on + timedelta(days=stay)
    if discharged_on >= ctx.today:  # type: ignore[operator]
        discharged_on = None
    reason = weighted(rng, DISCHARGE_REASONS) if discharged_on else None
    levels = (("1-OTP", 70), ("1", 15), ("2.1", 15)) if site.spec.is_otp else (("1", 55), ("2.1", 35), ("2.5", 10))
    level = weighted(rng, levels)
    episode_id = ctx.ids.take("episodes")
    asam_id = _assessments(ctx, chunk, site, client["id"], clinician_id, admitted_on, discharged_on, level)
    admitted_at = ctx.instant(admitted_on, 10, 0, site)
    episode = ctx.add(
        chunk,
        "episodes",
        {
            "id": episode_id,
            "client_id": client["id"],
            "site_id": site.site_id,
            "admitted_on": admitted_on,
            "level_of_care": level,
            "asam_edition": "3",
            "referral_source": rng.choice(REFERRAL_SOURCES),
            "assessment_id": asam_id,
            "discharged_on": discharged_on,
            "discharge_reason_code": reason,
            "discharge_note": None,
            "admitted_by_id": clinician_id,
            "discharged_by_id": clinician_id if discharged_on else None,
            "created_at": admitted_at,
            "updated_at": admitted_at,
        },
    )
    client["status"] = "active" if discharged_on is None else "discharged"
    client["_deceased"] = reason == TEDS_DEATH
    last_day = discharged_on or ctx.today
    plan_id = add_plan(ctx, chunk, site, client, episode_id, admitted_on, discharged_on, clinician_id)
    order = add_medication(ctx, chunk, site, client["id"], plan_id, admitted_on, discharged_on, clinician_id)
    medication = order.name if order is not None else None
    add_screens(
        ctx,
        chunk,
        site,
        client["id"],
        plan_id,
        admitted_on,
        last_day,
        clinician_id,
        medication,
        with_cm=client["_with_cm"],
        opioid_free_until=order.start_on if order is not None and order.name in NALTREXONE else None,
    )
    if ctx.with_appointments:
        book_care_appointments(ctx, chunk, site, client, clinician_id, admitted_on, discharged_on, medication)
    # A death is sometimes a fatal overdose, reported and confirmed that day: nobody is dosed after it.
    fatal = reason == TEDS_DEATH and ctx.showcase(
        "fatal_overdose", first=1, rate=FATAL_OVERDOSE_SHARE, most=max(1, ctx.total // FATAL_OVERDOSE_PER_CLIENTS)
    )
    dosed_until = last_day - timedelta(days=1) if fatal else last_day
    add_dosing(ctx, chunk, site, client, episode_id, admitted_on, order, dosed_until, clinician_id)
    add_overdose_prevention(ctx, chunk, site, client, episode, order, clinician_id, fatal=fatal)
    return discharged_on


def _assessments(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    clinician_id: int,
    admitted_on: date,
    discharged_on: date | None,
    level: str,
) -> int:
    rng = ctx.rng
    plan: list[tuple[str, date]] = [(code, admitted_on) for code in ("DSM5-OUD", "COWS", "ASAM", "PHQ-9", "GAD-7")]
    if rng.random() < 0.4:
        plan.append(("DAST-10", admitted_on))
    last = discharged_on or ctx.today
    follow_up = admitted_on + timedelta(days=90)
    while follow_up < last:
        plan.append(("PHQ-9", follow_up))
        follow_up += timedelta(days=90)
    asam_id = 0
    for index, (code, day) in enumerate(plan):
        at = ctx.instant(day, 9, 0, site) + timedelta(minutes=5 * min(index, 11))
        answers = answers_for(ctx, code, level)
        signed = day < ctx.today or rng.random() < 0.5
        assessment_id = add_assessment(ctx, chunk, site, client_id, clinician_id, code, at, answers, signed)
        if code == "ASAM":
            asam_id = assessment_id
    return asam_id
