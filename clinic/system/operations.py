"""Readiness checks and the heartbeat."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import text

from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.system.models import WorkerHeartbeat

HEARTBEAT = "celery"


def record_heartbeat(*, hostname: str | None = None) -> datetime:
    """Upsert the heartbeat row: running twice is harmless."""
    now = utcnow()
    row = db.session.get(WorkerHeartbeat, HEARTBEAT)
    if row is None:
        row = WorkerHeartbeat(name=HEARTBEAT, beat_at=now, hostname=hostname or socket.gethostname())
        db.session.add(row)
    else:
        row.beat_at = now
        row.hostname = hostname or socket.gethostname()
    db.session.flush()
    return now


def check_database() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is reported
        db.session.rollback()
        return type(exc).__name__
    return None


def check_broker() -> str | None:
    url: str = current_app.config["CELERY_BROKER_URL"]
    try:
        if url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            try:
                client.ping()
            finally:
                client.close()
        elif url.startswith("filesystem://"):
            queue = Path(current_app.config["CELERY_DATA_DIR"]) / "queue"
            if not queue.is_dir():
                return "broker folder missing"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is reported
        return type(exc).__name__
    return None


def worker_heartbeat() -> dict[str, Any]:
    """The last heartbeat: ``ok``, ``stale`` (older than three intervals) or ``never``."""
    row = db.session.get(WorkerHeartbeat, HEARTBEAT)
    if row is None:
        return {"last_beat_at": None, "age_seconds": None, "status": "never"}
    age = (utcnow() - row.beat_at).total_seconds()
    stale_after = 3 * current_app.config["HEARTBEAT_INTERVAL_SECONDS"]
    status = "ok" if age <= stale_after else "stale"
    return {"last_beat_at": row.beat_at, "age_seconds": round(age, 1), "status": status}


def check_worker(heartbeat: dict[str, Any] | None) -> str | None:
    """Why the worker is not known to run: no heartbeat yet, or none for three intervals."""
    if heartbeat is None:
        return "unknown (the database did not answer)"
    if heartbeat["status"] == "never":
        return "no heartbeat yet"
    if heartbeat["status"] == "stale":
        return f"no heartbeat for {heartbeat['age_seconds']:.0f} s"
    return None


def readiness() -> tuple[bool, dict[str, Any]]:
    """Whether the database and broker answer and a worker beats, with the worker's last heartbeat."""
    failures = {"database": check_database(), "broker": check_broker()}
    heartbeat = worker_heartbeat() if failures["database"] is None else None
    failures["worker"] = check_worker(heartbeat)
    if heartbeat is None:
        heartbeat = {"last_beat_at": None, "age_seconds": None, "status": "never"}
    ready = all(reason is None for reason in failures.values())
    checks = {name: ("ok" if reason is None else f"failed: {reason}") for name, reason in failures.items()}
    return ready, {"status": "ok" if ready else "unavailable", "checks": checks, "worker_heartbeat": heartbeat}
