"""FHIR bulk export ($export) of the 100,000-client database and of a 10,000-client one: rate and peak memory.

    .venv/bin/python bench/fhir_export.py [--types Patient,Goal] [--small-url URL] [--skip-large]

Makes a throw-away PostgreSQL database next to the benchmark one, migrates it and seeds 10,000
demo clients (`flask demo seed --clients 10000 --seed 1 --today 2026-11-30`, dropped at the end;
`--small-url` names an already seeded one instead, kept). Then, for each database, a fresh process
runs one export as the worker does (the task `clinic.fhir.tasks.run_export`, called in-process:
every source streamed in batches, every resource checked by `clinic.fhir.validate.check`, one
NDJSON file per type) of every type clinic exports (or `--types`) for the demo administrator, and
prints resources, bytes, seconds, resources per second, the share of the time spent in the
checks, and the process's resident memory before the export and at its peak (VmHWM).

The export runs inside a transaction rolled back at the end (the test suite's savepoint trick), so
the benchmark database is left as it was: neither the export's row nor the audit events it writes
(one per exported client) stay. Its files go to a temporary folder, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import ADMIN_EMAIL, BENCH_DATABASE_URL, ROOT, machine

SMALL_CLIENTS = 10_000


def memory_kib() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


@contextmanager
def rolled_back(app: Any) -> Iterator[None]:
    """Every session of ``app`` inside one transaction, rolled back at the end (as tests/conftest.py does)."""
    from clinic.extensions import db

    with app.app_context():
        engine = db.engine
    connection = engine.connect()
    outer = connection.begin()
    db._app_engines[app][None] = connection  # every session joins this transaction
    db.session.session_factory.kw["join_transaction_mode"] = "create_savepoint"
    try:
        yield
    finally:
        outer.rollback()
        connection.close()


def timed_checks() -> list[float]:
    """Time spent in ``clinic.fhir.validate.check`` during the export, in seconds (one running total)."""
    from clinic.fhir import bulk

    spent = [0.0]
    real_check = bulk.check

    def timed_check(resource: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return real_check(resource)
        finally:
            spent[0] += time.perf_counter() - started

    bulk.check = timed_check  # type: ignore[assignment]
    return spent


def run_one(database_url: str, types: str | None) -> dict[str, Any]:
    """One export in this process (the worker's code), in a transaction rolled back afterwards."""
    os.environ["DATABASE_URL"] = database_url
    from _common import make_app
    from sqlalchemy import func, select

    from clinic.auth.models import User
    from clinic.clients.models import Client
    from clinic.extensions import db
    from clinic.fhir import bulk
    from clinic.fhir.models import FhirExport
    from clinic.fhir.tasks import run_export

    folder = tempfile.mkdtemp(prefix="fhir-export-bench-")
    app = make_app()
    app.config["FHIR_EXPORT_DIR"] = folder
    checking = timed_checks()
    bulk.send_after_commit = lambda *_args: None  # type: ignore[assignment]  # this process is the worker
    try:
        with rolled_back(app):
            with app.test_request_context():
                admin = db.session.scalars(select(User).where(User.email == ADMIN_EMAIL)).one()
                wanted = bulk.parse_request({"_type": types}, prefer="respond-async")
                export_id = bulk.request_export(admin, wanted, request_url="bench").id
                clients = db.session.scalar(select(func.count()).select_from(Client))
                db.session.commit()
            before = memory_kib()
            started = time.perf_counter()
            with app.app_context():
                outcome = run_export.apply(args=[export_id]).get()
            seconds = time.perf_counter() - started
            after = memory_kib()
            with app.app_context():
                done = db.session.get_one(FhirExport, export_id)
                files = {entry["type"]: entry["count"] for entry in done.files}
                size = sum(entry["bytes"] for entry in done.files)
                count = done.resource_count or 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "outcome": outcome,
        "clients": clients,
        "resources": count,
        "files": files,
        "bytes": size,
        "seconds": round(seconds, 1),
        "per_second": round(count / seconds) if seconds else 0,
        "check_share": round(checking[0] / seconds, 2) if seconds else 0,
        "rss_before_mib": round(before["VmRSS"] / 1024),
        "peak_mib": round(after["VmHWM"] / 1024),
    }


def export_in_child(database_url: str, types: str | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--run-one", database_url]
    if types:
        command += ["--types", types]
    env = {**os.environ, "CLINIC_ENV": "production", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def seed_small() -> tuple[str, str]:
    """A throw-away database next to the benchmark one, migrated and seeded with 10,000 clients."""
    import psycopg
    from sqlalchemy import make_url

    base = make_url(BENCH_DATABASE_URL)
    name = f"clinic_bench_fhir_{uuid.uuid4().hex[:8]}"
    admin_url = base.render_as_string(hide_password=False)
    url = base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    flask = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi"]
    started = time.perf_counter()
    subprocess.run([*flask, "db", "upgrade"], check=True, env=env, cwd=ROOT, capture_output=True)
    subprocess.run(
        [*flask, "demo", "seed", "--clients", str(SMALL_CLIENTS), "--seed", "1", "--today", "2026-11-30", "--quiet"],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    print(f"seeded {SMALL_CLIENTS:,} clients into {name} in {time.perf_counter() - started:.0f} s")
    return admin_url, url


def drop(admin_url: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", help="comma-separated resource types (default: every type clinic exports)")
    parser.add_argument("--small-url", help="an already seeded 10,000-client database to use (kept)")
    parser.add_argument("--skip-large", action="store_true", help="export only the 10,000-client database")
    parser.add_argument("--skip-small", action="store_true", help="export only the 100,000-client database")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.run_one:
        print(json.dumps(run_one(options.run_one, options.types)))
        return
    print(machine())
    made = None if options.small_url or options.skip_small else seed_small()
    small = options.small_url or (made[1] if made else "")
    try:
        runs = [] if options.skip_small else [("10,000 clients", small)]
        if not options.skip_large:
            runs.append(("100,000 clients", BENCH_DATABASE_URL))
        for label, url in runs:
            load = os.getloadavg()[0]
            result = export_in_child(url, options.types)
            print(f"{label}: load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
            print(json.dumps(result, indent=1))
    finally:
        if made:
            drop(*made)


if __name__ == "__main__":
    main()
