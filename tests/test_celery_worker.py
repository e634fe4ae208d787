"""Celery as deployed: a real worker process on real Redis, and the settings it runs with.

The worker tests start ``celery -A wsgi.celery_app worker`` exactly as production does, on a
SQLite database migrated with ``flask db upgrade``, and follow the heartbeat from the broker
through the worker into the database and out of ``/readyz``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from celery import Celery, _state
from flask import Flask

from clinic import create_app
from clinic.extensions import db
from config import BASE_DIR

HEARTBEAT_TASK = "clinic.system.tasks.heartbeat"
WORKER_READY_SECONDS = 20
HEARTBEAT_SECONDS = 15


@contextmanager
def _celery_default_app_kept() -> Iterator[None]:
    """Undo ``set_default()`` of apps built here, so later tests keep their own Celery app."""
    # celery._state is private, but it is the only handle on the process-wide current app.
    default_app = _state.default_app
    current_app = getattr(_state._tls, "current_app", None)
    try:
        yield
    finally:
        _state.set_default_app(default_app)
        _state._set_current_app(current_app)


def _development_app(**overrides: Any) -> Flask:
    """An app with the development settings ``make run`` uses, changed by ``overrides``."""
    return create_app("development", {"RATELIMIT_ENABLED": False, "RATELIMIT_STORAGE_URI": "memory://", **overrides})


def _closed_port() -> int:
    """A local TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_until(predicate: Callable[[], Any], *, seconds: float, interval: float = 0.2) -> Any:
    """Return the first truthy value of ``predicate`` within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


@dataclass
class WorkerStack:
    """A migrated database, a Celery worker process consuming from Redis, and an app on both."""

    app: Flask
    celery: Celery
    worker: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the worker and anything it forked: warm shutdown first, then kill."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def worker_stack(require_redis: str, tmp_path: Path) -> Iterator[WorkerStack]:
    database_url = f"sqlite:///{tmp_path / 'clinic.db'}"
    env = {**os.environ, "CLINIC_ENV": "development", "DATABASE_URL": database_url, "REDIS_URL": require_redis}
    broker = redis.Redis.from_url(require_redis)
    broker.flushdb()

    migrate = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr

    hostname = f"clinic-test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp_path / "worker.log"
    log_file: IO[bytes] = log_path.open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wsgi.celery_app",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            f"--hostname={hostname}",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack: WorkerStack | None = None
    try:
        with _celery_default_app_kept():
            app = _development_app(
                SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=require_redis, CELERY_BROKER_URL=require_redis
            )
        celery: Celery = app.extensions["celery"]
        stack = WorkerStack(app=app, celery=celery, worker=worker, log_path=log_path)

        def answers_ping() -> bool:
            assert worker.poll() is None, f"the worker exited:\n{stack.log()}"
            return bool(celery.control.ping(destination=[hostname], timeout=0.5))

        assert _wait_until(answers_ping, seconds=WORKER_READY_SECONDS), f"the worker never answered:\n{stack.log()}"
        yield stack
    finally:
        _stop(worker)
        log_file.close()
        if stack is not None:
            stack.celery.close()
            with stack.app.app_context():
                db.engine.dispose()
        broker.flushdb()
        broker.close()


@pytest.mark.slow
def test_worker_heartbeat_reaches_readyz(worker_stack: WorkerStack) -> None:
    """A worker beats as soon as it is ready, through the broker; /readyz turns ready with it."""
    client = worker_stack.app.test_client()

    def heartbeat_seen() -> Any:
        response = client.get("/readyz")
        return response if response.get_json()["worker_heartbeat"]["status"] == "ok" else None

    response = _wait_until(heartbeat_seen, seconds=HEARTBEAT_SECONDS, interval=0.3)
    assert response is not None, f"no heartbeat recorded:\n{worker_stack.log()}"
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}
    assert body["worker_heartbeat"]["age_seconds"] < HEARTBEAT_SECONDS


@pytest.mark.slow
def test_heartbeat_sent_twice_keeps_one_fresh_row(worker_stack: WorkerStack) -> None:
    """A redelivered heartbeat (acks_late) is harmless: still one row, with the newer time."""
    client = worker_stack.app.test_client()

    def beat_at() -> str | None:
        last_beat_at: str | None = client.get("/readyz").get_json()["worker_heartbeat"]["last_beat_at"]
        return last_beat_at

    worker_stack.celery.send_task(HEARTBEAT_TASK)
    first = _wait_until(beat_at, seconds=HEARTBEAT_SECONDS)
    assert first is not None, worker_stack.log()

    worker_stack.celery.send_task(HEARTBEAT_TASK)
    second = _wait_until(lambda: (value := beat_at()) != first and value, seconds=HEARTBEAT_SECONDS)
    assert second is not None, worker_stack.log()
    assert second > first

    with worker_stack.app.app_context():
        from clinic.system.models import WorkerHeartbeat

        assert db.session.query(WorkerHeartbeat).count() == 1


def test_readyz_names_the_broker_when_redis_does_not_answer(
    app: Flask, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/0")

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("failed")


@pytest.mark.parametrize("broker_url", ["redis://127.0.0.1:6379/15", "filesystem://"])
def test_tasks_are_acknowledged_after_running_and_sent_as_json(broker_url: str, tmp_path: Path) -> None:
    """Tasks are acknowledged after they ran, requeued if the worker dies, and travel as JSON."""
    with _celery_default_app_kept():
        app = _development_app(
            SQLALCHEMY_DATABASE_URI="sqlite://", CELERY_BROKER_URL=broker_url, CELERY_DATA_DIR=str(tmp_path / "broker")
        )
        conf = app.extensions["celery"].conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_always_eager is False
    if broker_url.startswith("redis"):
        # Longer than any task may run, or Redis hands a running task to a second worker.
        assert conf.broker_transport_options["visibility_timeout"] >= 600


def test_beat_schedule_runs_the_heartbeat_the_worker_knows(tmp_path: Path) -> None:
    with _celery_default_app_kept():
        app = _development_app(
            SQLALCHEMY_DATABASE_URI="sqlite://",
            CELERY_BROKER_URL="filesystem://",
            CELERY_DATA_DIR=str(tmp_path / "broker"),
            HEARTBEAT_INTERVAL_SECONDS=45,
        )
        celery: Celery = app.extensions["celery"]
        # What the worker does at start-up: import the task modules listed in `imports`.
        celery.loader.import_default_modules()
        registered = set(celery.tasks)

    entries = [entry for entry in celery.conf.beat_schedule.values() if entry["task"] == HEARTBEAT_TASK]
    assert len(entries) == 1
    assert entries[0]["schedule"] == 45.0
    assert HEARTBEAT_TASK in registered
