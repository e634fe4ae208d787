"""Disclosures of client records under a consent, and their accounting (42 CFR 2.24, 2.31)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from clinic.audit.models import Outcome
from clinic.audit.operations import record
from clinic.auth.models import User
from clinic.clients.models import Client, Consent, ConsentKind, Disclosure
from clinic.core.errors import abort_problem
from clinic.extensions import db


def _same(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def record_disclosure(
    client: Client,
    *,
    actor: User,
    consent_id: int,
    recipient: str,
    description: str,
    purpose: str,
    disclosed_at: datetime,
) -> Disclosure:
    """Log a disclosure; refused (403) unless a live consent of this client covers recipient and purpose."""
    consent = db.session.get(Consent, consent_id)
    reason = None
    if consent is None or consent.client_id != client.id or consent.kind is not ConsentKind.DISCLOSURE:
        reason = "There is no disclosure consent with this id for this client."
    elif consent.revoked_at is not None and consent.revoked_at <= disclosed_at:
        reason = "The consent was revoked."
    elif not consent.is_active_on(disclosed_at.date()) and consent.revoked_at is None:
        reason = "The consent had expired or was not yet signed."
    elif not _same(consent.recipient, recipient):
        reason = "The consent does not name this recipient."
    elif not _same(consent.purpose, purpose):
        reason = "The consent does not cover this purpose."
    if reason is not None:
        record(
            "disclosure.create",
            resource="disclosure",
            client_id=client.id,
            outcome=Outcome.DENIED,
            details={"consent_id": consent_id, "reason": reason},
        )
        abort_problem(403, reason, problem="disclosure-not-covered")
    if consent is None:  # pragma: no cover - every refusal above already stopped the request
        raise AssertionError("unreachable")
    disclosure = Disclosure(
        client_id=client.id,
        site_id=client.site_id,
        consent_id=consent.id,
        recipient=recipient.strip(),
        description=description,
        purpose=purpose.strip(),
        disclosed_at=disclosed_at,
        recorded_by_id=actor.id,
    )
    db.session.add(disclosure)
    db.session.flush()
    record(
        "disclosure.create",
        resource="disclosure",
        resource_id=disclosure.id,
        client_id=client.id,
        details={"consent_id": consent.id},
    )
    return disclosure


def accounting(client: Client) -> Sequence[Disclosure]:
    """Every disclosure of the client's records, oldest first."""
    record("disclosure.read", resource="disclosure", client_id=client.id, details={"via": "accounting"})
    return db.session.scalars(
        select(Disclosure).where(Disclosure.client_id == client.id).order_by(Disclosure.disclosed_at, Disclosure.id)
    ).all()
