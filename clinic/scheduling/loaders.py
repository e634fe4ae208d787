"""Loaders of appointments for views in any package: scoped to the caller's sites, 404 otherwise."""

from __future__ import annotations

from clinic.auth.permissions import authenticated_user, get_scoped_or_404
from clinic.scheduling.models import Appointment


def load_appointment(appointment_id: int, *, audit_read: bool = False) -> Appointment:
    """The appointment, if it is in one of the caller's sites; 404 otherwise (see ``get_scoped_or_404``)."""
    return get_scoped_or_404(Appointment, appointment_id, authenticated_user(), audit_read=audit_read)
