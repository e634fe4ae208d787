"""``Idempotency-Key``: a POST sent again after a dropped connection creates nothing a second time.

The headline test runs a real HTTP server, sends a keyed POST over a raw socket, resets the
connection once the request has committed (so the client never sees the answer), and sends
the same request again: one client, one appointment, one drug screen exist, and the retry gets
the first answer, marked ``Idempotent-Replayed: true``. Before, the retry created a second
client and a second appointment, and re-recorded the screen with another status (200).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text, update
from werkzeug.serving import make_server

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.clients.models import Client
from clinic.core.celery import beat_schedule
from clinic.core.idempotency import IdempotencyKey, key_digest, lock_id
from clinic.extensions import db
from clinic.plans.models import DrugScreen
from clinic.scheduling.models import Appointment
from tests.appointments_setup import Practice, at, build_practice

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


@pytest.fixture
def practice(
    client: FlaskClient,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def _count(app: Flask, model: type[Any], *where: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _new_client_body(practice: Practice, last_name: str) -> dict[str, Any]:
    return {"site_id": practice.site.id, "first_name": "Rosa", "last_name": last_name, "date_of_birth": "1991-03-04"}


def _call_body(practice: Practice) -> dict[str, Any]:
    return {
        "site_id": practice.site.id,
        "direction": "inbound",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "caller_name": "Sam Ortiz",
        "caller_relation": "self",
        "callback_phone": "(212) 555-0134",
        "referral_source": "emergency department",
        "reason": "wants to start buprenorphine",
        "outcome": "assessment_scheduled",
    }


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    return body


# --- a real server, a dropped connection, a retry --------------------------------------------------


@dataclass
class LiveServer:
    """clinic served over HTTP on 127.0.0.1; records each answer as the app produced it."""

    port: int
    #: Set when the app has finished a request (its unit of work committed) and before the answer is sent.
    finished: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    live = LiveServer(port=0)

    def recording(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        statuses: list[str] = []

        def remember_status(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        # Flask ends the request (commit, teardown) before it returns; the body is sent afterwards.
        body = b"".join(app(environ, remember_status))
        live.answers.append((statuses[0], body))
        live.finished.set()
        return [body]

    # One request at a time: a retry is served once the first request has finished.
    server = make_server("127.0.0.1", 0, recording, threaded=False)
    live.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, name="live-clinic", daemon=True)
    thread.start()
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _send_and_drop(live: LiveServer, path: str, body: bytes, headers: dict[str, str]) -> None:
    """Send a POST over a raw socket and reset the connection once the server has committed it."""
    live.finished.clear()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{live.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        assert live.finished.wait(timeout=30), "the server never finished the request"
        # What a dropped connection looks like to the server: a reset, the answer never read.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def _send(live: LiveServer, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def _client_body(practice: Practice) -> dict[str, Any]:
    return _new_client_body(practice, "Retry-" + uuid.uuid4().hex[:8])


def _appointment_body(practice: Practice) -> dict[str, Any]:
    return {
        "site_id": practice.site.id,
        "kind": "individual_therapy",
        "clinician_id": practice.clinician.id,
        "client_id": practice.ada["id"],
        "starts_at": at(days=4).isoformat(),
        "duration_minutes": 60,
    }


def _screen_body(_practice: Practice) -> dict[str, Any]:
    return {"collected_at": at(hours=-2).isoformat(), "results": {"fentanyl": "negative"}}


CREATES = {
    "client": ("/api/v1/clients", _client_body, Client, lambda p, b: Client.last_name == b["last_name"]),
    "appointment": (
        "/api/v1/appointments",
        _appointment_body,
        Appointment,
        lambda p, b: Appointment.client_id == p.ada["id"],
    ),
    "drug screen": (
        "/api/v1/clients/{ada}/drug-screens",
        _screen_body,
        DrugScreen,
        lambda p, b: DrugScreen.client_id == p.ada["id"],
    ),
}


@pytest.mark.parametrize("what", list(CREATES))
def test_a_retry_after_the_connection_dropped_past_the_commit_creates_nothing_more(
    app: Flask, practice: Practice, live_server: LiveServer, what: str
) -> None:
    path_template, make_body, model, mine = CREATES[what]
    path = path_template.format(ada=practice.ada["id"])
    body = make_body(practice)
    raw = json.dumps(body).encode()
    headers = {**practice.headers, KEY: f"retry-{what.replace(' ', '-')}-{uuid.uuid4()}"}
    before = _count(app, model, mine(practice, body))

    _send_and_drop(live_server, path, raw, headers)
    (first_status, first_body), = live_server.answers
    assert first_status.startswith("201"), (first_status, first_body)
    assert _count(app, model, mine(practice, body)) == before + 1  # committed, though the client never saw it

    status, replayed, response_headers = _send(live_server, path, raw, headers)
    assert (status, replayed) == (201, first_body)
    assert response_headers[REPLAYED] == "true"
    assert response_headers["Content-Type"] == "application/json"
    assert _count(app, model, mine(practice, body)) == before + 1
    # And again: the same answer as long as the key is kept.
    assert _send(live_server, path, raw, headers)[:2] == (201, first_body)
    assert _count(app, model, mine(practice, body)) == before + 1


# --- the rules, through the test client ------------------------------------------------------------


def test_a_repeat_returns_the_first_answer_and_creates_nothing(app: Flask, practice: Practice) -> None:
    body = _new_client_body(practice, "Once")
    headers = {**practice.headers, KEY: "register-rosa-once"}
    first = practice.http.post("/api/v1/clients", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    assert REPLAYED not in first.headers
    # The same content with its keys in another order is the same request.
    again = practice.http.post("/api/v1/clients", json=dict(reversed(body.items())), headers=headers)
    assert (again.status_code, again.get_data()) == (201, first.get_data())
    assert again.headers[REPLAYED] == "true"
    assert again.headers["Cache-Control"] == "no-store"
    assert _count(app, Client, Client.last_name == "Once") == 1


def test_the_same_key_with_another_body_is_422_and_creates_nothing(app: Flask, practice: Practice) -> None:
    headers = {**practice.headers, KEY: "register-rosa"}
    first = practice.http.post("/api/v1/clients", json=_new_client_body(practice, "First"), headers=headers)
    assert first.status_code == 201
    other = practice.http.post("/api/v1/clients", json=_new_client_body(practice, "Second"), headers=headers)
    assert list(_problem(other, 422)["errors"]) == [KEY]
    query = practice.http.post(
        "/api/v1/clients?allow_duplicate=true", json=_new_client_body(practice, "First"), headers=headers
    )
    assert list(_problem(query, 422)["errors"]) == [KEY]
    assert _count(app, Client, Client.last_name == "Second") == 0
    assert _count(app, Client, Client.last_name == "First") == 1


def test_a_key_belongs_to_one_user_and_one_path(app: Flask, practice: Practice) -> None:
    key = {KEY: "shared-key"}
    body = _new_client_body(practice, "Mine")
    assert practice.http.post("/api/v1/clients", json=body, headers={**practice.headers, **key}).status_code == 201
    theirs = practice.http.post(
        "/api/v1/clients",
        json=_new_client_body(practice, "Theirs"),
        headers={**practice.colleague_headers, **key},
    )
    assert theirs.status_code == 201, theirs.get_json()
    assert REPLAYED not in theirs.headers
    call = practice.http.post("/api/v1/intake-calls", json=_call_body(practice), headers={**practice.headers, **key})
    assert call.status_code == 201, call.get_json()
    assert REPLAYED not in call.headers


@pytest.mark.parametrize("key", ["", "two words", "x" * 256, "tab\tkey", "clé"])
def test_a_malformed_key_is_422_naming_it(app: Flask, practice: Practice, key: str) -> None:
    body = _new_client_body(practice, "Malformed")
    response = practice.http.post("/api/v1/clients", json=body, headers={**practice.headers, KEY: key})
    assert list(_problem(response, 422)["errors"]) == [KEY]
    assert _count(app, Client, Client.last_name == "Malformed") == 0


def test_the_longest_key_is_taken(practice: Practice) -> None:
    headers = {**practice.headers, KEY: "~" * 255}
    response = practice.http.post("/api/v1/clients", json=_new_client_body(practice, "Longest"), headers=headers)
    assert response.status_code == 201, response.get_json()


def test_a_refused_request_keeps_nothing_so_the_key_can_be_sent_again(app: Flask, practice: Practice) -> None:
    headers = {**practice.headers, KEY: "fix-and-retry"}
    body = _new_client_body(practice, "Fixed")
    refused = practice.http.post("/api/v1/clients", json={**body, "date_of_birth": "1800-01-01"}, headers=headers)
    _problem(refused, 422)
    accepted = practice.http.post("/api/v1/clients", json=body, headers=headers)
    assert accepted.status_code == 201, accepted.get_json()
    assert REPLAYED not in accepted.headers
    assert _count(app, Client, Client.last_name == "Fixed") == 1


def test_signed_out_posts_ignore_the_key(client: FlaskClient, practice: Practice) -> None:
    body = {"email": practice.clinician.email, "password": "wrong-password-entirely"}
    for _ in range(2):
        response = client.post("/api/v1/auth/login", json=body, headers={KEY: "sign-in"})
        _problem(response, 401)
        assert REPLAYED not in response.headers


def test_an_answer_holding_a_secret_is_never_kept(
    app: Flask, practice: Practice, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new API token is shown once: its view is declared not replayable and refuses the key.
    headers = {**practice.headers, KEY: "new-token"}
    response = practice.http.post("/api/v1/auth/tokens", json={"name": "laptop"}, headers=headers)
    assert list(_problem(response, 422)["errors"]) == [KEY]
    assert practice.http.post("/api/v1/auth/tokens", json={"name": "laptop"}, headers=practice.headers).status_code == 201
    assert _count(app, IdempotencyKey, IdempotencyKey.key == "new-token") == 0


def test_a_replay_is_audited_as_a_read_of_what_it_hands_back(app: Flask, practice: Practice) -> None:
    headers = {**practice.headers, KEY: "plan-for-ada"}
    url = f"/api/v1/clients/{practice.ada['id']}/plans"
    first = practice.http.post(url, json={"problems": []}, headers=headers)
    assert first.status_code == 201, first.get_json()
    again = practice.http.post(url, json={"problems": []}, headers=headers)
    assert again.headers[REPLAYED] == "true"
    with app.app_context():
        (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "request.replay")).all()
    assert (event.user_id, event.client_id, event.resource) == (practice.clinician.id, practice.ada["id"], "endpoint")
    assert event.details == {"method": "POST", "path": url, "status": 201}


def test_an_expired_key_is_forgotten(app: Flask, practice: Practice) -> None:
    headers = {**practice.headers, KEY: "call-log"}
    body = _call_body(practice)
    first = practice.http.post("/api/v1/intake-calls", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    with app.app_context():
        stored = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "call-log")).one()
        assert stored.expires_at - stored.created_at == timedelta(hours=24)
        db.session.execute(
            update(IdempotencyKey).where(IdempotencyKey.id == stored.id).values(expires_at=datetime.now(UTC))
        )
        db.session.commit()
    second = practice.http.post("/api/v1/intake-calls", json=body, headers=headers)
    assert second.status_code == 201, second.get_json()
    assert REPLAYED not in second.headers
    assert second.get_json()["id"] != first.get_json()["id"]
    assert practice.http.post("/api/v1/intake-calls", json=body, headers=headers).headers[REPLAYED] == "true"


def test_expired_keys_are_purged_hourly_under_the_job_lock(app: Flask, practice: Practice) -> None:
    from clinic.core.tasks import purge_idempotency_keys

    for key in ("old", "fresh"):
        response = practice.http.post(
            "/api/v1/intake-calls", json=_call_body(practice), headers={**practice.headers, KEY: key}
        )
        assert response.status_code == 201
    with app.app_context():
        db.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "old")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.session.commit()
        assert purge_idempotency_keys.apply().get() == 1
    remaining = _count(app, IdempotencyKey, IdempotencyKey.key.in_(["old", "fresh"]))
    assert remaining == 1
    entry = beat_schedule(app)["core.purge_idempotency_keys"]
    assert entry["task"] == purge_idempotency_keys.name
    assert entry["schedule"] == 3600.0


def test_a_repeat_while_the_first_still_runs_is_409(app: Flask, practice: Practice, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: there the stored answer's unique key decides")
    key = "still-running"
    with app.app_context():
        user_id = practice.clinician.id
        url = db.session.get_bind().engine.url
    digest = key_digest("POST", "/api/v1/clients", key)
    other = create_engine(url)
    try:
        with other.connect() as first_request:  # the first request, holding its key
            first_request.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock_id(user_id, digest)})
            body = _new_client_body(practice, "Running")
            response = practice.http.post("/api/v1/clients", json=body, headers={**practice.headers, KEY: key})
            _problem(response, 409)
            assert response.headers["Retry-After"] == "1"
            first_request.rollback()
    finally:
        other.dispose()
    assert _count(app, Client, Client.last_name == "Running") == 0
    response = practice.http.post(
        "/api/v1/clients", json=_new_client_body(practice, "Running"), headers={**practice.headers, KEY: key}
    )
    assert response.status_code == 201, response.get_json()
