"""HTTP endpoints: appointments, series, the status machine and group attendance."""

from __future__ import annotations

from typing import Any

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from clinic.auth.operations import get_user_or_404
from clinic.auth.permissions import Permission, authenticated_user, require_site_in_scope, requires
from clinic.extensions import links
from clinic.scheduling import availability, groups
from clinic.scheduling import operations as ops
from clinic.scheduling.export import export_csv
from clinic.scheduling.loaders import load_appointment
from clinic.scheduling.models import Appointment, AppointmentAttendee, AppointmentStatus, AttendeeStatus
from clinic.scheduling.schemas import (
    AppointmentCreateSchema,
    AppointmentExportQuerySchema,
    AppointmentPageSchema,
    AppointmentPatchSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AttendanceSchema,
    AttendeeCreateSchema,
    AttendeeListSchema,
    AttendeeSchema,
    AvailabilityQuerySchema,
    AvailabilitySchema,
    CancelSchema,
    LateEntrySchema,
    ScopeArgsSchema,
    WorkingHoursSchema,
    WorkingHoursUpdateSchema,
)

blp = Blueprint("scheduling", __name__, url_prefix="/api/v1", description="Appointments and group sessions")

_CONFLICT = "Double booking (`clashes` names them), or a status change the machine does not allow"


#: What can be done with an appointment just booked (the links of its 201).
_APPOINTMENT_OPERATIONS = (
    "scheduling.get_appointment",
    "scheduling.update_appointment",
    "scheduling.cancel_appointment",
    "scheduling.confirm_appointment",
    "scheduling.check_in",
    "scheduling.complete",
    "scheduling.no_show",
    "scheduling.list_attendees",
    "scheduling.add_attendee",
    "notify.list_reminders",
)
_ATTENDEE = {"appointment_id": "$request.path.appointment_id", "client_id": "$response.body#/client_id"}


