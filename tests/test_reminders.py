"""Reminders: the outbox rows an appointment gets, how they are claimed and sent exactly once,
what they say (and never say), the SMS webhook, the signed link, preferences and the log.

The worker's functions run in-process here with fake channels; tests/test_reminders_delivery.py
runs them through a real Celery worker, Redis and an SMTP server.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.extensions import db
from clinic.notify import delivery
from clinic.notify.email import TransientEmailError
from clinic.notify.messages import SHIPPED_LANGUAGES, TEMPLATES, MessageContext, render, render_invalid_link_page
from clinic.notify.models import Reminder, ReminderStatus, StaffNotification
from clinic.notify.sms import (
    FileSmsBackend,
    PermanentSmsError,
    TransientSmsError,
    TwilioSmsBackend,
    request_signature,
)
from clinic.scheduling.models import Appointment
from tests.appointments_setup import CLINICIAN_NAME, ZONE, Practice, at, build_practice

#: Words no message to a client may contain (DOMAIN.md privacy rules), in English and Spanish.
FORBIDDEN = [
    "substance", "opioid", "methadone", "buprenorphine", "suboxone", "naltrexone", "vivitrol", "addiction",
    "recovery", "treatment", "rehab", "detox", "counsel", "therapy", "medication",
    "sustancia", "opioide", "metadona", "buprenorfina", "adicci", "recuperaci", "tratamiento", "desintoxic",
    "consejer", "terapia", "medicamento", "medicaci",
    "intake", "assessment", "screen", "group", "peer", "clinician", "doctor",
]
ZONE_INFO = ZoneInfo(ZONE)
LINK = re.compile(r"https?://[^\s\"'<>]+/r/[A-Za-z0-9_.\-]+")


@pytest.fixture
def practice(client, make_site, make_user, bearer) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def forbidden_in(text: str) -> list[str]:
    """Forbidden words (and the clinician's name) in ``text``, links aside (a token is random)."""
    plain = LINK.sub("", text).lower()
    found = [word for word in FORBIDDEN if word in plain]
    found += [part for part in CLINICIAN_NAME.lower().split() if part in plain]
    return found


class Outbox:
    """Fake channels: what would have been sent."""

    def __init__(self) -> None:
        self.emails: list[EmailMessage] = []
        self.texts: list[tuple[str, str]] = []
        self.email_error: Exception | None = None
        self.connections = 0

    def send_email(self, message: EmailMessage) -> None:
        if self.email_error is not None:
            raise self.email_error
        self.emails.append(message)

    def send(self, to: str, body: str) -> str:
        self.texts.append((to, body))
        return f"SM{len(self.texts)}"


class FakeMailer:
    """Stands in for one SMTP connection of a batch."""

    def __init__(self, box: Outbox) -> None:
        self.box = box
        box.connections += 1

    def send(self, message: EmailMessage) -> None:
        self.box.send_email(message)

    def close(self) -> None:
        pass


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Outbox:
    box = Outbox()
    monkeypatch.setattr(delivery, "open_mailer", lambda: FakeMailer(box))
    monkeypatch.setattr(delivery, "sms_backend", lambda: box)
    return box


def quiet_free(practice, person, leads=(120,), channels=("sms", "email"), **fields):
    """Preferences without quiet hours, so due times are exactly start minus lead."""
    return practice.preferences(person, channels=list(channels), lead_times_minutes=list(leads), **fields)


def run_dispatch(app, *, now=None):
    with app.app_context():
        claims = delivery.claim_due(now=now)
        db.session.commit()
    return claims


def deliver(app, claims):
    results = []
    for claim in claims:
        with app.app_context():
            results.append(delivery.deliver(claim.reminder_id, claim.token))
            db.session.commit()
    return results


def rows(app, appointment_id):
    with app.app_context():
        found = db.session.scalars(
            select(Reminder).where(Reminder.appointment_id == appointment_id).order_by(Reminder.id)
        ).all()
        db.session.expunge_all()
    return found


# --- planning -------------------------------------------------------------------------------------


def test_booking_writes_one_reminder_per_lead_time_and_consented_channel(practice):
    quiet_free(practice, practice.ada, leads=(2880, 120))
    start = at(days=4)
    booked = practice.booked_ok(starts_at=start)
    listed = practice.reminders(booked["id"])
    assert sorted((r["channel"], r["due_at"], r["status"]) for r in listed) == sorted(
        (channel, (start - timedelta(minutes=lead)).isoformat(), "pending")
        for channel in ("sms", "email")
        for lead in (2880, 120)
    )
    assert {(r["attempts"], r["sent_at"]) for r in listed} == {(0, None)}


def test_defaults_are_two_days_and_two_hours_before(practice):
    assert practice.get(f"/clients/{practice.ada['id']}/notification-preferences").get_json()[
        "lead_times_minutes"] == [2880, 120]
    booked = practice.booked_ok(starts_at=at(days=5))
    assert sorted({r["channel"] for r in practice.reminders(booked["id"])}) == ["email", "sms"]
    assert len(practice.reminders(booked["id"])) == 4


def test_a_channel_needs_an_active_consent(practice):
    quiet_free(practice, practice.ada)
    consents = practice.get(f"/clients/{practice.ada['id']}/consents").get_json()["items"]
    sms = next(c for c in consents if c["channel"] == "sms")
    assert practice.post(f"/consents/{sms['id']}/revoke").status_code == 200
    booked = practice.booked_ok()
    assert [r["channel"] for r in practice.reminders(booked["id"])] == ["email"]
    # A consent given after booking adds the reminder at once; revoking one cancels its reminders.
    practice.consent(practice.ada, "sms")
    assert sorted(r["channel"] for r in practice.reminders(booked["id"])) == ["email", "sms"]
    email = next(c for c in practice.get(f"/clients/{practice.ada['id']}/consents").get_json()["items"]
                 if c["channel"] == "email")
    practice.post(f"/consents/{email['id']}/revoke")
    statuses = {r["channel"]: r["status"] for r in practice.reminders(booked["id"])}
    assert statuses == {"sms": "pending", "email": "cancelled"}


def test_reminders_never_fall_in_quiet_hours(practice):
    practice.preferences(practice.ada, lead_times_minutes=[120], quiet_hours={"start": "21:00", "end": "08:00"})
    day = (datetime.now(UTC) + timedelta(days=3)).astimezone(ZONE_INFO)
    start = day.replace(hour=9, minute=0, second=0, microsecond=0)  # 2 h before is 07:00: quiet
    booked = practice.booked_ok(starts_at=start.astimezone(UTC))
    dues = {datetime.fromisoformat(r["due_at"]).astimezone(ZONE_INFO) for r in practice.reminders(booked["id"])}
    evening_before = (start - timedelta(days=1)).replace(hour=20, minute=45)
    assert dues == {evening_before}  # sent earlier instead: before quiet hours began


def test_rescheduling_moves_and_cancelling_cancels_the_reminders(app, practice, outbox):
    quiet_free(practice, practice.ada)
    start = at(hours=3)
    booked = practice.booked_ok(starts_at=start)
    deliver(app, run_dispatch(app, now=start - timedelta(minutes=119)))
    assert {r["status"] for r in practice.reminders(booked["id"])} == {"sent"}
    new_start = at(days=2)
    practice.patch(f"/appointments/{booked['id']}", {"starts_at": new_start.isoformat()})
    moved = practice.reminders(booked["id"])
    # Sent for the old time, so due again for the new one.
    assert {(r["status"], r["due_at"], r["attempts"]) for r in moved} == {
        ("pending", (new_start - timedelta(minutes=120)).isoformat(), 0)
    }
    practice.post(f"/appointments/{booked['id']}/cancel", {"by": "client"})
    assert {r["status"] for r in practice.reminders(booked["id"])} == {"cancelled"}
    assert run_dispatch(app, now=new_start) == []


def test_completing_an_appointment_cancels_what_is_left(practice):
    soon = practice.booked_ok(starts_at=at(minutes=50))
    assert {r["status"] for r in practice.reminders(soon["id"])} <= {"suppressed"}
    practice.preferences(practice.ada, lead_times_minutes=[30])
    half_hour = lambda: {r["status"] for r in practice.reminders(soon["id"]) if r["lead_time_minutes"] == 30}  # noqa: E731
    assert half_hour() == {"pending"}
    practice.post(f"/appointments/{soon['id']}/check-in")
    assert half_hour() == {"cancelled"}


def test_a_lead_time_already_past_at_booking_is_suppressed_not_sent(practice):
    quiet_free(practice, practice.ada, leads=(2880, 30))
    booked = practice.booked_ok(starts_at=at(hours=5))
    by_lead = {(r["channel"], r["lead_time_minutes"]): (r["status"], r["detail"])
               for r in practice.reminders(booked["id"])}
    assert by_lead[("sms", 2880)] == ("suppressed", "due before the appointment was booked")
    assert by_lead[("sms", 30)] == ("pending", None)


def test_group_sessions_remind_each_seated_client(practice):
    for person in (practice.ada, practice.ben):
        quiet_free(practice, person, channels=("sms",))
    session = practice.booked_ok(kind="group_therapy", client_id=None, capacity=5,
                                 client_ids=[practice.ada["id"]], starts_at=at(days=2))
    practice.post(f"/appointments/{session['id']}/attendees", {"client_id": practice.ben["id"]})
    assert sorted(r["client_id"] for r in practice.reminders(session["id"])) == sorted(
        [practice.ada["id"], practice.ben["id"]])
    practice.post(f"/appointments/{session['id']}/attendees/{practice.ben['id']}/cancel", {"by": "client"})
    assert {r["client_id"]: r["status"] for r in practice.reminders(session["id"])} == {
        practice.ada["id"]: "pending", practice.ben["id"]: "cancelled"}


# --- claiming and sending ---------------------------------------------------------------------------


def test_a_due_reminder_is_sent_once(app, practice, outbox):
    quiet_free(practice, practice.ada)
    start = at(hours=3)
    booked = practice.booked_ok(starts_at=start)
    assert run_dispatch(app, now=start - timedelta(minutes=121)) == []  # not due yet
    claims = run_dispatch(app, now=start - timedelta(minutes=119))
    assert len(claims) == 2
    assert run_dispatch(app, now=start - timedelta(minutes=119)) == []  # claimed: not twice
    assert sorted(deliver(app, claims)) == ["sent", "sent"]
    assert deliver(app, claims) == ["not claimed", "not claimed"]  # a redelivered task
    assert len(outbox.emails) == 1 and len(outbox.texts) == 1
    assert outbox.texts[0][0] == practice.ada["phone"]
    assert outbox.emails[0]["To"] == practice.ada["email"]
    listed = practice.reminders(booked["id"])
    assert {(r["status"], r["attempts"]) for r in listed} == {("sent", 1)}
    log = practice.get("/notifications", client_id=practice.ada["id"]).get_json()["items"]
    assert sorted((e["channel"], e["status"], e["destination"]) for e in log) == [
        ("email", "sent", "a•••@example.org"), ("sms", "sent", "••••••••0143")]


def _statements(app):
    """A list that collects every SQL statement run while it is attached."""
    from sqlalchemy import event

    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def collect(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", collect)
    return seen, lambda: event.remove(engine, "before_cursor_execute", collect)


def _email_batch(app, practice, count, *, start):
    """``count`` appointments of Ada's, each with one email reminder claimed for sending."""
    quiet_free(practice, practice.ada, leads=(1440,), channels=("email",))
    booked = [practice.booked_ok(starts_at=start + timedelta(hours=n)) for n in range(count)]
    claims = run_dispatch(app, now=start + timedelta(hours=count - 1, minutes=1) - timedelta(days=1))
    assert len(claims) == count
    return booked, claims


def test_a_batch_goes_over_one_connection_and_reads_no_more_per_message(app, practice, outbox):
    start = at(days=3)
    _booked, small = _email_batch(app, practice, 2, start=start)
    seen, stop = _statements(app)
    try:
        with app.app_context():
            assert delivery.deliver_batch(small) == ["sent", "sent"]
        small_count = len(seen)
        _booked, large = _email_batch(app, practice, 6, start=start + timedelta(days=1))
        seen.clear()
        with app.app_context():
            assert delivery.deliver_batch(large) == ["sent"] * 6
        large_count = len(seen)
    finally:
        stop()
    assert outbox.connections == 2 and len(outbox.emails) == 8
    # Reading the batch costs the same for 2 claims as for 6; each message adds only its own writes:
    # the attempt, the outcome, the log row, the audit event and its commit (a savepoint here).
    per_message = (large_count - small_count) / 4
    assert per_message == 6, (small_count, large_count)
    assert small_count - 2 * per_message == 10, (small_count, large_count)  # 8 reads and one more commit


def test_a_batch_skips_claims_that_changed_and_goes_on_after_a_refused_recipient(app, practice, outbox):
    start = at(days=3)
    booked, claims = _email_batch(app, practice, 4, start=start)
    practice.post(f"/appointments/{booked[1]['id']}/cancel", {"by": "client"})
    refused = {claims[2].reminder_id}
    real_send = outbox.send_email

    def refuse_one(message):
        if any(f"reminder-{rid}-" in message["Message-ID"] for rid in refused):
            raise delivery.PermanentEmailError("recipient refused: [550]")
        real_send(message)

    outbox.send_email = refuse_one
    with app.app_context():
        assert delivery.deliver_batch(claims) == ["sent", "not claimed", "failed", "sent"]
    assert len(outbox.emails) == 2
    statuses = [practice.reminders(b["id"])[0]["status"] for b in booked]
    assert statuses == ["sent", "cancelled", "failed", "sent"]
    with app.app_context():
        assert delivery.deliver_batch(claims) == ["not claimed"] * 4  # the task delivered twice
    assert len(outbox.emails) == 2


def test_a_batch_that_fails_part_way_keeps_the_record_of_what_it_sent(app, practice, outbox, monkeypatch):
    start = at(days=3)
    booked, claims = _email_batch(app, practice, 3, start=start)
    real_context = delivery._context
    calls = []

    def fail_on_the_second(batch, row):
        calls.append(row.id)
        if len(calls) == 2:
            raise RuntimeError("a bug while preparing the second message")
        return real_context(batch, row)

    monkeypatch.setattr(delivery, "_context", fail_on_the_second)
    with app.app_context(), pytest.raises(RuntimeError):
        delivery.deliver_batch(claims)
    assert len(outbox.emails) == 1
    # The first went out and stays recorded as sent (its commit was due with the second's attempt), so
    # it is never claimed again; the other two keep their claim (the API calls it pending), to be taken
    # again once stuck.
    statuses = [(r["status"], r["attempts"]) for b in booked for r in practice.reminders(b["id"])]
    assert statuses == [("sent", 1), ("pending", 0), ("pending", 0)]
    claimed_at = start + timedelta(hours=2, minutes=1) - timedelta(days=1)  # when _email_batch dispatched
    stuck = app.config["REMINDER_STUCK_AFTER_SECONDS"]
    assert run_dispatch(app, now=claimed_at + timedelta(seconds=stuck - 5)) == []
    later = run_dispatch(app, now=claimed_at + timedelta(seconds=stuck + 5))
    assert sorted(c.reminder_id for c in later) == sorted(c.reminder_id for c in claims[1:])
    log = practice.get("/notifications", client_id=practice.ada["id"]).get_json()["items"]
    assert [(e["status"], e["reminder_id"]) for e in log] == [("sent", claims[0].reminder_id)]


def test_what_the_messages_say(app, practice, outbox):
    quiet_free(practice, practice.ben)  # Ben reads Spanish
    start = at(days=1)
    booked = practice.booked_ok(starts_at=start, client_id=practice.ben["id"], kind="medication_visit",
                                location="Methadone dispensing window 2", telehealth_url="https://video.example/tx")
    deliver(app, run_dispatch(app, now=start - timedelta(minutes=119)))
    (_to, text), email = outbox.texts[0], outbox.emails[0]
    assert "Riverside Health" in text and "Responda SI" in text and "STOP" in text
    local = start.astimezone(ZONE_INFO)
    assert f"{local.hour}:{local.minute:02d}" in text
    body = email.get_body(preferencelist=("plain",)).get_content()
    assert "Riverside Health" in body and "recordatorio" in email["Subject"].lower()
    links = LINK.findall(text) + LINK.findall(body)
    assert len(links) == 2 and all(link.startswith("http://127.0.0.1:8000/r/") for link in links)
    attachment = next(part for part in email.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    event = Calendar.from_ical(attachment.get_content()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == start
    assert event.decoded("dtend") == start + timedelta(minutes=60)
    assert str(event.get("uid")) == f"appointment-{booked['id']}@127.0.0.1"
    assert "Riverside Health" in str(event.get("summary"))
    everything = "\n".join([text, email["Subject"], body, attachment.get_content()])
    assert forbidden_in(everything) == []
    assert "window" not in everything and "video.example" not in everything


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_in_every_language_says_nothing_it_must_not(app, template, language):
    """The privacy rules of DOMAIN.md, checked on every shipped template and language."""
    context = MessageContext(
        site="Riverside Health",
        starts_at=datetime(2027, 3, 14, 14, 30, tzinfo=UTC),
        zone=ZONE,
        language=language,
        link="https://clinic.example.org/r/abc.def",
        channel="email" if "email" in template else "sms",
    )
    with app.app_context():
        pages = [render(template, context, outcome=o, state=s, opted_out=False)
                 for o in (None, "confirmed", "cancelled", "stopped", "too_late")
                 for s in ("open", "confirmed", "cancelled", "closed")] if template.endswith(".html") else [
            render(template, context)]
        if template.endswith(".html"):
            pages.append(render_invalid_link_page(language))
    for text in pages:
        assert forbidden_in(text) == [], (template, language, text)
        assert "Riverside Health" in text or "invalid" in text or "válido" in text or text.startswith("<!doctype")
    if template not in ("ics_summary.txt", "reply_nothing_to_confirm.txt", "reply_help.txt",
                        "reply_resubscribed.txt", "link.html"):
        assert any(piece in pages[0] for piece in ("10:30", "10:30 AM")), pages[0]  # 14:30 UTC in New York


def test_a_transient_failure_is_retried_with_backoff_then_fails(app, practice, outbox):
    quiet_free(practice, practice.ada, channels=("email",))
    start = at(hours=6)
    booked = practice.booked_ok(starts_at=start)
    outbox.email_error = TransientEmailError("server answered 451")
    due = start - timedelta(minutes=119)
    assert deliver(app, run_dispatch(app, now=due)) == ["retrying"]
    (row,) = rows(app, booked["id"])
    assert (row.status, row.attempts) == (ReminderStatus.PENDING, 1)
    assert row.available_at > datetime.now(UTC) + timedelta(seconds=50)  # 60 s backoff first
    assert run_dispatch(app, now=datetime.now(UTC) + timedelta(seconds=30)) == []  # not before the backoff
    max_attempts = app.config["REMINDER_MAX_ATTEMPTS"]
    results = []
    for _ in range(max_attempts - 1):
        results += deliver(app, run_dispatch(app, now=start - timedelta(minutes=1)))
    assert results == ["retrying"] * (max_attempts - 2) + ["failed"]
    (row,) = rows(app, booked["id"])
    assert (row.status, row.attempts) == (ReminderStatus.FAILED, max_attempts)
    statuses = [e["status"] for e in practice.get("/notifications", client_id=practice.ada["id"]).get_json()["items"]]
    assert statuses == ["failed"] + ["retrying"] * (max_attempts - 1)
    assert practice.get("/notifications", status="failed").get_json()["items"][0]["reminder_id"] == row.id
    assert outbox.emails == []


def test_a_reminder_whose_appointment_began_is_suppressed(app, practice, outbox):
    quiet_free(practice, practice.ada, channels=("sms",))
    start = at(hours=3)
    booked = practice.booked_ok(starts_at=start)
    claims = run_dispatch(app, now=start - timedelta(minutes=100))
    with app.app_context():  # time passes: the appointment begins before the task runs
        appointment = db.session.get(Appointment, booked["id"])
        appointment.starts_at, appointment.ends_at = at(minutes=-5), at(minutes=55)
        db.session.commit()
    assert deliver(app, claims) == ["suppressed"]
    assert outbox.texts == []
    (listed,) = practice.reminders(booked["id"])
    assert (listed["status"], listed["detail"]) == ("suppressed", "the appointment had begun")


def test_a_claim_lost_with_its_worker_is_claimed_again(app, practice, outbox):
    quiet_free(practice, practice.ada, channels=("sms",))
    start = at(hours=3)
    practice.booked_ok(starts_at=start)
    claimed_at = start - timedelta(minutes=119)
    lost = run_dispatch(app, now=claimed_at)
    stuck = app.config["REMINDER_STUCK_AFTER_SECONDS"]
    assert run_dispatch(app, now=claimed_at + timedelta(seconds=stuck - 5)) == []
    again = run_dispatch(app, now=claimed_at + timedelta(seconds=stuck + 5))
    assert [c.reminder_id for c in again] == [c.reminder_id for c in lost]
    assert deliver(app, lost) == ["not claimed"]  # the old task, if it ever comes back
    assert deliver(app, again) == ["sent"]
    assert len(outbox.texts) == 1


def test_sending_inside_quiet_hours_waits_for_their_end(app, practice, outbox):
    now_local = datetime.now(UTC).astimezone(ZONE_INFO)
    quiet = {"start": (now_local - timedelta(hours=1)).strftime("%H:%M"),
             "end": (now_local + timedelta(hours=1)).strftime("%H:%M")}
    practice.preferences(practice.ada, channels=["sms"], lead_times_minutes=[60], quiet_hours=quiet)
    start = at(hours=5)
    booked = practice.booked_ok(starts_at=start)
    with app.app_context():  # due now (as if planned before quiet hours changed)
        for row in db.session.scalars(select(Reminder).where(Reminder.appointment_id == booked["id"])):
            row.available_at = at(minutes=-1)
        db.session.commit()
    assert deliver(app, run_dispatch(app)) == ["deferred"]
    (row,) = rows(app, booked["id"])
    assert row.status is ReminderStatus.PENDING
    assert abs((row.available_at - at(hours=1)).total_seconds()) < 120
    assert outbox.texts == []


def test_audit_of_sends_and_reads(app, practice, outbox):
    quiet_free(practice, practice.ada, channels=("sms",))
    start = at(hours=3)
    booked = practice.booked_ok(starts_at=start)
    deliver(app, run_dispatch(app, now=start - timedelta(minutes=119)))
    practice.reminders(booked["id"])
    practice.get("/notifications", client_id=practice.ada["id"])
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.client_id == practice.ada["id"],
                                            AuditEvent.action.in_(["reminder.sent", "reminder.read",
                                                                   "notification_log.read"]))
        ).all()
    assert sorted(actions) == ["notification_log.read", "reminder.read", "reminder.sent"]


# --- preferences --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channels": ["pigeon"], "lead_times_minutes": [60]}, "channels.0"),
        ({"channels": ["sms", "sms"], "lead_times_minutes": [60]}, "channels"),
        ({"channels": ["sms"], "lead_times_minutes": [0]}, "lead_times_minutes.0"),
        ({"channels": ["sms"], "lead_times_minutes": [60, 60]}, "lead_times_minutes"),
        ({"channels": ["sms"], "lead_times_minutes": [60], "quiet_hours": {"start": "25:00", "end": "07:00"}},
         "quiet_hours.start"),
        ({"channels": ["sms"], "lead_times_minutes": [60], "language": "tlh"}, "language"),
        ({"channels": ["sms"]}, "lead_times_minutes"),
    ],
)
def test_bad_preferences_are_422_naming_the_field(practice, body, field):
    response = practice.http.put(f"/api/v1/clients/{practice.ada['id']}/notification-preferences",
                                 headers=practice.headers, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"], response.get_json()


def test_preferences_are_read_back_and_re_plan_reminders(practice):
    defaults = practice.get(f"/clients/{practice.ben['id']}/notification-preferences").get_json()
    assert (defaults["is_default"], defaults["language"], defaults["effective_timezone"]) == (True, "es", ZONE)
    assert defaults["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    booked = practice.booked_ok(client_id=practice.ben["id"], starts_at=at(days=4))
    saved = practice.preferences(practice.ben, channels=["email"], lead_times_minutes=[1440],
                                 timezone="America/Los_Angeles", language="en")
    assert (saved["is_default"], saved["timezone"], saved["active_channels"]) == (
        False, "America/Los_Angeles", ["email"])
    live = [(r["channel"], r["lead_time_minutes"]) for r in practice.reminders(booked["id"])
            if r["status"] == "pending"]
    assert live == [("email", 1440)]
    assert practice.get(f"/clients/{practice.ben['id']}/notification-preferences",
                        headers=practice.outsider_headers).status_code == 404
    assert practice.get(f"/clients/{practice.ben['id']}/notification-preferences",
                        headers=practice.admin_headers).status_code == 403


# --- the SMS webhook ----------------------------------------------------------------------------------


def sms_in(practice, app, body: str, sender: str, *, signature: str | None = None):
    form = {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": "SM" + "0" * 32,
            "AccountSid": "AC123", "NumMedia": "0"}
    url = "http://127.0.0.1:8000/api/v1/notify/sms/inbound"
    if signature is None:
        signature = request_signature(url, form.items(), app.config["SMS_AUTH_TOKEN"])
    return practice.http.post("/api/v1/notify/sms/inbound", data=form, headers={"X-Twilio-Signature": signature})


def test_the_webhook_needs_the_providers_signature(app, practice):
    forged = sms_in(practice, app, "STOP", practice.ada["phone"], signature="bm90IGEgc2lnbmF0dXJl")
    assert forged.status_code == 403
    assert forged.mimetype == "application/problem+json"
    unsigned = practice.http.post("/api/v1/notify/sms/inbound", data={"From": practice.ada["phone"], "Body": "STOP"})
    assert unsigned.status_code == 403
    prefs = practice.get(f"/clients/{practice.ada['id']}/notification-preferences").get_json()
    assert prefs["opted_out_channels"] == []


def test_stop_opts_the_number_out_and_start_back_in(app, practice):
    quiet_free(practice, practice.ada)
    booked = practice.booked_ok(starts_at=at(days=3))
    response = sms_in(practice, app, " stop ", practice.ada["phone"])
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert "<Message>" not in response.get_data(as_text=True)
    statuses = {r["channel"]: r["status"] for r in practice.reminders(booked["id"])}
    assert statuses == {"sms": "cancelled", "email": "pending"}
    assert practice.get(f"/clients/{practice.ada['id']}/notification-preferences").get_json()[
        "opted_out_channels"] == ["sms"]
    # A new appointment gets no text either.
    later = practice.booked_ok(starts_at=at(days=6))
    assert [r["channel"] for r in practice.reminders(later["id"])] == ["email"]
    again = sms_in(practice, app, "START", practice.ada["phone"])
    assert "again" in again.get_data(as_text=True)
    assert {r["channel"] for r in practice.reminders(later["id"]) if r["status"] == "pending"} == {"sms", "email"}
    log = practice.get("/notifications", client_id=practice.ada["id"], status="received").get_json()["items"]
    assert [e["detail"] for e in log] == ["start", "stop"]


def test_yes_confirms_the_next_appointment(app, practice):
    later = practice.booked_ok(starts_at=at(days=5))
    sooner = practice.booked_ok(starts_at=at(days=2))
    response = sms_in(practice, app, "Yes!", practice.ada["phone"])
    reply = response.get_data(as_text=True)
    assert "confirmed" in reply and "Riverside Health" in reply and forbidden_in(reply) == []
    assert practice.get(f"/appointments/{sooner['id']}").get_json()["status"] == "confirmed"
    assert practice.get(f"/appointments/{later['id']}").get_json()["status"] == "scheduled"
    spanish = sms_in(practice, app, "SI", practice.ben["phone"]).get_data(as_text=True)
    assert "no encontramos" in spanish


def test_any_other_reply_goes_to_the_clients_clinician(app, practice):
    sms_in(practice, app, "Can we move it to Friday?", practice.ada["phone"])
    with app.app_context():
        alert = db.session.scalars(select(StaffNotification)).one()
        assert (alert.user_id, alert.kind.value, alert.client_id) == (
            practice.clinician.id, "client_reply", practice.ada["id"])
        assert "Friday" in alert.body and "Friday" not in alert.title
    stranger = sms_in(practice, app, "hello", "+16175550101")
    assert stranger.status_code == 200


# --- the signed link ------------------------------------------------------------------------------------


def link_of(app, practice, outbox, person, start):
    quiet_free(practice, person, channels=("sms",))
    booked = practice.booked_ok(starts_at=start, client_id=person["id"])
    deliver(app, run_dispatch(app, now=start - timedelta(minutes=119)))
    (link,) = LINK.findall(outbox.texts[-1][1])
    return booked, link.removeprefix("http://127.0.0.1:8000")


def test_the_link_shows_the_time_and_confirms(app, practice, outbox):
    booked, path = link_of(app, practice, outbox, practice.ada, at(hours=4))
    page = practice.http.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert "Riverside Health" in html and forbidden_in(html) == []
    assert practice.get(f"/appointments/{booked['id']}").get_json()["status"] == "scheduled"  # GET changes nothing
    confirmed = practice.http.post(path, data={"action": "confirm"}).get_data(as_text=True)
    assert "is confirmed" in confirmed
    assert practice.get(f"/appointments/{booked['id']}").get_json()["status"] == "confirmed"
    cancelled = practice.http.post(path, data={"action": "cancel"}).get_data(as_text=True)
    assert "is cancelled" in cancelled
    assert practice.get(f"/appointments/{booked['id']}").get_json()["status"] == "cancelled_by_client"
    assert practice.http.post(path, data={"action": "explode"}).status_code == 400


def test_the_link_can_stop_text_reminders(app, practice, outbox):
    _booked, path = link_of(app, practice, outbox, practice.ada, at(hours=4))
    html = practice.http.post(path, data={"action": "stop"}).get_data(as_text=True)
    assert "will not receive text reminders" in html
    assert practice.get(f"/clients/{practice.ada['id']}/notification-preferences").get_json()[
        "opted_out_channels"] == ["sms"]


def test_a_forged_or_outdated_link_does_nothing(app, practice, outbox):
    booked, path = link_of(app, practice, outbox, practice.ben, at(hours=4))
    forged = practice.http.post(path[:-3] + "xyz", data={"action": "cancel"})
    assert forged.status_code == 404 and "válido" not in forged.get_data(as_text=True)
    spanish = practice.http.get(path[:-3] + "xyz", headers={"Accept-Language": "es"})
    assert "no es válido" in spanish.get_data(as_text=True)
    practice.patch(f"/appointments/{booked['id']}", {"starts_at": at(days=2).isoformat()})
    assert practice.http.post(path, data={"action": "cancel"}).status_code == 404  # for the old time
    assert practice.get(f"/appointments/{booked['id']}").get_json()["status"] == "scheduled"


# --- channels --------------------------------------------------------------------------------------------


class FakeTwilio(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, Any]]]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        FakeTwilio.received.append({"path": self.path, "auth": self.headers["Authorization"], "form": form})
        status, payload = FakeTwilio.answers.pop(0)
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def twilio_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeTwilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeTwilio.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_twilio_backend_speaks_its_api(twilio_server):
    backend = TwilioSmsBackend(api_url=twilio_server, account_sid="AC1", auth_token="secret", sender="+15005550006",
                               timeout=5)
    FakeTwilio.answers[:] = [(201, {"sid": "SM42"}), (503, {}), (400, {"code": 21610, "message": "unsubscribed"}),
                             (400, {"code": 21211, "message": "invalid"})]
    assert backend.send("+12025550143", "hello") == "SM42"
    sent = FakeTwilio.received[0]
    assert sent["path"] == "/2010-04-01/Accounts/AC1/Messages.json"
    assert sent["auth"].startswith("Basic ")
    assert sent["form"] == {"To": ["+12025550143"], "Body": ["hello"], "From": ["+15005550006"]}
    with pytest.raises(TransientSmsError):
        backend.send("+12025550143", "hello")
    with pytest.raises(PermanentSmsError) as unsubscribed:
        backend.send("+12025550143", "hello")
    assert unsubscribed.value.opted_out
    with pytest.raises(PermanentSmsError) as invalid:
        backend.send("+12025550143", "hello")
    assert not invalid.value.opted_out
    down = TwilioSmsBackend(api_url="http://127.0.0.1:9", account_sid="AC1", auth_token="x", sender="MG1", timeout=1)
    with pytest.raises(TransientSmsError):
        down.send("+12025550143", "hello")


def test_the_file_backend_appends_json_lines(tmp_path: Path):
    backend = FileSmsBackend(str(tmp_path / "out" / "sms.jsonl"))
    backend.send("+12025550143", "one")
    backend.send("+12025550178", "two")
    lines = [json.loads(line) for line in (tmp_path / "out" / "sms.jsonl").read_text().splitlines()]
    assert [(line["to"], line["body"]) for line in lines] == [("+12025550143", "one"), ("+12025550178", "two")]


def test_the_signature_is_twilios():
    # Twilio's published validation vectors (auth token "12345"), including a repeated parameter.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
    assert request_signature(url, params.items(), "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert request_signature(url, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_beat_dispatches_reminders_every_minute(app):
    celery = app.extensions["celery"]
    entries = [e for e in celery.conf.beat_schedule.values() if e["task"] == "clinic.notify.tasks.dispatch_reminders"]
    assert len(entries) == 1 and entries[0]["schedule"] == 60.0
    celery.loader.import_default_modules()
    assert {
        "clinic.notify.tasks.dispatch_reminders",
        "clinic.notify.tasks.send_reminders",
        "clinic.notify.tasks.send_reminder",
    } <= set(celery.tasks)


