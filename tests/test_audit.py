"""The audit trail: what is recorded, who may read it, and that tampering is detected."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from clinic.audit.anchors import anchor_head
from clinic.audit.keys import key_id, keyring
from clinic.audit.models import AuditEvent
from clinic.audit.operations import seal_pending, verify_chain
from clinic.core.locks import job_lock
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


# --- the keyed chain and its anchors -------------------------------------------------------------

GUESSED_KEY = b"what an attacker without the key would try"


@pytest.fixture
def anchor_file(app, tmp_path, monkeypatch):
    """Anchors go to a file of the test's own (as by default in development and production)."""
    path = tmp_path / "anchors.jsonl"
    monkeypatch.setitem(app.config, "AUDIT_ANCHOR_TARGET", f"file:{path}")
    return path


def _failed_logins(client, user, count):
    for _ in range(count):
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-wrong-wrong"})


def _sealed_rows():
    return db.session.scalars(select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq)).all()


def _recompute(from_seq, *, key, key_id=None, keep_key_ids=False):
    """What an attacker with write access to the database does: recompute every hash from ``from_seq`` on."""
    from clinic.audit.operations import content_hash

    db.session.expire_all()  # read the rows as they are now, edits included
    prev_hash = ""
    for row in _sealed_rows():
        if row.seq >= from_seq:
            new_hash = content_hash(row, prev_hash, key)
            db.session.execute(
                text("UPDATE audit_events SET prev_hash = :prev, hash = :hash, key_id = :key_id WHERE id = :id"),
                {"prev": prev_hash, "hash": new_hash, "key_id": row.key_id if keep_key_ids else key_id, "id": row.id},
            )
            prev_hash = new_hash
        else:
            prev_hash = row.hash


def _verify(app, *args):
    return app.test_cli_runner().invoke(args=["audit", "verify", *args])


@pytest.mark.parametrize(
    ("rewrite", "from_start"),
    [
        pytest.param({"key": None, "keep_key_ids": True}, False, id="sha256-keeping-the-key-ids"),
        pytest.param({"key": GUESSED_KEY, "keep_key_ids": True}, False, id="a-guessed-key"),
        pytest.param({"key": None, "key_id": None}, False, id="sha256-as-if-sealed-before-keying"),
        pytest.param({"key": None, "key_id": None}, True, id="the-whole-chain-as-if-sealed-before-keying"),
    ],
)
def test_an_edit_is_detected_even_when_every_hash_after_it_is_recomputed_without_the_key(
    app, client, make_user, backend, anchor_file, rewrite, from_start
):
    first_altered = _edit_and_recompute(app, client, make_user, backend, rewrite, from_start=from_start)
    # The rewritten chain is consistent with itself: only the key (and the anchor of where keying
    # began) tell it apart from the real one.
    result = _verify(app)
    assert result.exit_code == 1, result.output
    assert "ALTERED" in result.output
    assert f"entry {first_altered}" in result.output


def test_the_same_rewrite_with_the_key_would_pass_so_the_key_is_what_detects_it(app, client, make_user, backend):
    """The control for the test above: its attacker's rewrite is otherwise complete."""
    with app.app_context():
        real_key = keyring().current
    _edit_and_recompute(app, client, make_user, backend, {"key": real_key, "keep_key_ids": True}, from_start=False)
    result = _verify(app)
    assert result.exit_code == 0, result.output


def _edit_and_recompute(app, client, make_user, backend, rewrite, *, from_start):
    """Seal a few entries, change one, recompute the hashes as ``rewrite`` says; the first entry rewritten."""
    user = make_user("admin")
    _failed_logins(client, user, 4)
    with app.app_context():
        seal_pending()
        rows = _sealed_rows()
        assert {row.key_id for row in rows} == {keyring().current_id}
        target_id, target_seq = next((row.id, row.seq) for row in rows if row.user_id == user.id and row.seq > 1)
        first_id = rows[0].id if from_start else target_id
        _disable_guard(backend)
        db.session.execute(text("UPDATE audit_events SET outcome = 'success' WHERE id = :id"), {"id": target_id})
        _recompute(1 if from_start else target_seq, **rewrite)
        db.session.commit()
        assert db.session.scalar(select(AuditEvent.outcome).where(AuditEvent.id == target_id)) == "success"
    return first_id