@blp.route("/appointments", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(AppointmentCreateSchema)
@blp.response(201, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
@blp.doc(**links(201, {"appointment_id": "$response.body#/id"}, *_APPOINTMENT_OPERATIONS))
def create_appointment(body: dict[str, Any]) -> Appointment:
    """Book an appointment, or a series (`recurrence`); a series answers with its first occurrence."""
    user = authenticated_user()
    require_site_in_scope(body["site_id"], user)
    return ops.book(actor=user, **body)


@blp.route("/appointments", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
@blp.arguments(AppointmentQuerySchema, location="query")
@blp.response(200, AppointmentPageSchema)
def list_appointments(args: dict[str, Any]) -> dict[str, Any]:
    """Appointments of the caller's sites in start order; `client_id` includes group seats."""
    return ops.list_appointments(authenticated_user(), **args).as_dict()


_CSV = {
    "200": {
        "description": "A header row, then one row per appointment in start order, streamed",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@blp.route("/appointments/export.csv", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
@blp.arguments(AppointmentExportQuerySchema, location="query")
@blp.doc(responses=_CSV)
def export_appointments(args: dict[str, Any]) -> Response:
    """Every appointment of the caller's sites (or `site_id`) starting in `from`..`to`, as CSV."""
    lines = export_csv(authenticated_user(), **args)
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="appointments.csv"'
    return response


@blp.route("/appointments/<int:appointment_id>", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
@blp.response(200, AppointmentSchema)
def get_appointment(appointment_id: int) -> Appointment:
    """One appointment."""
    return load_appointment(appointment_id, audit_read=True)


@blp.route("/appointments/<int:appointment_id>", methods=["PATCH"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(AppointmentPatchSchema)
@blp.arguments(ScopeArgsSchema, location="query")
@blp.response(200, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
def update_appointment(body: dict[str, Any], args: dict[str, Any], appointment_id: int) -> Appointment:
    """Reschedule or change an open appointment; `scope` for a series: this, following or all."""
    appointment = load_appointment(appointment_id)
    return ops.update(appointment, body, scope=args["scope"], actor=authenticated_user())


@blp.route("/appointments/<int:appointment_id>/cancel", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(CancelSchema)
@blp.arguments(ScopeArgsSchema, location="query")
@blp.response(200, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
def cancel_appointment(body: dict[str, Any], args: dict[str, Any], appointment_id: int) -> Appointment:
    """Cancel, by the client or the clinic; `scope` cancels the following or all open occurrences too.

    Once the appointment has ended, a cancellation is a late entry and needs `late_entry_reason`.
    """
    appointment = load_appointment(appointment_id)
    return ops.cancel(appointment, by=body["by"], reason=body.get("reason"), scope=args["scope"],
                      actor=authenticated_user(), late_entry_reason=body.get("late_entry_reason"))


def _transition(appointment_id: int, target: AppointmentStatus, body: dict[str, Any] | None = None) -> Appointment:
    return ops.transition(
        load_appointment(appointment_id),
        target,
        actor=authenticated_user(),
        late_entry_reason=(body or {}).get("late_entry_reason"),
    )


@blp.route("/appointments/<int:appointment_id>/confirm", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.response(200, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
def confirm_appointment(appointment_id: int) -> Appointment:
    """Record that the client confirmed (by phone, at the desk); confirming twice changes nothing."""
    return ops.confirm(load_appointment(appointment_id), actor=authenticated_user())


@blp.route("/appointments/<int:appointment_id>/check-in", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.response(200, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
def check_in(appointment_id: int) -> Appointment:
    """The client arrived (from an hour before the start until the end)."""
    return _transition(appointment_id, AppointmentStatus.CHECKED_IN)


@blp.route("/appointments/<int:appointment_id>/complete", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(LateEntrySchema, required=False)
@blp.response(200, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
def complete(body: dict[str, Any], appointment_id: int) -> Appointment:
    """The appointment took place: after check-in, or once it has ended with a `late_entry_reason`."""
    return _transition(appointment_id, AppointmentStatus.COMPLETED, body)


@blp.route("/appointments/<int:appointment_id>/no-show", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(LateEntrySchema, required=False)
@blp.response(200, AppointmentSchema)
@blp.alt_response(409, description=_CONFLICT)
def no_show(body: dict[str, Any], appointment_id: int) -> Appointment:
    """The client did not come (once it has begun; once it has ended, with a `late_entry_reason`)."""
    return _transition(appointment_id, AppointmentStatus.NO_SHOW, body)


@blp.route("/appointments/<int:appointment_id>/attendees", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
@blp.response(200, AttendeeListSchema)
def list_attendees(appointment_id: int) -> dict[str, list[AppointmentAttendee]]:
    """Every seat of a group session, with each attendee's status."""
    return {"items": groups.list_attendees(load_appointment(appointment_id))}


@blp.route("/appointments/<int:appointment_id>/attendees", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(AttendeeCreateSchema)
@blp.response(201, AttendeeSchema)
@blp.alt_response(409, description="Full, closed, already registered, or the client is booked at that time")
@blp.doc(**links(201, _ATTENDEE, "scheduling.cancel_attendee", "scheduling.record_attendance"))
def add_attendee(body: dict[str, Any], appointment_id: int) -> AppointmentAttendee:
    """Give a client a seat in a group session."""
    appointment = load_appointment(appointment_id)
    return groups.add_attendee(appointment, body["client_id"], actor=authenticated_user())


@blp.route("/appointments/<int:appointment_id>/attendees/<int:client_id>/cancel", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(CancelSchema)
@blp.response(200, AttendeeSchema)
@blp.alt_response(409, description=_CONFLICT)
def cancel_attendee(body: dict[str, Any], appointment_id: int, client_id: int) -> AppointmentAttendee:
    """A client gives up their seat (or the clinic takes it back)."""
    appointment = load_appointment(appointment_id)
    return groups.cancel_attendee(
        appointment, client_id, by=body["by"], reason=body.get("reason"), actor=authenticated_user()
    )


@blp.route("/appointments/<int:appointment_id>/attendees/<int:client_id>/attendance", methods=["POST"])
@requires(Permission.APPOINTMENTS_WRITE)
@blp.arguments(AttendanceSchema)
@blp.response(200, AttendeeSchema)
@blp.alt_response(409, description=_CONFLICT)
def record_attendance(body: dict[str, Any], appointment_id: int, client_id: int) -> AppointmentAttendee:
    """Record whether a registered client came: `attended` or `no_show`."""
    appointment = load_appointment(appointment_id)
    return groups.mark_attendance(
        appointment, client_id, status=AttendeeStatus(body["status"]), actor=authenticated_user()
    )


# --- availability and working hours -----------------------------------------------------------------


@blp.route("/availability", methods=["GET"])
@requires(Permission.SELF)
@blp.arguments(AvailabilityQuerySchema, location="query")
@blp.response(200, AvailabilitySchema)
def get_availability(args: dict[str, Any]) -> dict[str, Any]:
    """Free slots of `duration_minutes` at the site: inside each clinician's working hours, clear of every booking."""
    return {"slots": availability.free_slots(actor=authenticated_user(), **args)}


@blp.route("/users/<int:user_id>/working-hours", methods=["GET"])
@requires(Permission.SELF)
@blp.response(200, WorkingHoursSchema)
def get_working_hours(user_id: int) -> availability.WorkingWeek:
    """A clinician's weekly working hours (administrators, or the clinician themself)."""
    availability.require_working_hours_rights(authenticated_user(), user_id)
    return availability.working_week(get_user_or_404(user_id))


@blp.route("/users/<int:user_id>/working-hours", methods=["PUT"])
@requires(Permission.SELF)
@blp.arguments(WorkingHoursUpdateSchema)
@blp.response(200, WorkingHoursSchema)
def put_working_hours(body: dict[str, Any], user_id: int) -> availability.WorkingWeek:
    """Replace a clinician's weekly working hours (administrators, or the clinician themself)."""
    actor = authenticated_user()
    availability.require_working_hours_rights(actor, user_id)
    return availability.set_working_hours(get_user_or_404(user_id), actor=actor, **body)
