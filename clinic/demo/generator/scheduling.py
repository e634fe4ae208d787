# Row builders take the client's context (chunk, site, client, days) positionally, in one order throughout.
# ruff: noqa: PLR0917
"""Appointments without double booking, their reminders and the notification log of those sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from clinic.demo.generator.context import Chunk, Context, Row, weighted
from clinic.demo.generator.sites import SiteStaff

#: Open episodes have appointments booked this far ahead.
BOOKED_AHEAD_DAYS = 28
#: Reminders exist for appointments from this many days before the reference day onwards.
REMINDER_HISTORY_DAYS = 60
#: Appointment slots per clinician and working day (hourly from 9:00 local).
SLOTS_PER_DAY = 8
FIRST_SLOT_HOUR = 9
#: Outcomes of past appointments: kept about 74%, no-show about 15%.
PAST_STATUSES = (("completed", 72), ("no_show", 15), ("cancelled_by_client", 8), ("cancelled_by_clinic", 5))
DURATIONS = {
    "intake_assessment": 60,
    "individual_therapy": 50,
    "group_therapy": 60,
    "medication_visit": 20,
    "peer_support": 45,
    "drug_screen": 15,
    "plan_review": 30,
}


def reserve_slots(ctx: Context, clinician_id: int, starts_at: datetime, ends_at: datetime) -> None:
    """Mark the slots an existing booking of the clinician overlaps, so no demo booking clashes with it."""
    zone = next((ctx.zones[s.site_id] for s in ctx.sites if clinician_id in s.clinician_ids), UTC)
    booked = ctx.booked.setdefault(clinician_id, set())
    local_start, local_end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    hour = local_start.replace(minute=0, second=0, microsecond=0)
    while hour < local_end:
        slot = hour.hour - FIRST_SLOT_HOUR
        if 0 <= slot < SLOTS_PER_DAY:
            booked.add(hour.date().toordinal() * SLOTS_PER_DAY + slot)
        hour += timedelta(hours=1)


def _slot(ctx: Context, clinician_id: int, day: date) -> tuple[date, int]:
    """The first free slot of the clinician from ``day`` on (weekdays only), taken."""
    booked = ctx.booked.setdefault(clinician_id, set())
    start = ctx.rng.randrange(SLOTS_PER_DAY)
    while True:
        if day.weekday() < 5:
            ordinal = day.toordinal() * SLOTS_PER_DAY
            for offset in range(SLOTS_PER_DAY):
                slot = (start + offset) % SLOTS_PER_DAY
                if ordinal + slot not in booked:
                    booked.add(ordinal + slot)
                    return day, slot
        day += timedelta(days=1)


def book_appointment(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    clinician_id: int,
    kind: str,
    day: date,
    status: str | None = None,
    channels: list[str] | None = None,
) -> None:
    """One appointment in the clinician's first free slot from ``day``, with reminders on ``channels``."""
    rng = ctx.rng
    day, slot = _slot(ctx, clinician_id, day)
    starts_at = ctx.instant(day, FIRST_SLOT_HOUR + slot, 0, site)
    ends_at = starts_at + timedelta(minutes=DURATIONS[kind])
    if day >= ctx.today:
        status = "confirmed" if rng.random() < 0.3 else "scheduled"
    elif status is None or status in {"scheduled", "confirmed"}:
        status = weighted(rng, PAST_STATUSES)
    created_at = starts_at - timedelta(days=rng.randrange(3, 21))
    appointment_id = ctx.ids.take("appointments")
    ctx.add(
        chunk,
        "appointments",
        {
            "id": appointment_id,
            "site_id": site.site_id,
            "series_id": None,
            "kind": kind,
            "is_group": False,
            "clinician_id": clinician_id,
            "client_id": client_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "timezone": site.spec.timezone,
            "capacity": None,
            "location": "Room " + str(1 + slot % 6),
            "telehealth_url": None,
            "status": status,
            "confirmed_at": starts_at - timedelta(days=1) if status == "confirmed" else None,
            "checked_in_at": starts_at - timedelta(minutes=5) if status in {"checked_in", "completed"} else None,
            "completed_at": ends_at if status == "completed" else None,
            "cancelled_at": starts_at - timedelta(hours=20) if status.startswith("cancelled") else None,
            "no_show_at": starts_at + timedelta(minutes=20) if status == "no_show" else None,
            "cancel_reason": None,
            "sequence": 0,
            "created_by_id": clinician_id,
            "created_at": created_at,
            "updated_at": created_at,
        },
    )
    if ctx.with_reminders and channels and day >= ctx.today - timedelta(days=REMINDER_HISTORY_DAYS):
        _reminders(ctx, chunk, site, client_id, appointment_id, starts_at, status, channels)