def test_an_untouched_keyed_chain_verifies(app, client, make_user, anchor_file):
    user = make_user("admin")
    _failed_logins(client, user, 3)
    with app.app_context():
        seal_pending()
        rows = _sealed_rows()
    # Not the plain SHA-256 of the content: an HMAC under the configured key.
    with app.app_context():
        from clinic.audit.operations import content_hash

        assert rows[0].hash == content_hash(rows[0], "", keyring().current)
        assert rows[0].hash != content_hash(rows[0], "", None)
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert f"{len(rows)} entries verified" in result.output


def test_cutting_entries_off_the_end_after_an_anchor_is_detected(app, client, make_user, backend, anchor_file):
    user = make_user("admin")
    _failed_logins(client, user, 4)
    runner = app.test_cli_runner()
    with app.app_context():
        seal_pending()
        head = _sealed_rows()[-1]
    anchored = runner.invoke(args=["audit", "anchor"])
    assert anchored.exit_code == 0, anchored.output
    assert f"anchored sequence {head.seq}" in anchored.output
    ok = _verify(app)
    assert ok.exit_code == 0 and "anchors" in ok.output, ok.output
    with app.app_context():
        _disable_guard(backend)
        db.session.execute(text("DELETE FROM audit_events WHERE seq >= :seq"), {"seq": head.seq - 1})
        db.session.commit()
        assert verify_chain().broken is None  # without the anchor, a shorter chain looks whole
    result = _verify(app)
    assert result.exit_code == 1, result.output
    assert f"sequence {head.seq} was anchored" in result.output
    assert "removed from its end" in result.output


def test_an_anchor_is_a_json_line_with_the_head_and_a_rewrite_up_to_it_is_detected(
    app, client, make_user, backend, anchor_file
):
    user = make_user("admin")
    _failed_logins(client, user, 3)
    with app.app_context():
        seal_pending()
        assert anchor_head() is not None
        head = _sealed_rows()[-1]
    lines = [json.loads(line) for line in anchor_file.read_text().splitlines()]
    # The first, written by the first keyed seal: the chain was empty when keying began.
    assert (lines[0]["seq"], lines[0]["hash"], lines[0]["key_id"]) == (0, "", None)
    assert (lines[-1]["seq"], lines[-1]["hash"], lines[-1]["key_id"]) == (head.seq, head.hash, head.key_id)
    assert set(lines[-1]) == {"seq", "hash", "anchored_at", "key_id", "database"}
    # Someone holding the key rewrites the head entry: its anchor still tells.
    with app.app_context():
        _disable_guard(backend)
        db.session.execute(text("UPDATE audit_events SET ip = '203.0.113.9' WHERE seq = :seq"), {"seq": head.seq})
        _recompute(head.seq, key=keyring().current, keep_key_ids=True)
        db.session.commit()
        assert verify_chain().broken is None
    result = _verify(app)
    assert result.exit_code == 1
    assert "differs from the one anchored" in result.output


def test_anchors_written_to_the_log_are_checked_from_its_lines(app, client, make_user, backend, tmp_path, monkeypatch):
    import logging

    monkeypatch.setitem(app.config, "AUDIT_ANCHOR_TARGET", "log")
    user = make_user("admin")
    _failed_logins(client, user, 3)
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(f"2026-11-24 01:00:00 [{record.levelname}] {record.name}: {record.getMessage()}")

    handler = Keep()
    logging.getLogger("clinic.audit.anchor").addHandler(handler)
    try:
        with app.app_context():
            seal_pending()
        assert app.test_cli_runner().invoke(args=["audit", "anchor"]).exit_code == 0
    finally:
        logging.getLogger("clinic.audit.anchor").removeHandler(handler)
    log_file = tmp_path / "worker.log"
    log_file.write_text("\n".join(["[INFO] worker ready", *logged, "[INFO] task succeeded"]) + "\n")
    assert _verify(app, "--anchors", str(log_file)).exit_code == 0
    with app.app_context():
        _disable_guard(backend)
        db.session.execute(text("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)"))
        db.session.commit()
    result = _verify(app, "--anchors", str(log_file))
    assert result.exit_code == 1
    assert "removed from its end" in result.output
    # A line that starts like an anchor and is not one is refused, never skipped.
    log_file.write_text('{"seq": 3, "hash"\n')
    assert _verify(app, "--anchors", str(log_file)).exit_code == 2


