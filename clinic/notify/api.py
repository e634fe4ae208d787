"""HTTP endpoints of notifications: staff alerts, client reminders, the provider's SMS webhook."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from xml.sax.saxutils import escape

from flask import Response, current_app, request
from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, public, requires
from clinic.clients.loaders import load_client
from clinic.core.errors import abort_problem
from clinic.notify import reminders, staff
from clinic.notify.delivery import delivery_log
from clinic.notify.inbound import handle_inbound
from clinic.notify.models import Reminder, StaffNotification
from clinic.notify.schemas import (
    AcknowledgeSchema,
    InboundSmsSchema,
    NotificationLogPageSchema,
    NotificationQuerySchema,
    PreferencesInputSchema,
    PreferencesSchema,
    ReminderSchema,
    StaffNotificationPageSchema,
    StaffNotificationQuerySchema,
    StaffNotificationSchema,
)
from clinic.notify.sms import signature_is_valid
from clinic.scheduling.loaders import load_appointment

blp = Blueprint(
    "notify", __name__, url_prefix="/api/v1", description="Staff notifications, client reminders and the SMS webhook"
)
F = TypeVar("F", bound=Callable[..., Any])


@blp.route("/staff-notifications", methods=["GET"])
@requires(Permission.SELF)
@blp.arguments(StaffNotificationQuerySchema, location="query")
@blp.response(200, StaffNotificationPageSchema)
def list_staff_notifications(args: dict[str, Any]) -> dict[str, Any]:
    """The caller's own alerts, newest first; `unread=true` for those not yet read, `acknowledged=false` to act on."""
    return staff.list_own(authenticated_user(), **args).as_dict()


@blp.route("/staff-notifications/<int:notification_id>/read", methods=["POST"])
@requires(Permission.SELF)
@blp.response(200, StaffNotificationSchema)
def read_staff_notification(notification_id: int) -> StaffNotification:
    """Mark one of the caller's alerts as read."""
    return staff.mark_read(authenticated_user(), notification_id)


@blp.route("/staff-notifications/<int:notification_id>/acknowledge", methods=["POST"])
@requires(Permission.SELF)
@blp.arguments(AcknowledgeSchema, required=False)
@blp.response(200, StaffNotificationSchema)
def acknowledge_staff_notification(body: dict[str, Any], notification_id: int) -> StaffNotification:
    """Acknowledge one of the caller's alerts (it was dealt with; it is read too); again changes nothing."""
    return staff.acknowledge(authenticated_user(), notification_id, note=body.get("note"))


@blp.route("/clients/<int:client_id>/notification-preferences", methods=["GET"])
@requires(Permission.CLIENTS_READ)
@blp.response(200, PreferencesSchema)
def get_notification_preferences(client_id: int) -> dict[str, Any]:
    """How the client is reminded (the defaults until preferences are saved)."""
    return reminders.read_preferences(load_client(client_id))


@blp.route("/clients/<int:client_id>/notification-preferences", methods=["PUT"])
@requires(Permission.CLIENTS_WRITE)
@blp.arguments(PreferencesInputSchema)
@blp.response(200, PreferencesSchema)
def put_notification_preferences(body: dict[str, Any], client_id: int) -> dict[str, Any]:
    """Replace the client's preferences; reminders of coming appointments are re-planned at once."""
    return reminders.save_preferences(load_client(client_id), actor=authenticated_user(), **body)


@blp.route("/appointments/<int:appointment_id>/reminders", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
@blp.response(200, ReminderSchema(many=True))
def list_reminders(appointment_id: int) -> list[Reminder]:
    """The appointment's reminders: one per client, channel and lead time, with their state."""
    return reminders.list_for_appointment(load_appointment(appointment_id))


@blp.route("/notifications", methods=["GET"])
@requires(Permission.APPOINTMENTS_READ)
@blp.arguments(NotificationQuerySchema, location="query")
@blp.response(200, NotificationLogPageSchema)
def list_notifications(args: dict[str, Any]) -> dict[str, Any]:
    """The delivery log: every send outcome and inbound text in the caller's sites, newest first."""
    return delivery_log(authenticated_user(), **args).as_dict()


def provider_signed(view: F) -> F:
    """Refuse (403) a webhook call without the provider's valid signature, before reading its body."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        query = request.query_string.decode("utf-8", "replace")
        url = f"{base}{request.path}" + (f"?{query}" if query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        params = list(request.form.items(multi=True))
        if not signature_is_valid(url, params, signature, current_app.config["SMS_AUTH_TOKEN"]):
            abort_problem(403, "The request does not carry the provider's valid signature.", problem="bad-signature")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _twiml(reply: str | None) -> Response:
    message = f"<Message>{escape(reply)}</Message>" if reply else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{message}</Response>'
    return Response(body, status=200, mimetype="text/xml")


@blp.route("/notify/sms/inbound", methods=["POST"])
@public
@provider_signed
@blp.arguments(InboundSmsSchema, location="form")
@blp.response(200, content_type="text/xml", description="TwiML: the reply to send back, if any")
def inbound_sms(form: dict[str, Any]) -> Response:
    """The SMS provider's webhook (Twilio's signature): STOP opts out, START back in, YES confirms."""
    reply = handle_inbound(from_number=form["From"], body=form.get("Body", ""), message_sid=form.get("MessageSid"))
    return _twiml(reply)
