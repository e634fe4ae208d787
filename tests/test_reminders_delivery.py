"""Reminders delivered by real parts: a Celery worker (with its embedded beat) on Redis, an SMTP
server (aiosmtpd), and the database — PostgreSQL when the suite has one, else SQLite.

Each test books appointments over HTTP as staff would, lets beat's dispatcher and the worker do
their work, and reads what the SMTP server received and what the API reports. The worker runs
with short intervals (dispatch every second, a claim lost after 8 s, a 1 s backoff) so each
story takes seconds. The broker is a Redis database of its own, emptied before and after, so
other suites' workers and their Redis database are never disturbed.
"""

from __future__ import annotations

import asyncio
import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from clinic import create_app
from clinic.auth import operations as auth_ops
from clinic.auth.models import Role
from clinic.extensions import db
from config import BASE_DIR
from tests.conftest import TempPostgres, postgres_base_url
from tests.test_celery_worker import _celery_default_app_kept, _wait_until

pytestmark = pytest.mark.slow

WORKER_READY_SECONDS = 30
STUCK_AFTER_SECONDS = 8
#: How long to wait for something that should happen within a few dispatch cycles.
PATIENCE = 40


# --- the SMTP server -----------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message, and can hold one conversation at RCPT."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    recipients_seen: int = 0
    #: Hold the conversation at this RCPT (1-based count over the server's life) until released.
    hold_at: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        with self.lock:
            self.recipients_seen += 1
            number = self.recipients_seen
        if number == self.hold_at:
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def reminder_ids(self) -> list[int]:
        """The reminder each received message was for (from its Message-ID), in arrival order."""
        with self.lock:
            return [int(str(m["Message-ID"]).split("-")[1]) for m in self.messages]


class SmtpServer:
    """aiosmtpd on a fixed local port that can be taken down and brought back."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# --- the worker ----------------------------------------------------------------------------------


class Worker:
    """``celery -A wsgi.celery_app worker -B`` as a process group of its own."""

    def __init__(self, env: dict[str, str], tmp_path: Path, celery: Any) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.celery = celery
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file: IO[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        hostname = f"clinic-reminders-{uuid.uuid4().hex[:8]}@localhost"
        self.log_file = (self.tmp_path / f"worker-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "wsgi.celery_app", "worker", "--beat",
                f"--schedule={self.tmp_path / 'beat-schedule'}", "--pool=solo", "--loglevel=INFO",
                f"--hostname={hostname}", "--without-mingle", "--without-gossip",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers_ping() -> bool:
            assert self.process is not None and self.process.poll() is None, f"the worker exited:\n{self.log()}"
            return bool(self.celery.control.ping(destination=[hostname], timeout=0.5))

        assert _wait_until(answers_ping, seconds=WORKER_READY_SECONDS), f"the worker never answered:\n{self.log()}"

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a pulled plug would: no shutdown, no acks."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log_file is not None:
            self.log_file.close()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp_path.glob("worker-*.log")))


# --- the stack -----------------------------------------------------------------------------------


def _private_redis(url: str) -> str:
    """The same Redis server, another database: this suite never touches the shared one's queue."""
    parts = urlsplit(url)
    own = "13" if parts.path.strip("/") == "14" else "14"
    return urlunsplit(parts._replace(path=f"/{own}"))


