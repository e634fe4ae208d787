# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Scored assessments: answers drawn item by item, scored by the instrument's own definition."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from clinic.demo.generator.context import Chunk, Context
from clinic.demo.generator.sites import SiteStaff


def answers_for(ctx: Context, code: str, level: str | None = None) -> dict[str, Any]:
    """Answers to every item; lower answers are commoner (a triangular pick towards the first values)."""
    rng = ctx.rng
    instrument = ctx.instruments[code]
    answers: dict[str, Any] = {}
    for item in instrument.items:
        if item.type == "boolean":
            answers[item.key] = rng.random() < (0.75 if code == "DSM5-OUD" else 0.4)
        else:
            allowed = item.allowed or (0,)
            answers[item.key] = allowed[int(rng.triangular(0, len(allowed), 0))]
    if code == "ASAM":
        answers["edition"] = "3"
        answers["level_of_care"] = level
    return answers


def withdrawal_answers(ctx: Context, rng: random.Random, low: int, high: int) -> dict[str, Any]:
    """COWS answers of someone in withdrawal: a total from ``low`` to ``high``, as before an induction."""
    instrument = ctx.instruments["COWS"]
    while True:
        answers = {item.key: rng.choice(item.allowed or (0,)) for item in instrument.items}
        total = instrument.score(answers).total
        if total is not None and low <= total <= high:
            return answers


def add_assessment(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    clinician_id: int,
    code: str,
    at: datetime,
    answers: dict[str, Any],
    signed: bool,
) -> int:
    """One assessment scored from its answers, signed half an hour after it was given; returns its id."""
    score = ctx.instruments[code].score(answers)
    assessment_id = ctx.ids.take("assessments")
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
    return assessment_id
