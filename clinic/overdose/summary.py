"""The chart's "Overdose prevention" card: naloxone last dispensed (or due) and the last overdose.

Answers ``client_summary`` with a :class:`clinic.clients.banner.ChartCard`; its reads are the
API's lists of naloxone dispenses and overdose events, audited as those are (``via: list``).
"""

from __future__ import annotations

from typing import Any

from clinic.auth.models import Site, User
from clinic.auth.permissions import Permission, has_permission
from clinic.clients.banner import ChartCard
from clinic.clients.models import Client
from clinic.core.signals import client_summary
from clinic.core.time import local_today
from clinic.extensions import db
from clinic.overdose import operations as ops


@client_summary.connect
def _overdose_card(client: Client, *, user: User, **_: Any) -> ChartCard | None:
    if not has_permission(user, Permission.CLINICAL_READ):
        return None
    on = local_today(db.session.get_one(Site, client.site_id).timezone)
    naloxone = ops.naloxone_status(ops.list_naloxone(client), on)  # audited naloxone_dispense.read
    events = ops.list_overdoses(client)  # newest first; audited overdose_event.read
    return ChartCard(
        title="Overdose prevention",
        template="overdose/_chart_card.html",
        values={"naloxone": naloxone, "last_event": events[0] if events else None, "events": len(events)},
    )