@dataclass
class Stack:
    app: Flask
    http: FlaskClient
    headers: dict[str, str]
    site_id: int
    clinician_ids: list[int]
    mailbox: Mailbox
    smtp: SmtpServer
    worker: Worker
    broker: redis.Redis
    sms_file: Path

    def register(self, name: str, *, email_address: str | None = None, phone: str | None = None,
                 channels: tuple[str, ...] = ("email",)) -> int:
        """A client with consents and preferences: reminded one minute ahead, no quiet hours."""
        body = {"site_id": self.site_id, "first_name": name, "last_name": "Test", "date_of_birth": "1980-01-01",
                "email": email_address or f"{name.lower()}@example.org"}
        if phone:
            body["phone"] = phone
        created = self.http.post("/api/v1/clients", headers=self.headers, json=body)
        assert created.status_code == 201, created.get_json()
        client_id: int = created.get_json()["id"]
        today = datetime.now(UTC).date().isoformat()
        for channel in channels:
            consent = {"kind": "communication", "channel": channel, "granted_on": today, "evidence": "form"}
            assert self.http.post(f"/api/v1/clients/{client_id}/consents", headers=self.headers,
                                  json=consent).status_code == 201
        prefs = {"channels": list(channels), "lead_times_minutes": [1], "quiet_hours": {"start": "00:00", "end": "00:00"}}
        assert self.http.put(f"/api/v1/clients/{client_id}/notification-preferences", headers=self.headers,
                             json=prefs).status_code == 200
        return client_id

    def book(self, *, due_in_seconds: float, clinician: int = 0, **fields: Any) -> dict[str, Any]:
        """An appointment whose one-minute reminder is due in ``due_in_seconds``."""
        starts_at = datetime.now(UTC) + timedelta(seconds=60 + due_in_seconds)
        body = {"site_id": self.site_id, "kind": "individual_therapy", "clinician_id": self.clinician_ids[clinician],
                "starts_at": starts_at.isoformat(), "duration_minutes": 30, **fields}
        response = self.http.post("/api/v1/appointments", headers=self.headers, json=body)
        assert response.status_code == 201, response.get_json()
        booked: dict[str, Any] = response.get_json()
        return booked

    def read(self, path: str, **query: Any) -> Any:
        """GET, retried while SQLite answers 503 "busy" (its one writer is the worker just then)."""
        for _ in range(20):
            response = self.http.get(path, headers=self.headers, query_string=query)
            if response.status_code != 503:
                break
            time.sleep(0.2)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def reminders(self, appointment_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.read(f"/api/v1/appointments/{appointment_id}/reminders")
        return items

    def log(self, **query: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.read("/api/v1/notifications", **query)["items"]
        return items

    def texts(self) -> list[dict[str, Any]]:
        if not self.sms_file.exists():
            return []
        return [json.loads(line) for line in self.sms_file.read_text().splitlines()]

    def wait(self, predicate: Callable[[], Any], what: str, seconds: float = PATIENCE) -> Any:
        value = _wait_until(predicate, seconds=seconds, interval=0.3)
        assert value, f"{what} did not happen within {seconds} s\n{self.worker.log()}"
        return value


def _database(tmp_path: Path) -> tuple[str, TempPostgres | None]:
    base = postgres_base_url()
    if base is None:
        return f"sqlite:///{tmp_path / 'clinic.db'}", None
    temp = TempPostgres(base)
    temp.create()
    return temp.url, temp


@pytest.fixture
def stack(require_redis: str, tmp_path: Path) -> Iterator[Stack]:
    broker_url = _private_redis(require_redis)
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    database_url, temp = _database(tmp_path)
    mailbox = Mailbox()
    smtp = SmtpServer(mailbox)
    smtp.up()
    sms_file = tmp_path / "sms.jsonl"
    settings = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp.port),
        "MAIL_TIMEOUT_SECONDS": "5",
        "SMS_BACKEND": "file",
        "SMS_FILE_PATH": str(sms_file),
        "REMINDER_DISPATCH_SECONDS": "1",
        "REMINDER_SEND_CHUNK": "2",  # a few claims per send task, and several tasks per dispatch
        "REMINDER_STUCK_AFTER_SECONDS": str(STUCK_AFTER_SECONDS),
        "REMINDER_RETRY_BASE_SECONDS": "1",
        "REMINDER_RETRY_MAX_SECONDS": "2",
        "REMINDER_MAX_ATTEMPTS": "30",
        "HEARTBEAT_INTERVAL_SECONDS": "3600",
    }
    env = {**os.environ, "CLINIC_ENV": "development", "DATABASE_URL": database_url, "REDIS_URL": broker_url,
           **settings}
    worker: Worker | None = None
    app: Flask | None = None
    try:
        with _celery_default_app_kept():
            app = create_app("development", {
                "SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": broker_url, "CELERY_BROKER_URL": broker_url,
                "RATELIMIT_ENABLED": False, "RATELIMIT_STORAGE_URI": "memory://",
            })
        with app.app_context():
            upgrade()
            site = auth_ops.create_site(name="Main street", timezone="America/New_York",
                                        display_name="Riverside Health")
            clinicians = [
                auth_ops.create_user(role=Role.CLINICIAN, email=f"c{n}@example.org", name=f"Clinician {n}",
                                     password="a-long-and-uncommon-passphrase", site_ids=[site.id], audit=False)
                for n in range(2)
            ]
            _row, token = auth_ops.create_token(clinicians[0], name="test", expires_in_days=1)
            db.session.commit()
            site_id, clinician_ids = site.id, [c.id for c in clinicians]
        worker = Worker(env, tmp_path, app.extensions["celery"])
        worker.start()
        yield Stack(app=app, http=app.test_client(), headers={"Authorization": f"Bearer {token}"}, site_id=site_id,
                    clinician_ids=clinician_ids, mailbox=mailbox, smtp=smtp, worker=worker, broker=broker,
                    sms_file=sms_file)
    finally:
        mailbox.release.set()
        if worker is not None:
            worker.stop()
        smtp.down()
        if app is not None:
            app.extensions["celery"].close()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        if temp is not None:
            temp.drop()
        broker.flushdb()
        broker.close()


def _group(stack: Stack, clients: list[int], *, due_in_seconds: float) -> dict[str, Any]:
    return stack.book(due_in_seconds=due_in_seconds, kind="group_therapy", client_ids=clients,
                      capacity=len(clients))


def _all_sent(stack: Stack, appointment_id: int) -> bool:
    return all(r["status"] == "sent" for r in stack.reminders(appointment_id))


# --- the stories ---------------------------------------------------------------------------------


