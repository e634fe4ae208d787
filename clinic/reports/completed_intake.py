"""Completed appointments, as the intake funnel and IET count them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from clinic.core.sql import utc_date
from clinic.scheduling.models import (
    Appointment,
    AppointmentAttendee,
    AppointmentKind,
    AppointmentStatus,
    AttendeeStatus,
)


def completed_intake_assessment(client_id_column: Any) -> Any:
    """Whether the client completed an intake-assessment appointment."""
    return exists().where(
        Appointment.client_id == client_id_column,
        Appointment.kind == AppointmentKind.INTAKE_ASSESSMENT,
        Appointment.status == AppointmentStatus.COMPLETED,
    )


def completed_appointment_days() -> list[Any]:
    """``SELECT client_id, day`` of completed appointments and attended group sessions."""
    individual = select(Appointment.client_id.label("client_id"), utc_date(Appointment.starts_at).label("day")).where(
        Appointment.client_id.is_not(None), Appointment.status == AppointmentStatus.COMPLETED
    )
    group = (
        select(AppointmentAttendee.client_id, utc_date(Appointment.starts_at))
        .join(Appointment, Appointment.id == AppointmentAttendee.appointment_id)
        .where(AppointmentAttendee.status == AttendeeStatus.ATTENDED)
    )
    return [individual, group]
