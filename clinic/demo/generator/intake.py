# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""A client's way in: the intake calls, the client record and consents, then each episode of care."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from clinic.clients.names import search_key
from clinic.demo.generator.care import add_episode
from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.people import FIRST_NAMES, LAST_NAMES, REFERRAL_SOURCES, local_phone
from clinic.demo.generator.scheduling import book_appointment
from clinic.demo.generator.sites import SiteStaff

#: Years of history before the reference day.
HISTORY_DAYS = 3 * 365
SUBSTANCES = ("fentanyl", "heroin", "oxycodone", "methamphetamine", "cocaine", "alcohol", "benzodiazepines")
RISK_FLAGS = ("recent_overdose", "injection_use", "pregnant", "suicidal_ideation", "withdrawal_now")
UNCONVERTED_OUTCOMES = ("waitlisted", "referred_out", "info_only", "callback_requested", "no_answer")


def add_client(ctx: Context, chunk: Chunk) -> None:
    """One client at a weighted site, from the first call through every episode of care."""
    rng = ctx.rng
    site: SiteStaff = weighted(rng, ctx.site_pairs)
    client_id = ctx.ids.take("clients")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    call_day = ctx.today - timedelta(days=rng.randrange(3, HISTORY_DAYS))
    clinician_id = rng.choice(site.clinician_ids)
    intake_id = rng.choice(site.intake_ids)
    created_at = ctx.instant(call_day, rng.randrange(8, 18), rng.randrange(60), site)
    phone = local_phone(rng, site) if rng.random() < 0.9 else None
    email = None
    if rng.random() < 0.45:
        local = search_key(f"{first}.{last}").replace(" ", "").replace("'", "")
        email = f"{local}{rng.randrange(1, 100)}@example.org"
    client = ctx.add(
        chunk,
        "clients",
        {
            "id": client_id,
            "site_id": site.site_id,
            "mrn": ctx.mrns.take(),
            "first_name": first,
            "last_name": last,
            "search_first": search_key(first),
            "search_last": search_key(last),
            "date_of_birth": date(rng.randrange(1958, 2005), rng.randrange(1, 13), rng.randrange(1, 29)),
            "sex_at_birth": weighted(rng, (("male", 60), ("female", 38), ("intersex", 1), ("unknown", 1))),
            "phone": phone,
            "email": email,
            "preferred_language": "es" if first in {"José", "María", "Luis", "Sofía", "Andrés", "Lucía"} else "en",
            "primary_clinician_id": clinician_id,
            "status": "prospective",
            "created_by_id": intake_id,
            "created_at": created_at,
            "updated_at": created_at,
        },
    )
    _calls(ctx, chunk, site, client, call_day, created_at, intake_id)
    _consents(ctx, chunk, site, client, call_day, clinician_id)
    intake_day = call_day + timedelta(days=rng.randrange(1, 10))
    admitted = rng.random() < 0.85 and intake_day < ctx.today
    if ctx.with_appointments:
        status = "completed" if admitted else weighted(rng, (("no_show", 60), ("cancelled_by_client", 40)))
        if intake_day >= ctx.today:
            status = "scheduled"
        book_appointment(ctx, chunk, site, client_id, clinician_id, "intake_assessment", intake_day, status)
    if not admitted:
        return
    start = intake_day + timedelta(days=rng.randrange(0, 8))
    start = min(start, ctx.today)
    while start <= ctx.today:
        end = add_episode(ctx, chunk, site, client, start, clinician_id)
        if end is None:
            break
        readmitted = rng.random() <= 0.2
        if not readmitted or client["_deceased"]:
            break  # nobody is readmitted after a death (TEDS reason 6)
        start = end + timedelta(days=rng.randrange(30, 240))


