"""A client's record as a FHIR Bundle, disclosed under one of the client's Part 2 consents.

The disclosure is recorded first (``clinic.clients.disclosures.record_disclosure``, which refuses
with a 403 a consent that is missing, of another client, revoked, expired or not yet signed), so
nothing of the record is read under a consent that does not cover it. The consent's row is held
(``FOR SHARE``) until the export commits, so a revocation and an export never overlap. The Bundle is a
``collection``: every resource of the client from every source (``clinic.fhir.sources.walk``), each
checked and labelled; the Bundle itself carries the labels and the 42 CFR 2.32 notice in
``meta`` (docs/fhir.md says why there).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from clinic.audit.operations import record
from clinic.auth.models import User
from clinic.clients.disclosures import record_disclosure
from clinic.clients.models import Client, Consent
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.fhir.labels import SECURITY_LABELS, fhir_base, notice_extension
from clinic.fhir.sources import Scope, walk
from clinic.fhir.validate import check


def client_bundle(client: Client, *, actor: User, consent_id: int) -> dict[str, Any]:
    """The client's record as a Bundle for the recipient of ``consent_id``; the disclosure and the export recorded."""
    # The consent is read locked (FOR SHARE, PostgreSQL) and as committed: a revocation being
    # written holds the export back until it commits, and is then seen; one asked for during the
    # export waits for it, so the accounting never shows a disclosure after the consent's revocation.
    consent = db.session.get(Consent, consent_id, with_for_update={"read": True}, populate_existing=True)
    now = utcnow()
    # The consent's own recipient and purpose: the checks below refuse any other consent first.
    disclosure = record_disclosure(
        client,
        actor=actor,
        consent_id=consent_id,
        recipient=(consent.recipient if consent is not None else None) or "",
        purpose=(consent.purpose if consent is not None else None) or "",
        description="FHIR R4 export of the client's record",
        disclosed_at=now,
    )
    base = fhir_base()
    entries: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for _source, resource in walk(Scope(client_id=client.id, consent_id=consent_id)):
        kind = resource["resourceType"]
        entries.append({"fullUrl": f"{base}/{kind}/{resource['id']}", "resource": resource})
        counts[kind] += 1
    sent = ", ".join(f"{kind} ({count})" for kind, count in counts.items())
    disclosure.description = f"FHIR R4 export of the client's record: {sent}"
    record(
        "client.export",
        resource="client",
        resource_id=client.id,
        client_id=client.id,
        details={
            "format": "fhir-r4-bundle",
            "consent_id": consent_id,
            "disclosure_id": disclosure.id,
            "resources": dict(counts),
        },
    )
    bundle_id = str(uuid.uuid4())
    shell: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {
            "security": [dict(label) for label in SECURITY_LABELS],
            "extension": [notice_extension()],
        },
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "collection",
        "timestamp": now.isoformat(),
    }
    check(shell)  # the entries were checked one by one on their way in
    return {**shell, "entry": entries}
