"""HTTP endpoints of notifications."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.notify import staff
from clinic.notify.models import StaffNotification
from clinic.notify.schemas import StaffNotificationPageSchema, StaffNotificationQuerySchema, StaffNotificationSchema

blp = Blueprint("notify", __name__, url_prefix="/api/v1", description="Staff notifications")


@blp.route("/staff-notifications", methods=["GET"])
@requires(Permission.SELF)
@blp.arguments(StaffNotificationQuerySchema, location="query")
@blp.response(200, StaffNotificationPageSchema)
def list_staff_notifications(args: dict[str, Any]) -> dict[str, Any]:
    """The caller's own alerts, newest first; `unread=true` for those not yet read."""
    return staff.list_own(authenticated_user(), **args).as_dict()


@blp.route("/staff-notifications/<int:notification_id>/read", methods=["POST"])
@requires(Permission.SELF)
@blp.response(200, StaffNotificationSchema)
def read_staff_notification(notification_id: int) -> StaffNotification:
    """Mark one of the caller's alerts as read."""
    return staff.mark_read(authenticated_user(), notification_id)
