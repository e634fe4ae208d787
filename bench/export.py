"""CSV export of every appointment of the 100,000-client database: time and the server's peak memory.

    .venv/bin/python bench/export.py [--timeout 600]

Starts gunicorn (one sync worker, production settings) on 127.0.0.1:8766 and downloads
GET /api/v1/appointments/export.csv as an intake coordinator of every demo site (a bench user made
once). Prints rows, bytes, time to the first byte and in all, and the worker's resident memory
before the export and at its peak (VmHWM). The ceiling is PostgreSQL's own
`COPY (the same SELECT) TO STDOUT (FORMAT csv)` read through psycopg.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import BENCH_DATABASE_URL, ROOT, machine, make_app, token_for

PORT = 8766
EXPORT_EMAIL = "bench.export@demo.example.org"


def bench_user(app: Any) -> None:
    """An intake coordinator of every site: the widest scope that may export appointments."""
    from sqlalchemy import select

    from clinic.auth.models import Role, Site, User
    from clinic.extensions import db

    with app.app_context():
        sites = list(db.session.scalars(select(Site)))
        user = db.session.scalars(select(User).where(User.email == EXPORT_EMAIL)).first()
        if user is None:
            template = db.session.scalars(select(User).where(User.role == Role.INTAKE)).first()
            user = User(email=EXPORT_EMAIL, name="Bench Export", role=Role.INTAKE, is_active=True,
                        password_hash=template.password_hash if template else "!")
            db.session.add(user)
        user.sites = sites
        db.session.commit()


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def wait_ready() -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def download(token: str, timeout: int) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    started = time.perf_counter()
    connection.request("GET", "/api/v1/appointments/export.csv", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"export answered {response.status}: {response.read()[:500]!r}")
    first_byte = 0.0
    size = lines = 0
    while chunk := response.read(1 << 16):
        if not first_byte:
            first_byte = time.perf_counter() - started
        size += len(chunk)
        lines += chunk.count(b"\n")
    connection.close()
    return {"seconds": time.perf_counter() - started, "first_byte": first_byte, "bytes": size, "rows": lines - 1}


def copy_ceiling(site_ids: list[int]) -> tuple[float, int]:
    """The same rows through COPY ... TO STDOUT, the fastest PostgreSQL can hand them out."""
    import psycopg

    from clinic.scheduling.export import COLUMNS

    columns = ", ".join(name for name, _column, _write in COLUMNS)
    query = (f"COPY (SELECT {columns} FROM appointments WHERE site_id = ANY(%s) ORDER BY starts_at, id) "  # noqa: S608 - fixed names
             "TO STDOUT (FORMAT csv, HEADER)")
    size = 0
    with psycopg.connect(BENCH_DATABASE_URL) as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        with cursor.copy(query, (site_ids,)) as copy:  # type: ignore[arg-type]
            for data in copy:
                size += len(data)
        return time.perf_counter() - started, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed for the download")
    options = parser.parse_args()
    app = make_app()
    bench_user(app)
    token, _user_id, site_ids = token_for(app, EXPORT_EMAIL)
    env = {**os.environ, "CLINIC_ENV": "production", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", "1", "--timeout", str(options.timeout), "-b", f"127.0.0.1:{PORT}",
         "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        wait_ready()
        pid = worker_pid(server.pid)
        before = memory_kib(pid)
        result = download(token, options.timeout)
        after = memory_kib(pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    copy_seconds, copy_bytes = copy_ceiling(site_ids)
    print(f"machine: {machine()}; gunicorn -w 1 (sync); {len(site_ids)} sites")
    print(f"export: {result['rows']:,.0f} rows, {result['bytes'] / 1e6:.0f} MB in {result['seconds']:.1f} s "
          f"({result['rows'] / result['seconds']:,.0f} rows/s); first byte after {result['first_byte']:.2f} s")
    print(f"worker memory: {before['VmRSS'] / 1024:.0f} MiB before, peak {after['VmHWM'] / 1024:.0f} MiB "
          f"(+{(after['VmHWM'] - before['VmRSS']) / 1024:.0f} MiB during the export); target peak < 250 MB")
    print(f"ceiling, COPY TO STDOUT of the same rows: {copy_seconds:.1f} s, {copy_bytes / 1e6:.0f} MB; "
          f"export at {copy_seconds / result['seconds']:.0%} of its speed")


if __name__ == "__main__":
    main()
