"""Loaders of clients for views in any package: scoped to the caller's sites, 404 otherwise."""

from __future__ import annotations

from collections.abc import Iterable

from clinic.auth.models import User
from clinic.auth.permissions import authenticated_user, get_scoped_or_404, scoped_select
from clinic.clients.models import Client
from clinic.extensions import db


def load_client(client_id: int, *, audit_read: bool = False) -> Client:
    """The client, if it is in one of the caller's sites; 404 otherwise (see ``get_scoped_or_404``)."""
    return get_scoped_or_404(Client, client_id, authenticated_user(), audit_read=audit_read)


def clients_by_id(user: User, client_ids: Iterable[int]) -> dict[int, Client]:
    """The clients named by rows a page shows (appointments, calls), within the user's sites, in one query.

    Not audited here: their names are part of the rows' own reads, which name these clients.
    """
    wanted = sorted(set(client_ids))
    if not wanted:
        return {}
    rows = db.session.scalars(scoped_select(Client, user).where(Client.id.in_(wanted)))
    return {client.id: client for client in rows}
