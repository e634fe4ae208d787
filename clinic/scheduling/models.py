"""Appointments, the series they may belong to, and the attendees of group sessions.

Double booking is refused in code (``operations.find_clashes``) on every database and, on
PostgreSQL, also by two exclusion constraints that migration 0005 adds (they cannot be
declared portably here): ``ex_appointments_clinician_overlap`` over
``(clinician_id, tstzrange(starts_at, ends_at))`` and ``ex_appointments_client_overlap`` over
``(client_id, tstzrange(starts_at, ends_at))``, both for rows whose status still holds the time.
"""

from __future__ import annotations

import enum
from datetime import datetime, time, timedelta

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column


class AppointmentKind(enum.StrEnum):
    INTAKE_ASSESSMENT = "intake_assessment"
    INDIVIDUAL_THERAPY = "individual_therapy"
    GROUP_THERAPY = "group_therapy"
    MEDICATION_VISIT = "medication_visit"
    PEER_SUPPORT = "peer_support"
    DRUG_SCREEN = "drug_screen"
    PLAN_REVIEW = "plan_review"


class AppointmentStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    CANCELLED_BY_CLIENT = "cancelled_by_client"
    CANCELLED_BY_CLINIC = "cancelled_by_clinic"
    NO_SHOW = "no_show"


#: Statuses in which an appointment may still be moved, confirmed or cancelled, and is reminded.
OPEN_STATUSES = frozenset({AppointmentStatus.SCHEDULED, AppointmentStatus.CONFIRMED})
#: Statuses that give the time back: they never clash with another booking.
RELEASED_STATUSES = frozenset(
    {AppointmentStatus.CANCELLED_BY_CLIENT, AppointmentStatus.CANCELLED_BY_CLINIC, AppointmentStatus.NO_SHOW}
)
#: The longest an appointment may last (the API refuses longer); clash queries rely on it.
MAX_APPOINTMENT_LENGTH = timedelta(hours=12)
#: The SQL list of RELEASED_STATUSES, for the exclusion constraints' WHERE clause.
RELEASED_SQL = ", ".join(f"'{status.value}'" for status in sorted(RELEASED_STATUSES))


class AttendeeStatus(enum.StrEnum):
    REGISTERED = "registered"
    CONFIRMED = "confirmed"
    ATTENDED = "attended"
    NO_SHOW = "no_show"
    CANCELLED_BY_CLIENT = "cancelled_by_client"
    CANCELLED_BY_CLINIC = "cancelled_by_clinic"


#: Attendees who still hold a seat and are reminded.
OPEN_ATTENDEE_STATUSES = frozenset({AttendeeStatus.REGISTERED, AttendeeStatus.CONFIRMED})
#: Attendees who hold (or held) a seat: they count against capacity and clash with other bookings.
SEATED_ATTENDEE_STATUSES = frozenset(
    {AttendeeStatus.REGISTERED, AttendeeStatus.CONFIRMED, AttendeeStatus.ATTENDED}
)


class AppointmentSeries(TimestampMixin, Base):
    """A recurring appointment: the rule that made its occurrences (which are ordinary rows)."""

    __tablename__ = "appointment_series"
    __audit_resource__ = "appointment_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"), index=True)
    #: The RFC 5545 RRULE as given (normalised), evaluated in ``timezone`` from the first start.
    recurrence: Mapped[str] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))
    #: The series this one was split from by an edit of "this and following" occurrences.
    split_from_id: Mapped[int | None] = mapped_column(ForeignKey("appointment_series.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Appointment(TimestampMixin, Base):
    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint(
            "(is_group AND client_id IS NULL AND capacity >= 1) OR (NOT is_group AND client_id IS NOT NULL)",
            name="group_or_individual",
        ),
        Index("ix_appointments_site_id_starts_at", "site_id", "starts_at", "id"),
        Index("ix_appointments_clinician_id_starts_at", "clinician_id", "starts_at"),
        Index("ix_appointments_client_id_starts_at", "client_id", "starts_at"),
        Index("ix_appointments_series_id_starts_at", "series_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    series_id: Mapped[int | None] = mapped_column(ForeignKey("appointment_series.id", ondelete="SET NULL"))
    kind: Mapped[AppointmentKind] = enum_column(AppointmentKind, name="appointment_kind")
    #: A group session: attendees are rows of ``appointment_attendees``, ``client_id`` is null.
    is_group: Mapped[bool] = mapped_column(Boolean, default=False)
    clinician_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    #: The client of an individual appointment.
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: IANA zone the appointment is kept in (the site's unless chosen); series repeat in it.
    timezone: Mapped[str] = mapped_column(String(64))
    #: Seats of a group session.
    capacity: Mapped[int | None] = mapped_column(Integer)
    location: Mapped[str | None] = mapped_column(String(200))
    telehealth_url: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[AppointmentStatus] = enum_column(AppointmentStatus, name="appointment_status")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the client was recorded as not having come.
    no_show_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    #: Why the outcome (completed, no-show, cancelled) was recorded only after the appointment ended.
    late_entry_reason: Mapped[str | None] = mapped_column(String(500))
    late_entry_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: When the late entry was made (the appointment had ended by then).
    late_entry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: iCalendar SEQUENCE: goes up each time the time changes, so calendars update the event.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    series: Mapped[AppointmentSeries | None] = relationship(lazy="joined")
    #: Seats of a group session (every status, in registration order).
    attendees: Mapped[list[AppointmentAttendee]] = relationship(
        order_by="AppointmentAttendee.id", lazy="selectin", cascade="all, delete-orphan"
    )

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def audit_client_ids(self) -> tuple[int, ...]:
        """The clients whose record this appointment is part of: its client, or a group's seated attendees."""
        if self.client_id is not None:
            return (self.client_id,)
        return tuple(a.client_id for a in self.attendees if a.status in SEATED_ATTENDEE_STATUSES)


class AppointmentAttendee(TimestampMixin, Base):
    """A client's seat in a group session, with their own attendance."""

    __tablename__ = "appointment_attendees"
    __table_args__ = (
        UniqueConstraint("appointment_id", "client_id"),
        Index("ix_appointment_attendees_client_id", "client_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    #: The client's site (the session's), copied so attendees are scoped without a join.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    status: Mapped[AttendeeStatus] = enum_column(AttendeeStatus, name="attendee_status")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    #: When attendance (attended or no-show) was recorded.
    marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ATTENDEE_STATUSES


class WorkingHours(TimestampMixin, Base):
    """One weekly stretch of a clinician's working time at a site: Monday 09:00-17:00 at site 3.

    A clinician with no rows works the default week (``DEFAULT_WORKING_WEEK``) at each of their sites.
    """

    __tablename__ = "working_hours"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_monday_to_sunday"),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        Index("ix_working_hours_user_id_weekday", "user_id", "weekday"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    #: 0 = Monday ... 6 = Sunday (Python's ``date.weekday()``).
    weekday: Mapped[int] = mapped_column(Integer)
    #: Wall-clock times in ``timezone`` (or the site's zone when it is null); the end is exclusive.
    start_time: Mapped[time] = mapped_column(Time())
    end_time: Mapped[time] = mapped_column(Time())
    #: IANA zone the times are in; null: the site's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))


#: The working week of a clinician who has set none: Monday to Friday, 09:00-17:00 in the site's zone.
DEFAULT_WORKING_WEEK: tuple[tuple[int, time, time], ...] = tuple((day, time(9), time(17)) for day in range(5))
