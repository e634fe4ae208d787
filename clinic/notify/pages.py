"""Console pages for the signed-in user's staff notifications (alerts): read and acknowledge.

The list is the API's (``GET /staff-notifications``, audited the same way), in two parts: those
still to acknowledge, then those acknowledged. Mark read and Acknowledge are the API's
``POST /staff-notifications/{id}/read`` and ``/acknowledge``; with htmx the row is swapped and
says what happened.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, request, url_for

from clinic.audit.operations import audit
from clinic.auth.models import User
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    attempt,
    current_site,
    form_values,
    is_htmx,
    load_form,
    page,
    redirect_to,
)
from clinic.notify import staff
from clinic.notify.models import StaffNotification
from clinic.notify.schemas import AcknowledgeSchema

blp = ConsoleBlueprint("notify_pages", __name__)

#: Alerts to a page: the ones still to act on, and the acknowledged ones below them.
PAGE_SIZE = 25


def _zone() -> str:
    """Times on the alerts page are in the zone of the site the user works at now."""
    site = current_site()
    return str(site.timezone) if site is not None else "UTC"


def _cursor(name: str) -> str | None:
    value = request.args.get(name, "")
    return value if value and len(value) <= 512 else None


def _next_url(name: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    kept = {key: value for key, value in request.args.items() if key != name}
    return url_for("notify_pages.alerts") + "?" + urlencode({**kept, name: cursor})


@blp.route("/alerts", methods=["GET"])
@requires(Permission.SELF)
def alerts() -> Response:
    return _alerts_page(authenticated_user())


def _alerts_page(user: User, *, status: int = 200, refused: dict[int, FormErrors] | None = None,
                 values: dict[str, Any] | None = None) -> Response:
    unread, unacknowledged = staff.count_open(user)
    open_page = staff.list_own(user, limit=PAGE_SIZE, cursor=_cursor("cursor"), acknowledged=False)
    done_page = staff.list_own(user, limit=PAGE_SIZE, cursor=_cursor("done_cursor"), acknowledged=True)
    return page(
        "notify/alerts.html",
        status=status,
        tz=_zone(),
        unread=unread,
        unacknowledged=unacknowledged,
        open_alerts=open_page.items,
        open_next=_next_url("cursor", open_page.next_cursor),
        done_alerts=done_page.items,
        done_next=_next_url("done_cursor", done_page.next_cursor),
        refused=refused or {},
        values=values or {},
    )


@blp.route("/alerts/<int:notification_id>/read", methods=["POST"])
@requires(Permission.SELF)
def mark_read(notification_id: int) -> Response:
    """The API's mark read."""
    user = authenticated_user()
    return _after_change(user, staff.mark_read(user, notification_id), FormErrors())


@blp.route("/alerts/<int:notification_id>/acknowledge", methods=["POST"])
@requires(Permission.SELF)
def acknowledge(notification_id: int) -> Response:
    """The API's acknowledge, with the note typed (if any)."""
    user = authenticated_user()
    values = form_values()
    data, errors = load_form(AcknowledgeSchema(), values)
    if not errors:
        row, errors = attempt(staff.acknowledge, user, notification_id, note=data.get("note"))
    if errors:
        row = staff.get_own(user, notification_id)
    return _after_change(user, row, errors, values)


def _after_change(
    user: User, row: StaffNotification, errors: FormErrors, values: dict[str, Any] | None = None
) -> Response:
    """htmx: the row, saying what happened or why not. A form post: back to the list, or the list with the errors."""
    if is_htmx():
        if errors and row.client_id is not None:
            # The alert shown again with its errors is a read of it (it names a client), as mark read's is.
            audit("read", row)
        unread, unacknowledged = staff.count_open(user)
        return page("notify/alert_row.html", alert=row, tz=_zone(), errors=errors, values=values or {},
                    unread=unread, unacknowledged=unacknowledged)
    if not errors:
        return redirect_to(url_for("notify_pages.alerts") + f"#alert-{row.id}")
    return _alerts_page(user, status=422, refused={row.id: errors}, values=values)
