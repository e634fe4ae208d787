"""Appointment adherence and reminder delivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, case, cast, func, literal, select, union_all

from clinic.clients.models import Client
from clinic.core.sql import utc_date
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.models import Reminder, ReminderStatus
from clinic.reports.registry import Chart, Column, Context, Result, report
from clinic.reports.sql import as_int, rate
from clinic.scheduling.models import Appointment, AppointmentAttendee, AppointmentStatus, AttendeeStatus


def visits() -> Any:
    """One row per client per appointment: individual appointments and group attendees alike.

    ``outcome`` is kept, no_show, cancelled_by_client, cancelled_by_clinic or open.
    """
    individual = select(
        Appointment.id.label("appointment_id"),
        Appointment.client_id.label("client_id"),
        Appointment.site_id,
        Appointment.kind,
        Appointment.starts_at,
        cast(
            case(
                (Appointment.status.in_([AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED]), "kept"),
                (Appointment.status == AppointmentStatus.NO_SHOW, "no_show"),
                (Appointment.status == AppointmentStatus.CANCELLED_BY_CLIENT, "cancelled_by_client"),
                (Appointment.status == AppointmentStatus.CANCELLED_BY_CLINIC, "cancelled_by_clinic"),
                else_="open",
            ),
            String,
        ).label("outcome"),
        cast(case((Appointment.status == AppointmentStatus.COMPLETED, 1), else_=0), db.Integer).label("completed"),
    ).where(Appointment.client_id.is_not(None))
    group = select(
        Appointment.id,
        AppointmentAttendee.client_id,
        Appointment.site_id,
        Appointment.kind,
        Appointment.starts_at,
        cast(
            case(
                (AppointmentAttendee.status == AttendeeStatus.ATTENDED, "kept"),
                (AppointmentAttendee.status == AttendeeStatus.NO_SHOW, "no_show"),
                (AppointmentAttendee.status == AttendeeStatus.CANCELLED_BY_CLIENT, "cancelled_by_client"),
                (AppointmentAttendee.status == AttendeeStatus.CANCELLED_BY_CLINIC, "cancelled_by_clinic"),
                (Appointment.status == AppointmentStatus.CANCELLED_BY_CLINIC, "cancelled_by_clinic"),
                else_="open",
            ),
            String,
        ),
        cast(case((AppointmentAttendee.status == AttendeeStatus.ATTENDED, 1), else_=0), db.Integer),
    ).join(AppointmentAttendee, AppointmentAttendee.appointment_id == Appointment.id)
    return union_all(individual, group).subquery()


@report(
    "appointment-adherence",
    title="Appointment adherence",
    description=(
        "Appointments from `from` to `to` that have already begun, per kind and per client booked (group sessions "
        "count each attendee): kept (checked in or completed), no-shows, cancellations by the client and by the "
        "clinic. No-show rate = no-shows / (appointments - cancelled by the clinic)."
    ),
    columns=[
        Column("kind", "Appointment kind"),
        Column("scheduled", "Appointments", "appointments"),
        Column("kept", "Kept", "appointments"),
        Column("no_show", "No-shows", "appointments"),
        Column("cancelled_by_client", "Cancelled by client", "appointments"),
        Column("cancelled_by_clinic", "Cancelled by clinic", "appointments"),
        Column("no_show_rate", "No-show rate", "fraction 0..1"),
    ],
    chart=Chart(
        "bars",
        "kind",
        ("kept", "no_show", "cancelled_by_client", "cancelled_by_clinic"),
        "Appointment kind",
        "Appointments",
        rate="no_show_rate",
        names="appointment_kind",
        headline=(("no_show_rate", "No-show rate"), ("scheduled", "Appointments"), ("no_show", "No-shows")),
        undefined="every appointment was cancelled by the clinic",
    ),
    summary_units={"no_show_rate": "fraction", "scheduled": "appointments", "no_show": "appointments"},
)
def appointment_adherence(ctx: Context) -> Result:
    v = visits()
    day = utc_date(v.c.starts_at)
    counts = [
        func.sum(case((v.c.outcome == name, 1), else_=0)).label(name)
        for name in ("kept", "no_show", "cancelled_by_client", "cancelled_by_clinic")
    ]
    stmt = (
        select(v.c.kind, func.count().label("scheduled"), *counts)
        .join(Client, Client.id == v.c.client_id)
        .where(
            day >= ctx.start,
            day <= ctx.end,
            v.c.starts_at <= literal(utcnow()),
            ctx.scope.sites(v.c.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
        .group_by(v.c.kind)
        .order_by(v.c.kind)
    )
    keys = ("scheduled", "kept", "no_show", "cancelled_by_client", "cancelled_by_clinic")
    rows = []
    for kind, *values in db.session.execute(stmt):
        row: dict[str, Any] = {
            "kind": getattr(kind, "value", kind),
            **{k: as_int(n) for k, n in zip(keys, values, strict=True)},
        }
        row["no_show_rate"] = rate(row["no_show"], row["scheduled"] - row["cancelled_by_clinic"])
        rows.append(row)
    summary: dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    summary["no_show_rate"] = rate(summary["no_show"], summary["scheduled"] - summary["cancelled_by_clinic"])
    return Result(rows, summary)


@report(
    "reminder-delivery",
    title="Reminder delivery",
    description=(
        "Reminders due from `from` to `to`, per channel: sent, failed after every attempt, suppressed on purpose "
        "(the appointment had begun, no consent, opted out, no address), cancelled with their appointment, and still "
        "pending. Delivery rate = sent / (sent + failed)."
    ),
    columns=[
        Column("channel", "Channel"),
        Column("reminders", "Reminders", "reminders"),
        Column("sent", "Sent", "reminders"),
        Column("failed", "Failed", "reminders"),
        Column("suppressed", "Suppressed", "reminders"),
        Column("cancelled", "Cancelled", "reminders"),
        Column("pending", "Pending", "reminders"),
        Column("delivery_rate", "Delivery rate", "fraction 0..1"),
    ],
    chart=Chart(
        "bars",
        "channel",
        ("sent", "failed", "suppressed"),
        "Channel",
        "Reminders",
        rate="delivery_rate",
        names="channel",
        headline=(("delivery_rate", "Delivery rate"), ("reminders", "Reminders due"), ("failed", "Failed")),
        undefined="no reminder was sent or failed yet",
    ),
    summary_units={"delivery_rate": "fraction", "reminders": "reminders", "failed": "reminders"},
)
def reminder_delivery(ctx: Context) -> Result:
    day = utc_date(Reminder.due_at)
    buckets = {
        "sent": [ReminderStatus.SENT],
        "failed": [ReminderStatus.FAILED],
        "suppressed": [ReminderStatus.SUPPRESSED],
        "cancelled": [ReminderStatus.CANCELLED],
        "pending": [ReminderStatus.PENDING, ReminderStatus.SENDING],
    }
    stmt = (
        select(
            Reminder.channel,
            func.count(),
            *[func.sum(case((Reminder.status.in_(statuses), 1), else_=0)) for statuses in buckets.values()],
        )
        .join(Client, Client.id == Reminder.client_id)
        .where(
            day >= ctx.start,
            day <= ctx.end,
            ctx.scope.sites(Reminder.site_id),
            ctx.scope.caseload(Client.primary_clinician_id),
        )
        .group_by(Reminder.channel)
        .order_by(Reminder.channel)
    )
    rows = []
    for channel, total, *values in db.session.execute(stmt):
        row: dict[str, Any] = {
            "channel": getattr(channel, "value", channel),
            "reminders": as_int(total),
            **{k: as_int(n) for k, n in zip(buckets, values, strict=True)},
        }
        row["delivery_rate"] = rate(row["sent"], row["sent"] + row["failed"])
        rows.append(row)
    summary: dict[str, Any] = {k: sum(r[k] for r in rows) for k in ("reminders", *buckets)}
    summary["delivery_rate"] = rate(summary["sent"], summary["sent"] + summary["failed"])
    return Result(rows, summary)