def _calls(
    ctx: Context, chunk: Chunk, site: SiteStaff, client: Row, call_day: date, at: datetime, intake_id: int
) -> None:
    rng = ctx.rng
    substances = sorted(rng.sample(SUBSTANCES, rng.choice((1, 1, 2, 3))))
    if "fentanyl" not in substances and rng.random() < 0.6:
        substances = sorted([*substances, "fentanyl"])
    # Callers who never became clients: about one for every three who did.
    for _ in range(1 if rng.random() < 0.35 else 0):
        other_day = ctx.today - timedelta(days=rng.randrange(1, HISTORY_DAYS))
        _call(ctx, chunk, site, other_day, intake_id, client_id=None, outcome=rng.choice(UNCONVERTED_OUTCOMES))
    _call(
        ctx,
        chunk,
        site,
        call_day,
        intake_id,
        client_id=client["id"],
        outcome="assessment_scheduled",
        at=at,
        substances=substances,
        caller=f"{client['first_name']} {client['last_name']}",
        phone=client["phone"],
    )


#: A follow-up due more than this many days before the demo's today was worked at the time.
FOLLOW_UPS_WORKED_AFTER_DAYS = 21


def _call(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    day: date,
    intake_id: int,
    *,
    client_id: int | None,
    outcome: str,
    at: datetime | None = None,
    substances: list[str] | None = None,
    caller: str | None = None,
    phone: str | None = None,
) -> None:
    rng = ctx.rng
    at = at or ctx.instant(day, rng.randrange(8, 18), rng.randrange(60), site)
    flags = sorted(rng.sample(RISK_FLAGS, 1)) if rng.random() < 0.3 else []
    relation = "self" if rng.random() < 0.7 else rng.choice(("family", "friend", "provider", "court", "other"))
    follow_up = None
    if outcome in {"callback_requested", "waitlisted"}:
        follow_up = at + timedelta(days=rng.randrange(1, 8))
        if follow_up < ctx.now - timedelta(days=FOLLOW_UPS_WORKED_AFTER_DAYS):
            follow_up = None  # worked long ago: the queue holds only the recent ones, as a clinic's does
    ctx.add(
        chunk,
        "intake_calls",
        {
            "id": ctx.ids.take("intake_calls"),
            "site_id": site.site_id,
            "direction": "inbound" if rng.random() < 0.85 else "outbound",
            "occurred_at": at,
            "caller_name": caller or f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "caller_relation": relation,
            "callback_phone": phone or local_phone(rng, site),
            "referral_source": rng.choice(REFERRAL_SOURCES),
            "reason": "Seeking treatment for opioid use" if relation == "self" else "Calling about a relative",
            "substances": substances or sorted(rng.sample(SUBSTANCES, 1)),
            "risk_flags": flags,
            "has_risk_flags": bool(flags),
            "outcome": outcome,
            "follow_up_at": follow_up,
            "notes": None,
            "client_id": client_id,
            "converted_at": at + timedelta(minutes=15) if client_id else None,
            "created_by_id": intake_id,
            "created_at": at,
            "updated_at": at,
        },
    )


def _consents(ctx: Context, chunk: Chunk, site: SiteStaff, client: Row, day: date, staff_id: int) -> None:
    rng = ctx.rng
    channels = []
    if client["phone"] and rng.random() < 0.85:
        channels.append("sms")
    if client["email"] and rng.random() < 0.7:
        channels.append("email")
    client["_channels"] = channels
    at = client["created_at"]
    for channel in channels:
        ctx.add(
            chunk,
            "consents",
            {
                "id": ctx.ids.take("consents"),
                "client_id": client["id"],
                "site_id": site.site_id,
                "kind": "communication",
                "channel": channel,
                "granted_on": day,
                "evidence": "signed intake form scanned to chart",
                "revocation_acknowledged": False,
                "created_by_id": staff_id,
                "created_at": at,
                "updated_at": at,
            },
        )
    if rng.random() < 0.12:
        ctx.add(
            chunk,
            "consents",
            {
                "id": ctx.ids.take("consents"),
                "client_id": client["id"],
                "site_id": site.site_id,
                "kind": "disclosure",
                "patient_name": f"{client['first_name']} {client['last_name']}",
                "recipient": rng.choice(("County Drug Court", "Dr. A. Primary, MD", "Community Health Plan")),
                "purpose": "coordination of care",
                "information_description": "attendance, medication and drug screen results",
                "disclosing_party": site.spec.name,
                "expires_on": day + timedelta(days=365),
                "signed_on": day,
                "signature_name": f"{client['first_name']} {client['last_name']}",
                "revocation_acknowledged": True,
                "created_by_id": staff_id,
                "created_at": at,
                "updated_at": at,
            },
        )
