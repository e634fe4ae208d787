"""Domain events: how one domain reacts to another without importing it.

A package announces what happened by sending a signal; packages above it connect receivers
(``@signals.appointment_changed.connect``). The sender never imports its listeners, so the
package graph stays acyclic (tests/test_architecture.py). Receivers run synchronously, inside
the unit of work of the change that sent the signal: what they write commits or rolls back with
it. Work for the outside world is written as rows (an outbox) or queued after commit, never done
in a receiver.

Some signals ask rather than tell: their receivers return values, which the sender collects
with :func:`values_from`.

Every signal is declared here, with its sender and keyword arguments. The modules that connect
receivers are imported by ``clinic.create_app`` (``connect_receivers``), so a receiver is never
missing because nothing happened to import its module.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace, Signal

_signals = Namespace()

# --- scheduling --------------------------------------------------------------------------------

appointment_booked: Signal = _signals.signal(
    "appointment-booked",
    doc="""Appointments were booked (one, or every occurrence of a new series).

    sender: the list of new ``Appointment`` rows, flushed.
    Receivers: clinic.notify.reminders writes their reminder rows (the outbox).
    """,
)

appointment_changed: Signal = _signals.signal(
    "appointment-changed",
    doc="""Appointments changed: moved, re-assigned, confirmed, checked in, completed, no-show, or a
    group session's attendee list or attendance changed.

    sender: the list of changed ``Appointment`` rows, flushed.
    Receivers: clinic.notify.reminders re-times, writes or cancels their reminder rows.
    """,
)

appointment_cancelled: Signal = _signals.signal(
    "appointment-cancelled",
    doc="""An appointment was cancelled (by the client or the clinic).

    sender: a list holding the cancelled ``Appointment``, flushed.
    Receivers: clinic.notify.reminders cancels its pending reminders.
    """,
)

appointment_reminders: Signal = _signals.signal(
    "appointment-reminders",
    doc="""Asks for an appointment's reminders and their state, for the console's appointment page.

    sender: the ``Appointment`` (loaded within the reader's sites).
    Returns: a receiver that keeps reminders a list of ``clinic.notify.panels.ReminderRow``
    (channel, when due, status, attempts, when sent: what ``GET /appointments/{id}/reminders``
    shows, never a message's content), soonest due first, its read audited as that endpoint's is.
    Receivers: clinic.notify.panels.
    """,
)

# --- clients -----------------------------------------------------------------------------------

contact_details_changed: Signal = _signals.signal(
    "contact-details-changed",
    doc="""A client's ways of being reached changed: phone, email, preferred channel or a
    communication consent.

    sender: the client's id (``int``).
    Receivers: clinic.notify.reminders re-plans the client's future reminders.
    """,
)

timeline_entries: Signal = _signals.signal(
    "timeline-entries",
    doc="""Asks every domain for its entries on a client's timeline.

    sender: the client's id (``int``).
    Returns: each receiver an iterable of ``clinic.clients.timeline.TimelineEntry``.
    Receivers: clients (episodes, consents), intake, assessments, plans, drug screens, scheduling.
    """,
)

client_flags: Signal = _signals.signal(
    "client-flags",
    doc="""Asks the domains above clients for a client's flags, shown as chips in the client banner
    on every client page: risk flags, safety alerts not yet acknowledged.

    sender: the ``Client`` (loaded within the reader's sites).
    kwargs: ``user`` (the ``User`` reading; a receiver leaves out what the role may not see).
    Returns: each receiver a list of ``clinic.clients.banner.Flag``, most urgent first; each
    receiver audits the reads it makes as the API read of the same data would be.
    Receivers: clinic.plans.summary (intake calls' risk flags, unacknowledged safety alerts).
    """,
)

client_summary: Signal = _signals.signal(
    "client-summary",
    doc="""Asks the domains above clients for the client's care in force, for the chart.

    sender: the ``Client`` (loaded within the reader's sites).
    kwargs: ``user`` (the ``User`` reading; only roles that may read clinical data are asked).
    Returns: a receiver a ``clinic.clients.banner.CareSummary`` (the active plan and the
    medications in force), its reads audited as the API's lists of plans and medications are;
    or a ``clinic.clients.banner.ChartCard`` (a card of its own on the chart), its reads audited.
    Receivers: clinic.plans.summary (the care), clinic.overdose.summary (overdose prevention).
    """,
)

client_dosing: Signal = _signals.signal(
    "client-dosing",
    doc="""Asks the dosing record for a client's last dose and missed days, for ``GET /clients/{id}``.

    sender: the ``Client`` (loaded within the reader's sites).
    kwargs: ``user`` (the ``User`` reading; only roles that may read clinical data are answered).
    Returns: a receiver a dict ``{"last_dose_on": date | None, "missed_dose_days": int | None}``
    (``last_dose_on`` None when never dosed, ``missed_dose_days`` None when no daily-dosed order is
    in force at an OTP), its read audited.
    Receivers: clinic.dosing.operations.
    """,
)

admission_assessment: Signal = _signals.signal(
    "admission-assessment",
    doc="""Asks which level of care a signed assessment chose, to admit a client on it.

    sender: the ``Client`` being admitted.
    kwargs: ``assessment_id`` (``int``), named by the caller.
    Returns: a receiver that knows the assessment returns ``(level_of_care, asam_edition)`` or
    raises the problem (404 unknown, 409 not signed, 422 not an ASAM assessment).
    Receivers: clinic.assessments.
    """,
)

# --- assessments and plans ---------------------------------------------------------------------

assessment_signed: Signal = _signals.signal(
    "assessment-signed",
    doc="""A clinician signed an assessment (it is now immutable; amendments sign again).

    sender: the signed ``Assessment``, flushed.
    kwargs: ``actor`` (the signing ``User``).
    Receivers: none inside clinic yet; the dosing record and the FHIR export connect here.
    """,
)

episode_discharged: Signal = _signals.signal(
    "episode-discharged",
    doc="""A client's episode of care was closed with a TEDS reason.

    sender: the ``Episode``, flushed.
    kwargs: ``actor`` (the ``User``), ``reason_code`` (``int``, TEDS 1 to 7).
    Receivers: clinic.scheduling cancels the client's appointments and group seats ahead when the
    reason is death (6), so no reminder reaches the phone of a client who has died.
    """,
)

medication_changed: Signal = _signals.signal(
    "medication-changed",
    doc="""A client's medication was added, or its dose, schedule or status changed.

    sender: the ``Medication``, flushed.
    kwargs: ``actor`` (the ``User``), ``created`` (``bool``), ``fields`` (names of what changed).
    Receivers: none inside clinic yet; the dosing record and the FHIR export connect here.
    """,
)


# --- the request cycle -------------------------------------------------------------------------

request_replayed: Signal = _signals.signal(
    "request-replayed",
    doc="""A POST repeated with its Idempotency-Key was answered with the stored first answer.

    sender: the ``IdempotencyKey`` row replayed (method, path, status; its stored body may hold
    client data, handed again to the same user).
    kwargs: ``user_id`` (``int``).
    Receivers: clinic.audit records ``request.replay``.
    """,
)


def values_from(signal: Signal, sender: Any, **kwargs: Any) -> list[Any]:
    """Send ``signal`` and return what its receivers returned, leaving out ``None``."""
    return [value for _receiver, value in signal.send(sender, **kwargs) if value is not None]
