# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Treatment plans with their signatures and reviews, drug screens and contingency management."""

from __future__ import annotations

from datetime import date, timedelta

from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.sites import SiteStaff

PANEL = ("fentanyl", "opiates", "cocaine", "methamphetamine")
#: Days of opioid-negative screens before a naltrexone start (the naltrexone washout).
WASHOUT_DAYS = 7


def _node_id(ctx: Context, prefix: str) -> str:
    return f"{prefix}{ctx.rng.getrandbits(32):08x}"


def _plan_content(ctx: Context, clinician_id: int, admitted_on: date, with_cm: bool) -> list[Row]:
    rng = ctx.rng
    interventions = [
        {
            "id": _node_id(ctx, "i"),
            "kind": "mat",
            "description": "Medication for opioid use disorder",
            "frequency": "daily",
            "responsible_user_id": clinician_id,
        },
        {
            "id": _node_id(ctx, "i"),
            "kind": "cbt",
            "description": "Individual counselling (CBT)",
            "frequency": "weekly",
            "responsible_user_id": clinician_id,
        },
    ]
    if with_cm:
        interventions.append(
            {
                "id": _node_id(ctx, "i"),
                "kind": "contingency_management",
                "description": "Vouchers for negative screens",
                "frequency": "weekly",
                "responsible_user_id": clinician_id,
            }
        )
    problems = [
        {
            "id": _node_id(ctx, "p"),
            "description": "Opioid use disorder, severe",
            "goals": [
                {
                    "id": _node_id(ctx, "g"),
                    "description": "Stop using illicit opioids",
                    "client_words": rng.choice(("I want my kids back", "I want to keep my job", "Stay alive")),
                    "objectives": [
                        {
                            "id": _node_id(ctx, "o"),
                            "description": "Negative fentanyl screens for 8 consecutive weeks",
                            "target_date": (admitted_on + timedelta(days=90)).isoformat(),
                            "status": rng.choice(("not_started", "in_progress", "achieved")),
                            "interventions": interventions,
                        }
                    ],
                }
            ],
        }
    ]
    if rng.random() < 0.4:
        problems.append(
            {
                "id": _node_id(ctx, "p"),
                "description": "Depressed mood",
                "goals": [
                    {
                        "id": _node_id(ctx, "g"),
                        "description": "Feel better day to day",
                        "client_words": None,
                        "objectives": [
                            {
                                "id": _node_id(ctx, "o"),
                                "description": "PHQ-9 below 10",
                                "target_date": (admitted_on + timedelta(days=120)).isoformat(),
                                "status": "in_progress",
                                "interventions": [
                                    {
                                        "id": _node_id(ctx, "i"),
                                        "kind": "peer_support",
                                        "description": "Weekly peer recovery coaching",
                                        "frequency": "weekly",
                                        "responsible_user_id": None,
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    return problems


def add_plan(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client: Row,
    episode_id: int,
    admitted_on: date,
    discharged_on: date | None,
    clinician_id: int,
) -> int:
    """The episode's plan with its first revision, signatures and reviews; returns its id."""
    rng = ctx.rng
    plan_id = ctx.ids.take("plans")
    created_on = min(admitted_on + timedelta(days=rng.randrange(0, 8)), ctx.today)
    created_at = ctx.instant(created_on, 11, 0, site)
    with_cm = rng.random() < 0.25
    client["_with_cm"] = with_cm
    content = _plan_content(ctx, clinician_id, admitted_on, with_cm)
    # Signed by clinician and client (and the supervisor where the site asks) within days.
    signed = created_on < ctx.today
    signers = [("clinician", clinician_id, "")]
    signers.append(("client", clinician_id, f"{client['first_name']} {client['last_name']}"))
    if site.spec.requires_supervisor_signature:
        signers.append(("supervisor", site.supervisor_id, ""))
    if signed:
        for role, user_id, name in signers:
            ctx.add(
                chunk,
                "plan_signatures",
                {
                    "id": ctx.ids.take("plan_signatures"),
                    "plan_id": plan_id,
                    "revision": 1,
                    "role": role,
                    "user_id": user_id,
                    "signer_name": name or f"Clinician {user_id}",
                    "signed_at": created_at + timedelta(hours=1),
                },
            )
    # Reviews: the first after 30 days, then every 90, while the episode is open.
    last = discharged_on or ctx.today
    due = created_on + timedelta(days=30)
    reviews: list[tuple[date, date]] = []
    while due <= last:
        late = rng.random() < 0.2
        shift = rng.randrange(1, 20) if late else -rng.randrange(0, 5)
        reviewed_on = due + timedelta(days=shift)
        if reviewed_on > ctx.today or (discharged_on is None and rng.random() < 0.03):
            break  # not reviewed yet: overdue
        reviews.append((due, reviewed_on))
        due = reviewed_on + timedelta(days=90)
    status = "draft" if not signed else ("closed" if discharged_on else "active")
    for index, (due_on, reviewed_on) in enumerate(reviews):
        closing = discharged_on is not None and index == len(reviews) - 1
        ctx.add(
            chunk,
            "plan_reviews",
            {
                "id": ctx.ids.take("plan_reviews"),
                "plan_id": plan_id,
                "reviewed_on": reviewed_on,
                "note": "Reviewed with the client." if not closing else "Closed at discharge.",
                "outcome": "close" if closing and signed else "continue",
                "was_overdue": reviewed_on > due_on,
                "due_on": due_on,
                "reviewer_id": clinician_id,
                "created_at": ctx.instant(reviewed_on, 15, 0, site),
            },
        )
    ctx.add(
        chunk,
        "plan_revisions",
        {
            "id": ctx.ids.take("plan_revisions"),
            "plan_id": plan_id,
            "number": 1,
            "content": content,
            "status": "draft",
            "review_interval_days": None,
            "episode_id": episode_id,
            "created_by_id": clinician_id,
            "created_at": created_at,
            "reason": "created",
        },
    )
    closed = status == "closed"
    ctx.add(
        chunk,
        "plans",
        {
            "id": plan_id,
            "client_id": client["id"],
            "site_id": site.site_id,
            "episode_id": episode_id,
            "status": status,
            "revision": 1,
            "active_revision": 1 if signed else None,
            "content": content,
            "review_interval_days": None,
            "next_review_on": None if closed else due,
            "last_reviewed_on": reviews[-1][1] if reviews else None,
            "created_by_id": clinician_id,
            "updated_by_id": clinician_id,
            "version_id": 1 + (len(signers) if signed else 0) + len(reviews),
            "created_at": created_at,
            "updated_at": created_at,
        },
    )
    return plan_id


def add_screens(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    plan_id: int,
    admitted_on: date,
    last_day: date,
    clinician_id: int,
    medication: str | None,
    *,
    with_cm: bool,
    opioid_free_until: date | None = None,
) -> None:
    """Weekly screens for the first month, then monthly; positivity falls with time in treatment.

    ``opioid_free_until``: a naltrexone start, before which a week of screens is opioid-negative (the washout).
    """
    rng = ctx.rng
    day = admitted_on
    negatives = 0
    count = 0
    prize_days: list[date] = []
    program: tuple[int, str] | None = None
    if with_cm:
        program = _cm_program(ctx, chunk, site, client_id, plan_id, admitted_on, last_day, clinician_id)
    # Clients on an agonist are less often positive for fentanyl.
    base = 0.35 if medication in {"methadone", "buprenorphine", "buprenorphine_naloxone"} else 0.55
    while day <= last_day and count < 10:
        weeks = (day - admitted_on).days / 7
        count += 1
        at = ctx.instant(day, 8, rng.randrange(0, 60), site)
        missed = rng.random() < 0.08
        screen_id = ctx.ids.take("drug_screens")
        ctx.add(
            chunk,
            "drug_screens",
            {
                "id": screen_id,
                "client_id": client_id,
                "site_id": site.site_id,
                "collected_at": at,
                "observed": rng.random() < 0.3,
                "missed": missed,
                "recorded_by_id": clinician_id,
                "created_at": at,
                "updated_at": at,
            },
        )
        if not missed:
            p_opioid = max(0.08, base * (0.93**weeks))
            results = {
                "fentanyl": "positive" if rng.random() < p_opioid else "negative",
                "opiates": "positive" if rng.random() < p_opioid * 0.5 else "negative",
                "cocaine": "positive" if rng.random() < 0.12 else "negative",
                "methamphetamine": "positive" if rng.random() < 0.1 else "negative",
            }
            if medication in {"buprenorphine", "buprenorphine_naloxone"}:
                results["buprenorphine"] = "positive" if rng.random() < 0.9 else "negative"
            if rng.random() < 0.01:
                results["fentanyl"] = "invalid"
            negatives = negatives + 1 if results["fentanyl"] == "negative" else 0
            if opioid_free_until is not None and 0 <= (opioid_free_until - day).days < WASHOUT_DAYS:
                # Opioid-free before naltrexone (the prizes drawn stay as they were: fewer than earned).
                results["fentanyl"] = results["opiates"] = "negative"
            for substance in sorted(results):
                ctx.add(
                    chunk,
                    "drug_screen_results",
                    {
                        "id": ctx.ids.take("drug_screen_results"),
                        "screen_id": screen_id,
                        "substance": substance,
                        "result": results[substance],
                    },
                )
            if program is not None and program[1] == "prize_draw" and negatives:
                prize_days.append(day)
        day += timedelta(days=7 if weeks < 4 else 28)
    program_id = program[0] if program is not None else 0
    for prize_day in prize_days[:10] if program_id else ():
        ctx.add(
            chunk,
            "cm_prizes",
            {
                "id": ctx.ids.take("cm_prizes"),
                "program_id": program_id,
                "prize_cents": weighted(ctx.rng, ((0, 50), (100, 42), (2000, 7), (10000, 1))),
                "drawn_at": ctx.instant(prize_day, 9, 30, site),
                "recorded_by_id": clinician_id,
            },
        )


def _cm_program(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    plan_id: int,
    starts_on: date,
    last_day: date,
    clinician_id: int,
) -> tuple[int, str]:
    program_id = ctx.ids.take("cm_programs")
    schedule = "escalating_voucher" if ctx.rng.random() < 0.6 else "prize_draw"
    params = (
        {"start_cents": 250, "increment_cents": 125, "bonus_cents": 1000, "bonus_every": 3}
        if schedule == "escalating_voucher"
        else {"max_draws": 8}
    )
    at = ctx.instant(starts_on, 14, 0, site)
    ctx.add(
        chunk,
        "cm_programs",
        {
            "id": program_id,
            "plan_id": plan_id,
            "client_id": client_id,
            "site_id": site.site_id,
            "target_substances": ["fentanyl"],
            "schedule": schedule,
            "params": params,
            "annual_cap_cents": 75_000,
            "starts_on": starts_on,
            "ends_on": last_day if last_day < ctx.today else None,
            "created_by_id": clinician_id,
            "created_at": at,
            "updated_at": at,
        },
    )
    return program_id, schedule
