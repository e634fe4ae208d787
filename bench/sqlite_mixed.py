"""A mixed load on the embedded default (SQLite) while the worker seals audit events: it must give 0 errors.

    .venv/bin/python bench/sqlite_mixed.py [--seconds 60] [--threads 4]

What ``make run`` runs, on a throw-away SQLite file: a Celery worker and beat on the embedded
broker (the audit seal every second instead of every 10), and the web app in this process. For
the given time, each thread signs in, searches clients, opens a chart, registers a client and
changes a phone number, over and over, as a member of staff would (every read of client data
writes audit events, which the worker then seals). An error is a 5xx answer ("database busy"), a
refusal (every request is valid), an exception, or "database is locked" in the worker's log; the
script prints the counts and exits 1 on any error. tests/test_sqlite_load.py runs the same load for 10 seconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "a-long-and-uncommon-passphrase"  # noqa: S105 - a throw-away database's staff
#: What in the worker's or beat's log is an error of this kind.
LOG_ERRORS = ("database is locked", "OperationalError", "Traceback", "ERROR/")


@dataclass
class Result:
    seconds: float
    requests: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    sealed: int = 0

    def summary(self) -> str:
        total = sum(self.requests.values())
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.requests.items()))
        return (
            f"{total} requests in {self.seconds:.0f} s ({total / self.seconds:.1f}/s: {kinds}); "
            f"{self.sealed} audit events sealed by the worker; {len(self.errors)} errors"
        )


def environment(folder: Path) -> dict[str, str]:
    """The environment of the worker, beat and this app: development settings on ``folder``."""
    keep = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "PUBLIC_BASE_URL"}}
    return {
        **keep,
        "CLINIC_ENV": "development",
        "DATABASE_URL": f"sqlite:///{folder / 'clinic.db'}",
        "CELERY_DATA_DIR": str(folder / "broker"),
        "AUDIT_SEAL_INTERVAL_SECONDS": "1",
        "PYTHONPATH": str(ROOT),
    }


@contextmanager
def worker_and_beat(folder: Path, env: dict[str, str]) -> Iterator[Path]:
    """Migrate the database, then run a worker and beat as make run does; yields the log file."""
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=120,
    )
    log_path = folder / "worker.log"
    celery = [sys.executable, "-m", "celery", "-A", "wsgi.celery_app"]
    commands = [
        [*celery, "worker", "--loglevel=INFO", "--pool=solo", "--without-mingle", "--without-gossip"],
        [*celery, "beat", "--loglevel=INFO", "--schedule", str(folder / "celerybeat-schedule")],
    ]
    with log_path.open("wb") as log:
        processes = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
            for command in commands
        ]
    try:
        yield log_path
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def make_app(env: dict[str, str]) -> Any:
    """The web app in this process, on the same database and broker as the worker."""
    from clinic import create_app

    return create_app(
        "development",
        {
            "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_DATA_DIR": env["CELERY_DATA_DIR"],
            "RATELIMIT_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
        },
    )


def seed(app: Any, threads: int) -> list[str]:
    """A site, one clinician per thread (their emails are returned) and a few clients."""
    from clinic.auth import operations as auth_ops
    from clinic.auth.models import Role
    from clinic.extensions import db

    with app.app_context():
        site = auth_ops.create_site(name="Riverside", timezone="America/New_York")
        db.session.flush()
        emails = [f"clinician{n}@example.org" for n in range(threads)]
        for email in emails:
            auth_ops.create_user(
                email=email, name="Load Clinician", role=Role.CLINICIAN, site_ids=[site.id], password=PASSWORD,
                audit=False,
            )
        db.session.commit()
        app.config["_BENCH_SITE_ID"] = site.id
    return emails


def _call(client: Any, result: Result, kind: str, method: str, url: str, **kwargs: Any) -> Any:
    """One request; a 5xx answer or an exception is an error (and None is returned)."""
    try:
        response = getattr(client, method)(url, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever it is
        result.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
        return None
    result.requests[kind] += 1
    # Every request of the load is valid: a refusal (4xx) is as much an error as a failure (5xx).
    if response.status_code >= 400:
        body = response.get_json(silent=True) or {}
        result.errors.append(f"{kind}: {response.status_code} {body.get('detail') or body.get('title')}")
        return None
    return response


def staff_session(app: Any, email: str, result: Result, stop: threading.Event) -> None:
    """One member of staff, over and over: sign in, search, open a chart, register a client, edit a phone."""
    site_id = app.config["_BENCH_SITE_ID"]
    surname = email.partition("@")[0].title()
    counter = itertools.count()
    while not stop.is_set():
        client = app.test_client()
        credentials = {"email": email, "password": PASSWORD}
        login = _call(client, result, "sign-in", "post", "/api/v1/auth/login", json=credentials)
        if login is None or login.status_code != 200:
            continue
        csrf = {"X-CSRF-Token": login.get_json()["csrf_token"]}
        for _ in range(5):
            if stop.is_set():
                break
            n = next(counter)
            person = {
                "site_id": site_id, "first_name": f"Load{n}", "last_name": surname,
                "date_of_birth": f"19{50 + n % 50}-0{1 + n % 9}-1{n % 10}", "phone": f"+1617555{n % 10000:04d}",
            }
            created = _call(client, result, "write", "post", "/api/v1/clients?allow_duplicate=true", headers=csrf,
                            json=person)
            _call(client, result, "read", "get", "/api/v1/clients?q=Load")
            if created is not None:
                client_id = created.get_json()["id"]
                _call(client, result, "read", "get", f"/api/v1/clients/{client_id}")
                _call(client, result, "write", "patch", f"/api/v1/clients/{client_id}?allow_duplicate=true",
                      headers=csrf, json={"phone": f"+1617556{n % 10000:04d}"})
        _call(client, result, "sign-out", "post", "/api/v1/auth/logout", headers=csrf)


def sealed_events(app: Any) -> int:
    from sqlalchemy import func, select

    from clinic.audit.models import AuditEvent
    from clinic.extensions import db

    with app.app_context():
        return int(db.session.scalar(select(func.count()).where(AuditEvent.seq.is_not(None))) or 0)


def run(seconds: float, threads: int, folder: Path) -> Result:
    """Run the load for ``seconds`` with ``threads`` members of staff; the result lists every error."""
    env = environment(folder)
    with worker_and_beat(folder, env) as log_path:
        app = make_app(env)
        emails = seed(app, threads)
        result = Result(seconds=seconds)
        stop = threading.Event()
        workers = [threading.Thread(target=staff_session, args=(app, email, result, stop)) for email in emails]
        for worker in workers:
            worker.start()
        time.sleep(seconds)
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        time.sleep(3)  # the last seal
        result.sealed = sealed_events(app)
        log = log_path.read_text(errors="replace")
        result.errors += [f"worker/beat log: {line}" for line in log.splitlines() if any(e in line for e in LOG_ERRORS)]
        with app.app_context():
            from clinic.extensions import db

            db.engine.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clinic-sqlite-mixed-") as folder:
        result = run(args.seconds, args.threads, Path(folder))
    print(result.summary())
    for error in result.errors[:20]:
        print("  error:", error)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