def test_a_reminder_arrives_by_email_with_its_calendar_file_and_by_text(stack: Stack) -> None:
    client_id = stack.register("Ada", phone="+12025550143", channels=("email", "sms"))
    booked = stack.book(due_in_seconds=2, client_id=client_id)

    stack.wait(lambda: stack.mailbox.messages and stack.texts(), "the email and the text")
    stack.wait(lambda: _all_sent(stack, booked["id"]), "both reminders recorded as sent")

    (message,) = stack.mailbox.messages
    assert message["To"] == "ada@example.org"
    assert "Riverside Health" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "/r/" in body and "Riverside Health" in body
    (calendar,) = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
    start = datetime.fromisoformat(booked["starts_at"])
    assert f"DTSTART:{start:%Y%m%dT%H%M%S}Z" in calendar.get_content()
    (text,) = stack.texts()
    assert text["to"] == "+12025550143" and "Riverside Health" in text["body"] and "STOP" in text["body"]
    assert {(r["channel"], r["attempts"]) for r in stack.reminders(booked["id"])} == {("email", 1), ("sms", 1)}
    assert sorted((e["channel"], e["status"]) for e in stack.log(client_id=client_id)) == [
        ("email", "sent"), ("sms", "sent")]


def test_cancelling_before_the_due_time_sends_nothing(stack: Stack) -> None:
    ada, ben = stack.register("Ada"), stack.register("Ben")
    cancelled = stack.book(due_in_seconds=3, client_id=ada)
    kept = stack.book(due_in_seconds=3, client_id=ben, clinician=1)
    response = stack.http.post(f"/api/v1/appointments/{cancelled['id']}/cancel", headers=stack.headers,
                               json={"by": "client"})
    assert response.status_code == 200

    stack.wait(lambda: stack.mailbox.messages, "Ben's reminder, due at the same time")
    stack.wait(lambda: _all_sent(stack, kept["id"]), "Ben's reminder recorded as sent")
    assert [m["To"] for m in stack.mailbox.messages] == ["ben@example.org"]
    assert [r["status"] for r in stack.reminders(cancelled["id"])] == ["cancelled"]
    assert stack.log(client_id=ada) == []


def test_a_worker_killed_mid_batch_leaves_every_reminder_sent_exactly_once(stack: Stack) -> None:
    clients = [stack.register(f"Client{n}") for n in range(6)]
    stack.mailbox.hold_at = 3  # the third message: the worker is mid-batch, mid-conversation
    session = _group(stack, clients, due_in_seconds=2)

    assert stack.mailbox.held.wait(PATIENCE), f"the batch never reached the third message\n{stack.worker.log()}"
    stack.worker.kill()
    stack.mailbox.release.set()
    assert len(stack.mailbox.messages) == 2
    stack.worker.start()

    stack.wait(lambda: _all_sent(stack, session["id"]), "every reminder sent after the restart")
    reminder_ids = [r["id"] for r in stack.reminders(session["id"])]
    assert sorted(stack.mailbox.reminder_ids()) == sorted(reminder_ids)  # each once: no loss, no duplicate
    assert sorted(m["To"] for m in stack.mailbox.messages) == sorted(f"client{n}@example.org" for n in range(6))
    attempts = sorted(r["attempts"] for r in stack.reminders(session["id"]))
    assert attempts == [1, 1, 1, 1, 1, 2]  # the one cut off by the kill was tried again


def test_an_smtp_server_down_then_up_gets_the_reminder_once_after_retries(stack: Stack) -> None:
    client_id = stack.register("Ada")
    stack.smtp.down()
    booked = stack.book(due_in_seconds=1, client_id=client_id)

    stack.wait(lambda: len(stack.log(client_id=client_id, status="retrying")) >= 2, "two failed attempts")
    (pending,) = stack.reminders(booked["id"])
    assert pending["status"] == "pending" and pending["attempts"] >= 2 and pending["next_attempt_at"]
    stack.smtp.up()

    stack.wait(lambda: _all_sent(stack, booked["id"]), "the reminder sent once the server is back")
    assert len(stack.mailbox.messages) == 1
    assert [e["status"] for e in reversed(stack.log(client_id=client_id))][-1] == "sent"
    assert {e["status"] for e in stack.log(client_id=client_id)} == {"retrying", "sent"}


def test_a_broker_that_lost_its_queue_loses_no_reminder(stack: Stack) -> None:
    clients = [stack.register(f"Client{n}") for n in range(6)]
    stack.mailbox.hold_at = 1  # the worker is busy with the first task; the other two wait in Redis
    session = _group(stack, clients, due_in_seconds=2)

    assert stack.mailbox.held.wait(PATIENCE), f"the first message never started\n{stack.worker.log()}"
    stack.wait(lambda: stack.broker.llen("celery") >= 2, "the other send tasks queued in Redis", seconds=10)
    stack.broker.flushdb()  # as a Redis restarted without persistence: the queue is gone
    stack.mailbox.release.set()

    stack.wait(lambda: _all_sent(stack, session["id"]), "every reminder sent after the outbox was swept again",
               seconds=PATIENCE + STUCK_AFTER_SECONDS)
    reminder_ids = [r["id"] for r in stack.reminders(session["id"])]
    assert sorted(stack.mailbox.reminder_ids()) == sorted(reminder_ids)
