"""Loaders of clients for views in any package: scoped to the caller's sites, 404 otherwise."""

from __future__ import annotations

from clinic.auth.permissions import authenticated_user, get_scoped_or_404
from clinic.clients.models import Client


def load_client(client_id: int, *, audit_read: bool = False) -> Client:
    """The client, if it is in one of the caller's sites; 404 otherwise (see ``get_scoped_or_404``)."""
    return get_scoped_or_404(Client, client_id, authenticated_user(), audit_read=audit_read)
