"""What notify adds to pages of the domains below it: an appointment's reminders and their state.

Scheduling sits below notify and cannot import it; its appointment page asks through the
``appointment_reminders`` signal (clinic.core.signals) and shows what this answers. The rows are
those of ``GET /appointments/{id}/reminders``, read and audited the same way
(:func:`clinic.notify.reminders.list_for_appointment`), and carry what that endpoint shows —
never a message's content or the address it went to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clinic.core.signals import appointment_reminders
from clinic.notify.models import Reminder, ReminderStatus
from clinic.notify.reminders import list_for_appointment
from clinic.scheduling.models import Appointment


@dataclass(frozen=True)
class ReminderRow:
    """One reminder as the API shows it: one per client, channel and lead time."""

    client_id: int
    #: ``sms`` or ``email``.
    channel: str
    lead_time_minutes: int
    #: When it is (or was) due to go.
    due_at: datetime
    #: ``pending``, ``sent``, ``failed``, ``cancelled`` or ``suppressed`` (a reminder in a worker's
    #: hands is not sent yet: pending, as the API says).
    status: str
    attempts: int
    sent_at: datetime | None
    #: When a failed attempt is tried again (a pending reminder that was tried already).
    next_attempt_at: datetime | None
    #: Why it was cancelled, suppressed or failed (never content).
    detail: str | None


def _row(reminder: Reminder) -> ReminderRow:
    status = ReminderStatus.PENDING if reminder.status is ReminderStatus.SENDING else reminder.status
    return ReminderRow(
        client_id=reminder.client_id,
        channel=reminder.channel.value,
        lead_time_minutes=reminder.lead_time_minutes,
        due_at=reminder.due_at,
        status=status.value,
        attempts=reminder.attempts,
        sent_at=reminder.sent_at,
        next_attempt_at=reminder.available_at
        if reminder.status is ReminderStatus.PENDING and reminder.attempts > 0
        else None,
        detail=reminder.detail,
    )


@appointment_reminders.connect
def reminders_of(appointment: Appointment) -> list[ReminderRow]:
    """The appointment's reminders, soonest due first; the read audited as the API's (``reminder.read``)."""
    return [_row(reminder) for reminder in list_for_appointment(appointment)]
