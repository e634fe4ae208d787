"""Text messages from clients, as the provider's webhook delivers them.

``STOP`` (and the carriers' other opt-out words) opts the number out of SMS; ``START`` or
``UNSTOP`` opts it back in; ``YES`` confirms the sender's next appointment (and, as at Twilio,
also opts back in); ``HELP`` answers with what the messages are. Anything else is a reply a
person should read: it becomes a staff notification for the client's clinician.
"""

from __future__ import annotations

import re
from datetime import datetime

from clinic.audit.operations import record
from clinic.auth.models import Site
from clinic.clients.models import Client
from clinic.core.phones import try_e164
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.notify.messages import MessageContext, render
from clinic.notify.models import LogDirection, LogStatus, NotificationLogEntry, ReminderChannel, StaffNotificationKind
from clinic.notify.reminders import clients_at, mask, opt_back_in, opt_out, preferences_for
from clinic.notify.staff import notify_staff
from clinic.scheduling import client_answers

#: The carriers' standard opt-out words (CTIA); providers act on them too.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
YES_WORDS = frozenset({"YES", "Y", "SI", "SÍ"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})


def keyword(body: str) -> str:
    """The message as a keyword: the first word, upper-cased, without punctuation."""
    words = re.sub(r"[^\w\s]", " ", body).split()
    return words[0].upper() if len(words) == 1 else ""


def _context(client: Client, starts_at: datetime | None = None) -> MessageContext:
    """What a reply may say to ``client``: their site's name and, for a confirmation, the time."""
    prefs = preferences_for(client)
    site = db.session.get_one(Site, client.site_id)
    return MessageContext(
        site=site.display_name, starts_at=starts_at or utcnow(), zone=prefs.timezone, language=prefs.language
    )


def _log(clients: list[Client], word: str, phone: str | None, message_sid: str | None) -> None:
    """One log entry per client the number reaches (one without a client for a stranger)."""
    known = OPT_OUT_WORDS | OPT_IN_WORDS | YES_WORDS | HELP_WORDS
    senders: list[Client | None] = [*clients] or [None]
    for client in senders:
        db.session.add(
            NotificationLogEntry(
                direction=LogDirection.INBOUND,
                channel=ReminderChannel.SMS,
                status=LogStatus.RECEIVED,
                site_id=client.site_id if client else None,
                client_id=client.id if client else None,
                destination=mask(ReminderChannel.SMS, phone) if phone else None,
                detail=word.lower() if word in known else "reply",
                provider_message_id=(message_sid or "")[:100] or None,
            )
        )


def handle_inbound(*, from_number: str, body: str, message_sid: str | None) -> str | None:
    """Act on one inbound text; return the reply to send back, if any."""
    phone = try_e164(from_number)
    clients = [db.session.get_one(Client, cid) for cid in clients_at(ReminderChannel.SMS, phone)] if phone else []
    word = keyword(body)
    _log(clients, word, phone, message_sid)
    if phone is None:
        return None
    if word in OPT_OUT_WORDS:
        for client_id in opt_out(ReminderChannel.SMS, phone, source="sms_keyword"):
            record("notify.opt_out", resource="client", resource_id=client_id, client_id=client_id,
                   details={"channel": "sms", "via": "sms keyword"})
        return None  # the carrier confirms the opt-out itself
    if word in OPT_IN_WORDS | YES_WORDS:
        opt_back_in(ReminderChannel.SMS, phone)
    if not clients:
        return None
    if word in YES_WORDS:
        return _confirm_next(clients)
    template = "reply_resubscribed.txt" if word in OPT_IN_WORDS else "reply_help.txt" if word in HELP_WORDS else None
    if template is None:
        _tell_clinicians(clients, body)
        return None
    return render(template, _context(clients[0]))


def _confirm_next(clients: list[Client]) -> str:
    """YES: confirm the soonest coming appointment of the clients at this number."""
    found = client_answers.next_open_for_clients([c.id for c in clients])
    if found is None:
        return render("reply_nothing_to_confirm.txt", _context(clients[0]))
    appointment, client_id = found
    client_answers.confirm_by_client(appointment, client_id, via="sms")
    client = db.session.get_one(Client, client_id)
    return render("reply_confirmed.txt", _context(client, appointment.starts_at))


def _tell_clinicians(clients: list[Client], body: str) -> None:
    """A reply a person should read: a staff notification for each client's clinician."""
    for client in clients:
        if client.primary_clinician_id is not None:
            notify_staff(
                client.primary_clinician_id,
                kind=StaffNotificationKind.CLIENT_REPLY,
                title="A client replied to a text reminder",
                body=f"Client {client.mrn} wrote: {body[:1000]}",
                client_id=client.id,
                resource="client",
                resource_id=client.id,
            )