def test_anchors_of_another_database_are_not_held_against_this_one(app, client, make_user, anchor_file):
    user = make_user("admin")
    _failed_logins(client, user, 2)
    anchor_file.write_text(
        json.dumps({"seq": 10**9, "hash": "0" * 64, "anchored_at": "2026-01-01T00:00:00+00:00", "key_id": None,
                    "database": "clinic_bench"}) + "\n"
    )
    with app.app_context():
        seal_pending()
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert "1 anchors of other databases skipped" in result.output


def test_rotating_the_key_old_entries_verify_under_the_old_key_new_ones_under_the_new(
    app, client, make_user, monkeypatch, anchor_file
):
    user = make_user("admin")
    old_key = app.config["AUDIT_CHAIN_KEY"]
    new_key = "a-new-audit-chain-key-of-at-least-32-characters"
    _failed_logins(client, user, 2)
    with app.app_context():
        seal_pending()
        old_id = keyring().current_id
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", new_key)
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEYS", old_key)
    _failed_logins(client, user, 2)
    with app.app_context():
        seal_pending()
        new_id = keyring().current_id
        ids = [row.key_id for row in _sealed_rows()]
    assert new_id == key_id(new_key) != old_id == key_id(old_key)
    assert old_id in ids and ids[-1] == new_id
    assert ids == sorted(ids, key=lambda kid: kid == new_id)  # the old key's entries, then the new key's
    result = _verify(app)
    assert result.exit_code == 0, result.output
    # Without the retired key, its entries cannot be checked: said, not passed.
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEYS", "")
    result = _verify(app)
    assert result.exit_code == 1
    assert f"key {old_id}, which is not configured" in result.output


def test_entries_sealed_before_keying_still_verify_as_the_start_of_the_chain(
    app, client, make_user, backend, anchor_file
):
    """A database upgraded from the unkeyed chain: its old entries have no key id and a plain SHA-256."""
    from clinic.audit.operations import content_hash

    user = make_user("admin")
    _failed_logins(client, user, 3)
    with app.app_context():
        # Sealed as the version before keying did (the guard allows exactly this update).
        prev_hash = ""
        unsealed = db.session.scalars(select(AuditEvent).where(AuditEvent.hash.is_(None)).order_by(AuditEvent.id))
        for seq, row in enumerate(unsealed.all(), start=1):
            row_hash = content_hash(row, prev_hash, None)
            db.session.execute(
                text("UPDATE audit_events SET seq = :seq, prev_hash = :prev, hash = :hash WHERE id = :id"),
                {"seq": seq, "prev": prev_hash, "hash": row_hash, "id": row.id},
            )
            prev_hash = row_hash
        db.session.commit()
        legacy = len(_sealed_rows())
    _failed_logins(client, user, 2)
    with app.app_context():
        seal_pending()
        rows = _sealed_rows()
    assert [row.key_id is None for row in rows] == [True] * legacy + [False] * (len(rows) - legacy)
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert f"the first {legacy} sealed before the chain was keyed" in result.output
    # Where keying began was anchored: keyed entries cannot be passed off as older, unkeyed ones.
    first_anchor = json.loads(anchor_file.read_text().splitlines()[0])
    assert (first_anchor["seq"], first_anchor["hash"]) == (legacy, rows[legacy - 1].hash)
    with app.app_context():
        _disable_guard(backend)
        db.session.execute(text("UPDATE audit_events SET outcome = 'success' WHERE seq = :seq"), {"seq": legacy + 1})
        _recompute(legacy + 1, key=None, key_id=None)
        db.session.commit()
    result = _verify(app)
    assert result.exit_code == 1
    assert "sealed without a key" in result.output


