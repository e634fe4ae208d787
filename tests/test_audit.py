"""The audit trail: what is recorded, who may read it, and that tampering is detected."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from clinic.audit.models import AuditEvent
from clinic.audit.operations import seal_pending, verify_chain
from clinic.extensions import db
from tests.conftest import PASSWORD


def _events(app, **filters):
    with app.app_context():
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        for key, value in filters.items():
            stmt = stmt.where(getattr(AuditEvent, key) == value)
        rows = db.session.scalars(stmt).all()
        return [(r.action, r.outcome.value, r.user_id, r.resource, r.resource_id, r.ip, r.details) for r in rows]


def test_sign_in_events_are_recorded_with_outcome_and_address(app, client, make_user):
    user = make_user("admin")
    client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": "wrong-wrong-wrong"},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    client.post(
        "/api/v1/auth/login",
        json={"email": "ghost@example.org", "password": "wrong-wrong-wrong"},
        environ_base={"REMOTE_ADDR": "192.0.2.8"},
    )
    response = client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "192.0.2.9"},
    )
    csrf = response.get_json()["csrf_token"]
    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    events = _events(app)
    assert [(a, o, u, ip) for a, o, u, _r, _rid, ip, _d in events] == [
        ("auth.login", "failure", user.id, "192.0.2.7"),
        ("auth.login", "failure", None, "192.0.2.8"),
        ("auth.login", "success", user.id, "192.0.2.9"),
        ("auth.logout", "success", user.id, "192.0.2.9"),
    ]
    assert events[0][6] == {"reason": "wrong_password"}
    assert events[1][6] == {"email": "ghost@example.org", "reason": "unknown_email"}


def test_lockout_is_recorded(app, client, make_user):
    user = make_user("admin")
    for _ in range(10):
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    actions = [a for a, *_ in _events(app, user_id=user.id)]
    assert actions.count("auth.login") == 10
    assert actions[-1] == "auth.lockout"


def test_user_role_and_token_changes_are_recorded(app, client, bearer, make_user, make_site):
    site = make_site()
    admin = make_user("admin")
    headers = bearer(admin)
    created = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "email": "nurse@example.org",
            "name": "Nurse",
            "role": "intake",
            "site_ids": [site.id],
            "password": "long enough and rare",
        },
    ).get_json()
    client.patch(f"/api/v1/users/{created['id']}", headers=headers, json={"role": "clinician"})
    token = client.post("/api/v1/auth/tokens", headers=headers, json={"name": "sync"}).get_json()
    client.delete(f"/api/v1/auth/tokens/{token['id']}", headers=headers)
    events = _events(app, user_id=admin.id)
    by_action = {a: (res, rid, d) for a, _o, _u, res, rid, _ip, d in events}
    assert by_action["user.create"][:2] == ("user", str(created["id"]))
    assert by_action["user.update"][2]["role"] == {"from": "intake", "to": "clinician"}
    assert by_action["token.create"][:2] == ("api_token", str(token["id"]))
    assert by_action["token.revoke"][:2] == ("api_token", str(token["id"]))
    # The token itself never reaches the audit trail.
    assert token["token"] not in repr(events)


def test_a_failed_request_keeps_its_failure_events_but_not_its_writes(app, login, make_user):
    user = make_user("admin")
    session = login(user)
    response = session.post(
        "/api/v1/auth/password", json={"current_password": "not the password", "new_password": "another long phrase"}
    )
    assert response.status_code == 422
    assert ("auth.password_change", "failure") in [(a, o) for a, o, *_ in _events(app, user_id=user.id)]


def test_only_admins_read_the_audit_trail(client, bearer, make_user, make_site):
    site = make_site()
    clinician = make_user("clinician", sites=[site])
    assert client.get("/api/v1/audit-events", headers=bearer(clinician)).status_code == 403
    assert client.get("/api/v1/audit-events").status_code == 401


def test_audit_events_api_filters_and_pages_newest_first(app, client, bearer, make_user):
    admin = make_user("admin")
    other = make_user("admin")
    for _ in range(3):
        client.post("/api/v1/auth/login", json={"email": other.email, "password": "wrong-wrong-wrong"})
    headers = bearer(admin)
    first = client.get(f"/api/v1/audit-events?user_id={other.id}&action=auth.login&limit=2", headers=headers)
    assert first.status_code == 200
    page = first.get_json()
    assert len(page["items"]) == 2
    assert page["items"][0]["id"] > page["items"][1]["id"]
    assert set(page["items"][0]) >= {"at", "user_id", "action", "resource", "resource_id", "client_id", "outcome", "ip"}
    rest = client.get(
        f"/api/v1/audit-events?user_id={other.id}&action=auth.login&limit=2&cursor={page['next_cursor']}",
        headers=headers,
    ).get_json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    bad = client.get("/api/v1/audit-events?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", headers=headers)
    assert bad.status_code == 422
    assert "to" in bad.get_json()["errors"]


def test_chain_verifies_and_the_cli_says_so(app, client, make_user):
    user = make_user("admin")
    for _ in range(3):
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    with app.app_context():
        before = verify_chain()
        assert before.unsealed >= 3  # written without a lock; not chained yet
        assert seal_pending() == before.unsealed
        result = verify_chain()
    assert result.broken is None
    assert result.unsealed == 0
    assert result.checked >= 3
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output


def _disable_guard(backend):
    if backend == "postgresql":
        db.session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update"))
    else:
        db.session.execute(text("DROP TRIGGER audit_events_no_update"))
        db.session.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_altering_an_entry_is_detected_and_named(app, client, make_user, backend):
    user = make_user("admin")
    for _ in range(4):
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    with app.app_context():
        seal_pending()
        ids = db.session.scalars(
            select(AuditEvent.id).where(AuditEvent.user_id == user.id).order_by(AuditEvent.id)
        ).all()
        target = ids[1]
        _disable_guard(backend)
        db.session.execute(text("UPDATE audit_events SET outcome = 'success' WHERE id = :id"), {"id": target})
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"entry {target}" in result.output
    assert "altered" in result.output


def test_deleting_an_entry_is_detected(app, client, make_user, backend):
    user = make_user("admin")
    for _ in range(4):
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    with app.app_context():
        seal_pending()
        ids = db.session.scalars(
            select(AuditEvent.id).where(AuditEvent.user_id == user.id).order_by(AuditEvent.id)
        ).all()
        _disable_guard(backend)
        db.session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"entry {ids[2]}" in result.output


def test_the_database_refuses_to_change_audit_rows(app, client, make_user):
    user = make_user("admin")
    client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    with app.app_context():
        row_id = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc())).first()
        for statement in (
            "UPDATE audit_events SET action = 'x' WHERE id = :id",
            "DELETE FROM audit_events WHERE id = :id",
        ):
            with pytest.raises(DBAPIError), db.session.begin_nested():
                db.session.execute(text(statement), {"id": row_id})


def test_sealing_chains_entries_in_order_with_a_gap_free_sequence(app, client, make_user):
    user = make_user("admin")
    for _ in range(3):
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    with app.app_context():
        assert seal_pending() >= 3
        assert seal_pending() == 0  # nothing left: sealing twice changes nothing
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert all(r.prev_hash == (rows[i - 1].hash if i else "") for i, r in enumerate(rows))


def test_the_database_allows_only_the_sealing_update(app, client, make_user):
    user = make_user("admin")
    client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    with app.app_context():
        row_id = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc())).first()
        # An unsealed row cannot have its content changed on the way to being sealed...
        with pytest.raises(DBAPIError), db.session.begin_nested():
            db.session.execute(text("UPDATE audit_events SET action = 'x', seq = 999999, prev_hash = '', hash = 'h' "
                                    "WHERE id = :id"), {"id": row_id})
        seal_pending()
        # ...and a sealed row cannot be sealed again.
        with pytest.raises(DBAPIError), db.session.begin_nested():
            db.session.execute(text("UPDATE audit_events SET hash = 'forged' WHERE id = :id"), {"id": row_id})


def test_the_seal_cli(app, client, make_user):
    user = make_user("admin")
    client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})
    runner = app.test_cli_runner()
    assert "await sealing" in runner.invoke(args=["audit", "verify"]).output
    sealed = runner.invoke(args=["audit", "seal"])
    assert sealed.exit_code == 0
    assert sealed.output.startswith("sealed ")
    assert "await sealing" not in runner.invoke(args=["audit", "verify"]).output


def test_a_unit_of_works_events_are_written_together_field_for_field(app):
    """Many events, nulls and non-ASCII details: each row holds exactly what was recorded, and seals."""
    from clinic.audit.models import Outcome
    from clinic.audit.operations import record

    recorded = [
        ("client.read", "client", "17", 17, Outcome.SUCCESS, {"via": "search", "q": "Muñoz Ørsted 東京"}),
        ("report.run", "report", None, None, Outcome.FAILURE, None),
        ("access.denied", "client", "18", 18, Outcome.DENIED, {"nested": {"list": [1, 2.5, None, True]}}),
    ] * 7
    with app.test_request_context(environ_base={"REMOTE_ADDR": "198.51.100.4"}):
        before = db.session.scalar(select(text("coalesce(max(id), 0)")).select_from(AuditEvent))
        for action, resource, resource_id, client_id, outcome, details in recorded:
            record(action, resource=resource, resource_id=resource_id, client_id=client_id, outcome=outcome,
                   details=details)
        db.session.commit()
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.id > before).order_by(AuditEvent.id)).all()
        stored = [(r.action, r.resource, r.resource_id, r.client_id, r.outcome, r.details) for r in rows]
        assert stored == recorded
        assert {r.ip for r in rows} == {"198.51.100.4"}
        assert {r.user_id for r in rows} == {None}
        assert all(r.at.tzinfo is not None and r.hash is None for r in rows)
        assert [r.at for r in rows] == sorted(r.at for r in rows)
        assert seal_pending() >= len(recorded)
        assert verify_chain().broken is None
