"""API under load: gunicorn on the 100,000-client PostgreSQL database, driven by wrk.

Prints requests/s, p50 and p99 of GET /clients/{id}, GET /clients?q=, GET /appointments?clinician_id&from&to
and POST /appointments, with the same server's /healthz as the ceiling and each ratio to it.

    apt-get install -y wrk          # the load tool
    .venv/bin/python bench/api_load.py [--duration 15] [--connections 8] [--workers 4]

Traffic goes only to 127.0.0.1. The appointments POSTed are booked far in the future for a bench
clinician and removed afterwards.
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
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import CLINICIAN_EMAIL, ROOT, machine, make_app, token_for

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"

LUA = r"""
local paths = {%(paths)s}
local body_template = %(body)s
local counter = 0
local thread_id = 0
local threads = {}
local auth = "Bearer %(token)s"

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tonumber(tid) or 1
  math.randomseed(thread_id * 7919)
end

function request()
  counter = counter + 1
  local headers = {["Authorization"] = auth, ["Accept"] = "application/json"}
  if body_template ~= "" then
    headers["Content-Type"] = "application/json"
    -- a unique hour per thread and request: no clash between benchmark bookings
    local slot = counter * 4 + thread_id
    local start = os.date("!%%Y-%%m-%%dT%%H:%%M:00Z", %(base)d + slot * 1800)
    local body = string.gsub(body_template, "STARTS_AT", start)
    body = string.gsub(body, "CLIENT_ID", paths[(counter %% #paths) + 1])
    return wrk.format("POST", "/api/v1/appointments", headers, body)
  end
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
"""


def _lua_list(values: list[str]) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _parse(output: str) -> dict[str, Any]:
    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = int(errors.group(1)) if errors else 0
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": total, "non_2xx": non_2xx}


def _samples(app: Any, site_ids: list[int], clinician_id: int) -> dict[str, list[str]]:
    from sqlalchemy import func, select

    from clinic.clients.models import Client
    from clinic.extensions import db

    rng = random.Random(42)  # noqa: S311 - a reproducible sample, not a secret
    with app.app_context():
        ids = list(db.session.scalars(select(Client.id).where(Client.site_id.in_(site_ids)).order_by(Client.id)))
        clients = [str(i) for i in rng.sample(ids, 500)]
        names = sorted(set(db.session.scalars(select(func.substr(Client.search_last, 1, 3)).where(
            Client.site_id.in_(site_ids)).distinct())))
    weeks = []
    for offset in range(0, 52):
        start = time.gmtime(time.time() - offset * 7 * 86400)
        weeks.append(time.strftime("%Y-%m-%dT00:00:00Z", start))
    to_of = {w: time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.mktime(time.strptime(w, "%Y-%m-%dT%H:%M:%SZ"))
                                                            + 7 * 86400)) for w in weeks}
    return {
        "healthz": ["/healthz"],
        "client read": [f"/api/v1/clients/{c}" for c in clients],
        "name search": [f"/api/v1/clients?q={n}&limit=20" for n in names],
        "appointments list": [
            f"/api/v1/appointments?clinician_id={clinician_id}&from={w}&to={to_of[w]}" for w in weeks
        ],
        "_clients": clients,
    }


def _bench_clinician(app: Any, site_id: int) -> int:
    from sqlalchemy import select

    from clinic.auth.models import Role, Site, User
    from clinic.extensions import db

    with app.app_context():
        email = "bench.clinician@demo.example.org"
        user = db.session.scalars(select(User).where(User.email == email)).first()
        if user is None:
            template = db.session.scalars(select(User).where(User.email == CLINICIAN_EMAIL)).one()
            user = User(email=email, name="Bench Clinician", role=Role.CLINICIAN, is_active=True,
                        password_hash=template.password_hash, sites=[db.session.get_one(Site, site_id)])
            db.session.add(user)
            db.session.commit()
        return user.id


def _cleanup(app: Any, clinician_id: int) -> int:
    from sqlalchemy import delete

    from clinic.extensions import db
    from clinic.scheduling.models import Appointment

    with app.app_context():
        removed = db.session.execute(delete(Appointment).where(Appointment.clinician_id == clinician_id)).rowcount
        db.session.commit()
        return int(removed)


def _wait_ready() -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"{BASE}/healthz", timeout=1) as response:  # noqa: S310 - local server
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def run_wrk(name: str, script: Path, duration: int, connections: int) -> dict[str, Any]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), BASE]
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result = _parse(output)
    result["name"] = name
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    app = make_app()
    token, clinician_id, site_ids = token_for(app, CLINICIAN_EMAIL)
    samples = _samples(app, site_ids, clinician_id)
    bench_clinician = _bench_clinician(app, site_ids[0])
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
            scenarios: list[tuple[str, list[str], str]] = [
                (name, paths, '""') for name, paths in samples.items() if not name.startswith("_")
            ]
            body = json.dumps({
                "site_id": site_ids[0], "kind": "individual_therapy", "clinician_id": bench_clinician,
                "client_id": 0, "starts_at": "STARTS_AT", "duration_minutes": 30,
            }).replace('"client_id": 0', '"client_id": CLIENT_ID')
            scenarios.append(("appointment create", samples["_clients"][:200], json.dumps(body)))
            for name, paths, body_lua in scenarios:
                script = Path(tmp) / f"{name.replace(' ', '_')}.lua"
                for run, seconds in enumerate((3, options.duration)):
                    # Bookings of each run start on a fresh day range (all within the three years allowed).
                    base = (int(time.time()) // 3600 + 48 + run * 24 * 400) * 3600
                    script.write_text(LUA % {"paths": _lua_list(paths), "body": body_lua, "token": token,
                                             "base": base})
                    # The first, short run warms each worker's caches and connection pool.
                    result = run_wrk(name, script, seconds, options.connections)
                results.append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        removed = _cleanup(app, bench_clinician)
    ceiling = results[0]["rps"]
    print(f"machine: {machine()}; gunicorn -w {options.workers}; wrk -t2 -c{options.connections} "
          f"-d{options.duration}s per scenario; {removed} benchmark appointments removed")
    print(f"{'scenario':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'of /healthz':>12} {'non-2xx':>8}")
    for r in results:
        print(f"{r['name']:20} {r['rps']:9.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rps'] / ceiling:11.0%} "
              f"{r['non_2xx']:>8}")


if __name__ == "__main__":
    main()