def test_beat_anchors_the_chain_daily_under_a_lock(app, client, make_user, anchor_file, tmp_path, monkeypatch):
    from celery.schedules import crontab

    celery = app.extensions["celery"]
    entries = [e for e in celery.conf.beat_schedule.values() if e["task"] == "clinic.audit.tasks.anchor_audit_chain"]
    assert len(entries) == 1
    assert isinstance(entries[0]["schedule"], crontab)
    assert entries[0]["schedule"].hour == {app.config["AUDIT_ANCHOR_HOUR_UTC"]}
    celery.loader.import_default_modules()
    task = celery.tasks["clinic.audit.tasks.anchor_audit_chain"]
    monkeypatch.setitem(app.config, "CELERY_DATA_DIR", str(tmp_path / "broker"))
    user = make_user("admin")
    _failed_logins(client, user, 2)
    with app.app_context():
        seal_pending()
        head = _sealed_rows()[-1]
        assert task.run() == head.seq
        with job_lock("audit.anchor"):
            assert task.run() is None  # another run holds the lock: no second writer
    assert json.loads(anchor_file.read_text().splitlines()[-1])["seq"] == head.seq


@pytest.mark.parametrize(
    ("chain_key", "complaint"),
    [
        pytest.param("", "AUDIT_CHAIN_KEY", id="missing"),
        pytest.param("too-short", "AUDIT_CHAIN_KEY", id="short"),
        pytest.param("s" * 40, "differ from SECRET_KEY", id="the-secret-key"),
    ],
)
def test_production_refuses_to_start_without_an_audit_chain_key(database_urls, chain_key, complaint):
    from clinic import create_app
    from config import ConfigError

    settings = {"SECRET_KEY": "s" * 40, "SQLALCHEMY_DATABASE_URI": database_urls("sqlite")}
    with pytest.raises(ConfigError, match=complaint):
        create_app("production", {**settings, "AUDIT_CHAIN_KEY": chain_key})
    assert create_app("production", {**settings, "AUDIT_CHAIN_KEY": "k" * 40}).config["AUDIT_CHAIN_KEY"] == "k" * 40


# --- reads that were not audited ----------------------------------------------------------------


def test_reading_plan_suggestions_is_audited_naming_the_client_and_the_assessments(app, client, make_site, make_user,
                                                                                   bearer):
    site = make_site()
    clinician = make_user("clinician", sites=[site])
    headers = bearer(clinician)
    person = client.post("/api/v1/clients", headers=headers, json={
        "site_id": site.id, "first_name": "Maya", "last_name": "Reed", "date_of_birth": "1991-03-03",
    }).get_json()
    url = f"/api/v1/clients/{person['id']}"
    assessment = client.post(f"{url}/assessments", headers=headers, json={
        "instrument": "DSM5-OUD", "answers": {f"c{i}": i <= 5 for i in range(1, 12)},
        "administered_at": datetime.now(UTC).isoformat(),
    }).get_json()
    assert client.post(f"/api/v1/assessments/{assessment['id']}/sign", headers=headers).status_code == 200
    with app.app_context():
        before = db.session.scalar(select(func.max(AuditEvent.id))) or 0
    response = client.get(f"{url}/plan-suggestions", headers=headers)
    assert response.status_code == 200
    assert [s["source_assessment_id"] for s in response.get_json()] == [assessment["id"]]
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.id > before)).all()
        seen = [(e.action, e.client_id, e.user_id, e.details) for e in events]
    assert seen == [
        ("assessment.read", person["id"], clinician.id, {"via": "plan-suggestions", "ids": [assessment["id"]]})
    ]
