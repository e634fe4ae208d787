# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Episodes of care, and the assessments that open them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.people import REFERRAL_SOURCES
from clinic.demo.generator.plans import add_medication, add_plan, add_screens
from clinic.demo.generator.scheduling import book_care_appointments
from clinic.demo.generator.sites import SiteStaff

#: TEDS reasons 1..7 with their weights among discharges.
DISCHARGE_REASONS = ((1, 24), (2, 42), (3, 8), (4, 10), (5, 5), (6, 2), (7, 9))


def add_episode(
    ctx: Context, chunk: Chunk, site: SiteStaff, client: Row, admitted_on: date, clinician_id: int
) -> date | None:
    """An episode from ``admitted_on`` with everything in it; returns its discharge day (None: open)."""
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
    ctx.add(
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
    last_day = discharged_on or ctx.today
    plan_id = add_plan(ctx, chunk, site, client, episode_id, admitted_on, discharged_on, clinician_id)
    medication = add_medication(ctx, chunk, site, client["id"], plan_id, admitted_on, discharged_on, clinician_id)
    add_screens(
        ctx, chunk, site, client["id"], plan_id, admitted_on, last_day, clinician_id, medication,
        with_cm=client["_with_cm"],
    )
    if ctx.with_appointments:
        book_care_appointments(ctx, chunk, site, client, clinician_id, admitted_on, discharged_on, medication)
    return discharged_on


def _answers(ctx: Context, code: str, level: str | None = None) -> dict[str, Any]:
    rng = ctx.rng
    instrument = ctx.instruments[code]
    answers: dict[str, Any] = {}
    for item in instrument.items:
        if item.type == "boolean":
            answers[item.key] = rng.random() < (0.75 if code == "DSM5-OUD" else 0.4)
        else:
            allowed = item.allowed or (0,)
            # Lower answers are commoner: a triangular pick towards the first values.
            answers[item.key] = allowed[int(rng.triangular(0, len(allowed), 0))]
    if code == "ASAM":
        answers["edition"] = "3"
        answers["level_of_care"] = level
    return answers


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
    plan: list[tuple[str, date]] = [
        (code, admitted_on) for code in ("DSM5-OUD", "COWS", "ASAM", "PHQ-9", "GAD-7")
    ]
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
        answers = _answers(ctx, code, level)
        score = ctx.instruments[code].score(answers)
        signed = day < ctx.today or rng.random() < 0.5
        assessment_id = ctx.ids.take("assessments")
        if code == "ASAM":
            asam_id = assessment_id
        ctx.add(
            chunk,
            "assessments",
            {
                "id": assessment_id,
                "client_id": client_id,
                "site_id": site.site_id,
                "instrument": code,
                "version": ctx.instruments[code].version,
                "answers": answers,
                "total_score": score.total,
                "severity": score.severity,
                "flags": score.flags,
                "status": "signed" if signed else "draft",
                "administered_at": at,
                "clinician_id": clinician_id,
                "signed_at": at + timedelta(minutes=30) if signed else None,
                "signed_by_id": clinician_id if signed else None,
                "revision": 1,
                "created_at": at,
                "updated_at": at,
            },
        )
    return asam_id
