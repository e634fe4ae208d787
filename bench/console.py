"""Staff console pages under load: gunicorn on the 100,000-client PostgreSQL database, driven by wrk.

Prints, for the client chart, a clinician's /today, the schedule's week view and the intake queue:
requests/s, p50, p95 and p99 at 4 concurrent users (wrk connections), and the SQL statements each
page runs for a small and a large case (a client with a short and a long history, a quiet and a busy
week), which must not grow with the rows shown.

    apt-get install -y wrk
    .venv/bin/python bench/console.py [--duration 15] [--connections 4] [--workers 4]

Pages are requested with a bearer token (the same user, loaders and audit as a browser session);
traffic goes only to 127.0.0.1. Each page read is audited, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import CLINICIAN_EMAIL, ROOT, machine, make_app, token_for
from api_load import BASE, PORT, _wait_ready

INTAKE_EMAIL = "intake1.riverside@demo.example.org"

LUA = r"""
local paths = {%(paths)s}
local auth = "Bearer %(token)s"
function init(args)
  math.randomseed((tonumber(tid) or 1) * 7919)
end
function request()
  return wrk.format("GET", paths[math.random(#paths)], {["Authorization"] = auth, ["Accept"] = "text/html"})
end
function done(summary, latency, requests)
  io.write(string.format("p95_us %%d\n", latency:percentile(95)))
end
"""


def _parse(output: str) -> dict[str, Any]:
    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    def percentile(p: str) -> float:
        return ms(re.search(rf"\s{p}%\s+(\S+)", output).group(1))  # type: ignore[union-attr]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": percentile("50"), "p99_ms": percentile("99"),
        "p95_ms": int(re.search(r"p95_us (\d+)", output).group(1)) / 1000,  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def _samples(app: Any, site_ids: list[int], clinician_id: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from clinic.clients.models import Client
    from clinic.extensions import db
    from clinic.scheduling.models import Appointment

    rng = random.Random(42)  # noqa: S311 - a reproducible sample, not a secret
    with app.app_context():
        ids = list(db.session.scalars(select(Client.id).where(Client.site_id.in_(site_ids)).order_by(Client.id)))
        clients = rng.sample(ids, 300)
        # The clients with the shortest and the longest appointment history, for the query-count check.
        counts = select(Appointment.client_id, func.count().label("n")).where(
            Appointment.client_id.in_(clients)).group_by(Appointment.client_id).order_by("n")
        by_size = list(db.session.execute(counts))
        busy_weeks = list(db.session.execute(
            select(func.date_trunc("week", Appointment.starts_at).label("w"), func.count().label("n"))
            .where(Appointment.clinician_id == clinician_id).group_by("w").order_by("n")
        ))
    today = datetime.now(UTC).date()
    weeks = [(today - timedelta(weeks=offset)).isoformat() for offset in range(0, 52)]
    return {
        "client chart": [f"/clients/{c}" for c in clients],
        "today": ["/today"],
        "schedule week": [f"/schedule?view=week&clinician_id={clinician_id}&date={w}" for w in weeks],
        "intake queue": ["/intake"],
        "_small_client": by_size[0][0], "_large_client": by_size[-1][0],
        "_quiet_week": busy_weeks[0][0].date().isoformat(), "_busy_week": busy_weeks[-1][0].date().isoformat(),
        "_week_sizes": (busy_weeks[0][1], busy_weeks[-1][1]), "_client_sizes": (by_size[0][1], by_size[-1][1]),
    }


def _statements(app: Any, token: str, path: str) -> int:
    """SQL statements one request for ``path`` runs, in-process (the second request: caches warm)."""
    from sqlalchemy import event

    from clinic.extensions import db

    count = 0

    def counter(*_args: Any) -> None:
        nonlocal count
        count += 1

    with app.app_context():
        engine = db.engine
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/html"}
    client.get(path, headers=headers)
    event.listen(engine, "before_cursor_execute", counter)
    try:
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    finally:
        event.remove(engine, "before_cursor_execute", counter)
    return count


def run_wrk(script: Path, duration: int, connections: int) -> dict[str, Any]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), BASE]
    return _parse(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per page")
    parser.add_argument("--connections", type=int, default=4, help="concurrent users")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    app = make_app()
    clinician_token, clinician_id, site_ids = token_for(app, CLINICIAN_EMAIL)
    intake_token, _intake_id, _sites = token_for(app, INTAKE_EMAIL)
    samples = _samples(app, site_ids, clinician_id)

    growth = [
        ("client chart", f"/clients/{samples['_small_client']}", f"/clients/{samples['_large_client']}",
         clinician_token, "appointments of the client", samples["_client_sizes"]),
        ("schedule week", f"/schedule?view=week&clinician_id={clinician_id}&date={samples['_quiet_week']}",
         f"/schedule?view=week&clinician_id={clinician_id}&date={samples['_busy_week']}", clinician_token,
         "appointments in the week", samples["_week_sizes"]),
    ]
    statement_rows = []
    for name, small, large, token, what, sizes in growth:
        statement_rows.append((name, what, sizes, _statements(app, token, small), _statements(app, token, large)))
    for name, path, token in (("today", "/today", clinician_token), ("intake queue", "/intake", intake_token)):
        statement_rows.append((name, "", ("", ""), _statements(app, token, path), _statements(app, token, path)))

    env = {**os.environ, "CLINIC_ENV": "production", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(options.workers), "-b", f"127.0.0.1:{PORT}", "--log-level",
         "warning", "wsgi:app"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    results = []
    try:
        _wait_ready()
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("client chart", "today", "schedule week", "intake queue"):
                token = intake_token if name == "intake queue" else clinician_token
                script = Path(tmp) / f"{name.replace(' ', '_')}.lua"
                script.write_text(LUA % {"paths": ", ".join(json.dumps(p) for p in samples[name]), "token": token})
                run_wrk(script, 3, options.connections)  # warm each worker's caches and pool
                result = run_wrk(script, options.duration, options.connections)
                result["name"] = name
                results.append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"machine: {machine()}; gunicorn -w {options.workers}; wrk -t2 -c{options.connections} "
          f"-d{options.duration}s per page; target p95 < 150 ms")
    print(f"{'page':15} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for r in results:
        print(f"{r['name']:15} {r['rps']:8.1f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['non_2xx']:>8}")
    print("SQL statements per page (small case / large case):")
    for name, what, sizes, small, large in statement_rows:
        detail = f" ({what}: {sizes[0]} / {sizes[1]})" if what else ""
        print(f"  {name:15} {small:>4} / {large:<4}{detail}")


if __name__ == "__main__":
    main()