def book_care_appointments(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client: Row,
    clinician_id: int,
    admitted_on: date,
    discharged_on: date | None,
    medication: str | None,
) -> None:
    """Counselling weekly for a month, fortnightly to week 12, then every 8 weeks; medication and plan visits."""
    rng = ctx.rng
    end = discharged_on or ctx.today + timedelta(days=BOOKED_AHEAD_DAYS)
    channels: list[str] = client["_channels"]
    day = admitted_on + timedelta(days=1)
    visit = 0
    while day <= end:
        weeks = (day - admitted_on).days // 7
        book_appointment(ctx, chunk, site, client["id"], clinician_id, "individual_therapy", day, channels=channels)
        if medication and visit % 4 == 0:
            book_appointment(ctx, chunk, site, client["id"], clinician_id, "medication_visit", day + timedelta(days=2),
                             channels=channels)
        if visit % 6 == 4:
            book_appointment(ctx, chunk, site, client["id"], clinician_id, "plan_review", day + timedelta(days=1),
                             channels=channels)
        if rng.random() < 0.05:
            book_appointment(ctx, chunk, site, client["id"], clinician_id, "peer_support", day + timedelta(days=3),
                             channels=channels)
        visit += 1
        day += timedelta(days=7 if weeks < 4 else 14 if weeks < 12 else 56)


def _reminders(
    ctx: Context,
    chunk: Chunk,
    site: SiteStaff,
    client_id: int,
    appointment_id: int,
    starts_at: datetime,
    status: str,
    channels: list[str],
) -> None:
    rng = ctx.rng
    for channel in channels:
        for lead in (2880, 120):
            due_at = starts_at - timedelta(minutes=lead)
            sent_at = None
            attempts = 0
            detail = None
            if due_at > ctx.now:
                state = "cancelled" if status.startswith("cancelled") else "pending"
            elif status.startswith("cancelled") and rng.random() < 0.5:
                state, detail = "cancelled", "appointment cancelled"
            else:
                state = weighted(rng, (("sent", 93), ("failed", 2), ("suppressed", 5)))
                if state == "sent":
                    attempts, sent_at = 1, due_at + timedelta(seconds=rng.randrange(5, 90))
                elif state == "failed":
                    attempts, detail = 6, "provider refused the message"
                else:
                    detail = "quiet hours"
            at = due_at - timedelta(days=3)
            reminder_id = ctx.ids.take("reminders")
            ctx.add(
                chunk,
                "reminders",
                {
                    "id": reminder_id,
                    "appointment_id": appointment_id,
                    "client_id": client_id,
                    "site_id": site.site_id,
                    "channel": channel,
                    "lead_time_minutes": lead,
                    "due_at": due_at,
                    "available_at": due_at,
                    "for_starts_at": starts_at,
                    "status": state,
                    "attempts": attempts,
                    "sent_at": sent_at,
                    "detail": detail,
                    "created_at": at,
                    "updated_at": sent_at or at,
                },
            )
            if state in {"sent", "failed"}:
                ctx.add(
                    chunk,
                    "notification_log",
                    {
                        "id": ctx.ids.take("notification_log"),
                        "at": sent_at or due_at,
                        "direction": "outbound",
                        "channel": channel,
                        "status": state,
                        "site_id": site.site_id,
                        "client_id": client_id,
                        "appointment_id": appointment_id,
                        "reminder_id": reminder_id,
                        "attempt": attempts,
                        "destination": "•••-•••-" + str(rng.randrange(1000, 10000)) if channel == "sms"
                        else "c•••@example.org",
                        "detail": detail or "delivered to the provider",
                        "provider_message_id": None,
                    },
                )
