"""The per-client FHIR export as a disclosure that cannot be forged or outrun: a GET that enters the
accounting of disclosures needs the session's CSRF token, and a revocation being committed holds the
export back until it is known (PostgreSQL, committed data)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.clients.models import Client, Consent, ConsentKind, Disclosure
from clinic.core.time import utcnow
from clinic.extensions import db
from tests.conftest import Session, committed_clinician, committed_postgres_app


def _consent_values(today: Any) -> dict[str, Any]:
    """A disclosure consent with every 42 CFR 2.31 element, signed ten days ago."""
    return {
        "kind": ConsentKind.DISCLOSURE,
        "patient_name": "The Client",
        "recipient": "Dr. A. Primary, MD",
        "purpose": "coordination of care",
        "information_description": "medications, plans, appointments, assessments and drug screens",
        "disclosing_party": "Riverside Recovery Center",
        "expires_on": today + timedelta(days=180),
        "signed_on": today - timedelta(days=10),
        "signature_name": "The Client",
        "revocation_acknowledged": True,
    }


def _new_client(http: Any, headers: dict[str, str], site_id: int) -> int:
    response = http.post(
        "/api/v1/clients?allow_duplicate=true",
        headers=headers,
        json={"site_id": site_id, "first_name": "Maria", "last_name": "Okafor", "date_of_birth": "1988-04-12"},
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def _disclosures(app: Flask, client_id: int) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(Disclosure.id).where(Disclosure.client_id == client_id)))


# --- a cookie session: the export is a write, it needs the CSRF token -------------------------------


@pytest.fixture
def signed_in(
    app: Flask, make_site: Callable[..., Site], make_user: Callable[..., User], login: Callable[..., Session]
) -> dict[str, Any]:
    site = make_site(name=f"Riverside {utcnow().timestamp()}")
    session = login(make_user("clinician", sites=[site]))
    client_id = _new_client(session.client, {"X-CSRF-Token": session.csrf_token}, site.id)
    with app.app_context():
        consent = Consent(client_id=client_id, site_id=site.id, **_consent_values(utcnow().date()))
        db.session.add(consent)
        db.session.commit()
        consent_id = consent.id
    return {
        "session": session,
        "client_id": client_id,
        "url": f"/api/v1/clients/{client_id}/fhir?consent_id={consent_id}",
    }


def test_a_session_export_without_the_csrf_token_is_refused_and_enters_nothing(
    app: Flask, signed_in: dict[str, Any]
) -> None:
    """A link on another site opened by a signed-in clinician (the cookie goes along) records no disclosure."""
    session: Session = signed_in["session"]
    for headers in ({}, {"X-CSRF-Token": "not the token"}):
        refused = session.client.get(signed_in["url"], headers=headers)
        assert refused.status_code == 403, refused.get_data(as_text=True)
        assert refused.mimetype == "application/problem+json"
        assert refused.get_json()["type"].endswith("/csrf")
        assert "entry" not in refused.get_json()
    assert _disclosures(app, signed_in["client_id"]) == []
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "access.denied", AuditEvent.client_id == signed_in["client_id"]
            )
        ).all()
        assert len(denied) == 2
        assert not db.session.scalars(select(AuditEvent).where(AuditEvent.action == "client.export")).all()


def test_a_session_export_with_the_csrf_token_is_made(app: Flask, signed_in: dict[str, Any]) -> None:
    session: Session = signed_in["session"]
    made = session.client.get(signed_in["url"], headers={"X-CSRF-Token": session.csrf_token})
    assert made.status_code == 200, made.get_data(as_text=True)
    assert made.get_json(force=True)["resourceType"] == "Bundle"
    assert len(_disclosures(app, signed_in["client_id"])) == 1


# --- a revocation committing while the export is asked for -------------------------------------------


@pytest.fixture(scope="module")
def committed() -> Iterator[dict[str, Any]]:
    with committed_postgres_app(connections=4) as app:
        site_id, _user_id, headers = committed_clinician(
            app, email="discloser@example.org", site_name="Parallel site", timezone="America/New_York"
        )
        yield {"app": app, "headers": headers, "site_id": site_id}


def test_an_export_asked_for_while_the_consent_is_being_revoked_waits_and_is_refused(committed: dict[str, Any]) -> None:
    app, headers = committed["app"], committed["headers"]
    client_id = _new_client(app.test_client(), headers, committed["site_id"])
    with app.app_context():
        client = db.session.get_one(Client, client_id)
        consent = Consent(client_id=client_id, site_id=client.site_id, **_consent_values(utcnow().date()))
        db.session.add(consent)
        db.session.commit()
        consent_id = consent.id
        db.session.remove()

    answers: list[Any] = []
    with app.app_context():
        # The revocation, written and not yet committed (its row is locked), as revoke_consent leaves it.
        revoking = db.engine.connect()
        revoking_tx = revoking.begin()
        revoking.execute(update(Consent).where(Consent.id == consent_id).values(revoked_at=utcnow()))

        def export() -> None:
            answers.append(
                app.test_client().get(f"/api/v1/clients/{client_id}/fhir?consent_id={consent_id}", headers=headers)
            )

        thread = threading.Thread(target=export)
        thread.start()
        thread.join(timeout=3)
        waited = thread.is_alive()
        revoking_tx.commit()
        revoking.close()
        thread.join(timeout=60)
    assert waited, "the export was made while the consent's revocation was being committed"
    (answer,) = answers
    assert answer.status_code == 403, answer.get_data(as_text=True)
    assert answer.get_json()["detail"] == "The consent was revoked."
    assert _disclosures(app, client_id) == []
