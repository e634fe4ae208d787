"""Tell other domains that a client's ways of being contacted changed.

Reminders (clinic.notify) depend on a client's phone, email and communication consents; clients
does not import notify, so notify registers a listener here, as domains register timeline
sources. Listeners run inside the unit of work that made the change.
"""

from __future__ import annotations

from collections.abc import Callable

ContactListener = Callable[[int], None]
_LISTENERS: list[ContactListener] = []


def on_contact_change(func: ContactListener) -> ContactListener:
    """Register a function called with the client's id after a change to their contact details."""
    _LISTENERS.append(func)
    return func


def contact_changed(client_id: int) -> None:
    for listener in _LISTENERS:
        listener(client_id)
