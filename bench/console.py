"""Staff console pages under load: gunicorn on the 100,000-client PostgreSQL database, driven by wrk.

Prints, for the client chart, a clinician's /today, the schedule's week view, the intake queue, a
treatment plan, the dosing window of an OTP's day and two reports: requests/s, p50, p95 and p99 at 4
concurrent users (wrk connections), and the SQL statements each page runs for a small and a large
case (a client with a short and a long history, a quiet and a busy week, a small and a large plan, a
short and a full page of the dosing list, a short and a long report range), which must not grow with
the rows shown. For each report it also prints the report's own SQL time (its statements replayed
through the raw driver cursor, best of 5): the page's target is that time + 100 ms.

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

from _common import ADMIN_EMAIL, CLINICIAN_EMAIL, ROOT, machine, make_app, token_for
from api_load import BASE, PORT, _wait_ready

INTAKE_EMAIL = "intake1.riverside@demo.example.org"
#: The reports on the reports page, over 90 days to the dosing record's last day, all sites (the administrator).
REPORTS = ("census", "mat-continuity")
REPORT_DAYS = 90
#: Page budget of a report beyond its own SQL time.
REPORT_BUDGET_MS = 100.0
TARGET_MS = 150.0

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
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
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
        counts = (
            select(Appointment.client_id, func.count().label("n"))
            .where(Appointment.client_id.in_(clients))
            .group_by(Appointment.client_id)
            .order_by("n")
        )
        by_size = list(db.session.execute(counts))
        busy_weeks = list(
            db.session.execute(
                select(func.date_trunc("week", Appointment.starts_at).label("w"), func.count().label("n"))
                .where(Appointment.clinician_id == clinician_id)
                .group_by("w")
                .order_by("n")
            )
        )
    today = datetime.now(UTC).date()
    weeks = [(today - timedelta(weeks=offset)).isoformat() for offset in range(0, 52)]
    return {
        "client chart": [f"/clients/{c}" for c in clients],
        "today": ["/today"],
        "schedule week": [f"/schedule?view=week&clinician_id={clinician_id}&date={w}" for w in weeks],
        "intake queue": ["/intake"],
        "_small_client": by_size[0][0],
        "_large_client": by_size[-1][0],
        "_quiet_week": busy_weeks[0][0].date().isoformat(),
        "_busy_week": busy_weeks[-1][0].date().isoformat(),
        "_week_sizes": (busy_weeks[0][1], busy_weeks[-1][1]),
        "_client_sizes": (by_size[0][1], by_size[-1][1]),
    }


def _plans(app: Any, site_ids: list[int]) -> dict[str, Any]:
    """300 plans of the clinician's sites; the smallest and the largest tree among them (nodes + signatures)."""
    from sqlalchemy import func, select

    from clinic.extensions import db
    from clinic.plans.models import Plan, PlanSignature

    def nodes(content: list[dict[str, Any]]) -> int:
        return sum(
            1
            + sum(
                1 + sum(1 + len(o.get("interventions", [])) for o in g.get("objectives", []))
                for g in p.get("goals", [])
            )
            for p in content
        )

    rng = random.Random(43)  # noqa: S311 - a reproducible sample, not a secret
    with app.app_context():
        ids = list(db.session.scalars(select(Plan.id).where(Plan.site_id.in_(site_ids)).order_by(Plan.id)))
        chosen = rng.sample(ids, min(300, len(ids)))
        signed = dict(
            db.session.execute(  # type: ignore[arg-type]
                select(PlanSignature.plan_id, func.count())
                .where(PlanSignature.plan_id.in_(chosen))
                .group_by(PlanSignature.plan_id)
            ).all()
        )
        sizes = sorted(
            (nodes(content or []) + signed.get(plan_id, 0), plan_id)
            for plan_id, content in db.session.execute(select(Plan.id, Plan.content).where(Plan.id.in_(chosen)))
        )
    return {
        "plan": [f"/plans/{plan_id}" for plan_id in chosen],
        "_small_plan": sizes[0][1],
        "_large_plan": sizes[-1][1],
        "_plan_sizes": (sizes[0][0], sizes[-1][0]),
    }


def _dosing(app: Any) -> dict[str, Any]:
    """The OTP with the most clients due, a user of it, its days, and cursors for a short last page.

    The dosing record's last day stands for the seed's --today; the load asks for a random one of the 30
    days before it (a past day: the list as recorded). The site's own today is measured too: only then does
    the window show each client's take-home eligibility.
    """
    from sqlalchemy import func, select

    from clinic.auth.models import Role, Site, User
    from clinic.core.time import local_today
    from clinic.dosing.models import Dose
    from clinic.dosing.pages import WINDOW_PAGE, _sort_key, _window_query
    from clinic.extensions import db
    from clinic.plans.models import Medication

    with app.app_context():
        last_day = db.session.scalar(select(func.max(Dose.given_on)))
        otps = list(db.session.scalars(select(Site).where(Site.is_otp.is_(True)).order_by(Site.id)))

        def due(site: Any, day: Any) -> int:
            return int(db.session.scalar(select(func.count()).select_from(_window_query(site, day, "").subquery())))

        site = max(otps, key=lambda s: due(s, last_day - timedelta(days=1)))
        today = local_today(site.timezone)
        # Past days only: the site's today, if the record reaches it, is measured on its own.
        anchor = min(last_day + timedelta(days=1), today)
        days = [anchor - timedelta(days=offset) for offset in range(1, 31)]
        sizes = {day: due(site, day) for day in days}
        user = next(
            u
            for u in db.session.scalars(select(User).where(User.role == Role.CLINICIAN).order_by(User.email))
            if site.id in u.site_ids
        )

        def last_page(day: Any, rows: int) -> str:
            """The cursor after which ``rows`` orders are left: a page shorter than the first."""
            order = list(
                db.session.execute(
                    _window_query(site, day, "")
                    .with_only_columns(Medication.client_id, Medication.id)
                    .order_by(*_sort_key())
                )
            )
            client_id, order_id = order[-rows - 1]
            return f"{client_id}-{order_id}"

        base = f"/dosing?site_id={site.id}"
        busiest = max(days, key=lambda d: sizes[d])
        short = 3
        return {
            "dosing window": [f"{base}&date={day.isoformat()}" for day in days],
            "dosing today": [f"{base}&date={today.isoformat()}"],
            "_dosing_email": user.email,
            "_dosing_site": f"{site.name} (id {site.id})",
            "_dosing_due": (min(sizes.values()), max(sizes.values())),
            "_dosing_days": (days[-1], days[0]),
            "_dosing_today": today,
            "_dosing_today_due": due(site, today),
            "_dosing_small": f"{base}&date={busiest.isoformat()}&after={last_page(busiest, short)}",
            "_dosing_large": f"{base}&date={busiest.isoformat()}",
            "_dosing_sizes": (short, min(WINDOW_PAGE, sizes[busiest])),
            "_dosing_today_small": f"{base}&date={today.isoformat()}&after={last_page(today, short)}",
            "_dosing_today_large": f"{base}&date={today.isoformat()}",
            "_dosing_today_sizes": (short, min(WINDOW_PAGE, due(site, today))),
            "_last_day": last_day,
        }


def _report_sql(app: Any, name: str, start: Any, end: Any) -> tuple[float, float]:
    """The report's own time and its bare SQL time in ms (statements replayed on the raw cursor), best of 5."""
    import time

    from sqlalchemy import event

    from clinic.core.time import today
    from clinic.extensions import db
    from clinic.reports.registry import Context, Scope, get_report

    report = get_report(name)
    if report is None:
        raise SystemExit(f"no report {name}")
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    best = bare = float("inf")
    with app.app_context():
        engine = db.engine
        for attempt in range(6):
            if attempt == 0:
                event.listen(engine, "before_cursor_execute", capture)
            started = time.perf_counter()
            report.compute(Context(start=start, end=end, today=today(), scope=Scope(None)))
            if attempt:  # the first run warms the cache, as the page's warm-up does
                best = min(best, time.perf_counter() - started)
            if attempt == 0:
                event.remove(engine, "before_cursor_execute", capture)
            db.session.rollback()
        for _ in range(5):
            with engine.connect() as connection:
                cursor = connection.connection.cursor()
                started = time.perf_counter()
                for statement, parameters in captured:
                    cursor.execute(statement, parameters)
                    cursor.fetchall()
                bare = min(bare, time.perf_counter() - started)
                connection.rollback()
    return best * 1000, bare * 1000


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
    # A report's page can take seconds: wrk's 2 s default timeout would drop those requests from the figures.
    threads = min(2, connections)
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "60s",
        "--latency",
        "-s",
        str(script),
        BASE,
    ]
    return _parse(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def main() -> None:  # noqa: PLR0915 - one script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per page")
    parser.add_argument("--connections", type=int, default=4, help="concurrent users")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--only", nargs="*", default=(), metavar="PAGE", help="load only these pages")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    app = make_app()
    clinician_token, clinician_id, site_ids = token_for(app, CLINICIAN_EMAIL)
    intake_token, _intake_id, _sites = token_for(app, INTAKE_EMAIL)
    admin_token, _admin_id, _admin_sites = token_for(app, ADMIN_EMAIL)
    from clinic.dosing.pages import WINDOW_PAGE

    samples = _samples(app, site_ids, clinician_id)
    samples.update(_plans(app, site_ids))
    samples.update(_dosing(app))
    dosing_token = token_for(app, samples["_dosing_email"])[0]
    end = samples["_last_day"]
    start = end - timedelta(days=REPORT_DAYS)
    budgets: dict[str, tuple[float, float]] = {}
    for report in REPORTS:
        name = f"report {report}"
        samples[name] = [f"/reports/{report}?from={start.isoformat()}&to={end.isoformat()}"]
        samples[f"_{name}_short"] = (
            f"/reports/{report}?from={(end - timedelta(days=6)).isoformat()}&to={end.isoformat()}"
        )
        budgets[name] = _report_sql(app, report, start, end)
    tokens = {"intake queue": intake_token, "dosing window": dosing_token, "dosing today": dosing_token}
    tokens.update({f"report {report}": admin_token for report in REPORTS})

    growth = [
        (
            "client chart",
            f"/clients/{samples['_small_client']}",
            f"/clients/{samples['_large_client']}",
            clinician_token,
            "appointments of the client",
            samples["_client_sizes"],
        ),
        (
            "schedule week",
            f"/schedule?view=week&clinician_id={clinician_id}&date={samples['_quiet_week']}",
            f"/schedule?view=week&clinician_id={clinician_id}&date={samples['_busy_week']}",
            clinician_token,
            "appointments in the week",
            samples["_week_sizes"],
        ),
        (
            "plan",
            f"/plans/{samples['_small_plan']}",
            f"/plans/{samples['_large_plan']}",
            clinician_token,
            "nodes of the tree + signatures",
            samples["_plan_sizes"],
        ),
        (
            "dosing window",
            samples["_dosing_small"],
            samples["_dosing_large"],
            dosing_token,
            "orders listed, a past day",
            samples["_dosing_sizes"],
        ),
        (
            "dosing today",
            samples["_dosing_today_small"],
            samples["_dosing_today_large"],
            dosing_token,
            "orders listed, the site's today",
            samples["_dosing_today_sizes"],
        ),
    ]
    growth += [
        (
            f"report {report}",
            samples[f"_report {report}_short"],
            samples[f"report {report}"][0],
            admin_token,
            "days in the range",
            (7, REPORT_DAYS + 1),
        )
        for report in REPORTS
    ]
    statement_rows = []
    for name, small, large, token, what, sizes in growth:
        statement_rows.append((name, what, sizes, _statements(app, token, small), _statements(app, token, large)))
    for name, path, token in (("today", "/today", clinician_token), ("intake queue", "/intake", intake_token)):
        statement_rows.append((name, "", ("", ""), _statements(app, token, path), _statements(app, token, path)))

    pages = [
        name
        for name in (
            "client chart",
            "today",
            "schedule week",
            "intake queue",
            "plan",
            "dosing window",
            "dosing today",
            *(f"report {report}" for report in REPORTS),
        )
        if not options.only or name in options.only
    ]
    env = {**os.environ, "CLINIC_ENV": "production", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "-w",
            str(options.workers),
            "-b",
            f"127.0.0.1:{PORT}",
            "--log-level",
            "warning",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,  # the request log
    )
    results = []
    load_before = os.getloadavg()[0]
    try:
        _wait_ready()
        with tempfile.TemporaryDirectory() as tmp:
            for name in pages:
                token = tokens.get(name, clinician_token)
                script = Path(tmp) / f"{name.replace(' ', '_')}.lua"
                script.write_text(LUA % {"paths": ", ".join(json.dumps(p) for p in samples[name]), "token": token})
                run_wrk(script, 3, options.connections)  # warm each worker's caches and pool
                result = run_wrk(script, options.duration, options.connections)
                result["name"] = name
                results.append(result)
                if name.startswith("report "):  # one administrator alone: the page's time beyond its SQL
                    run_wrk(script, 3, 1)  # let the requests still running from the 4 users finish
                    result = run_wrk(script, options.duration, 1)
                    result["name"] = f"{name} (1 user)"
                    results.append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(
        f"machine: {machine()}; gunicorn -w {options.workers}; wrk -t2 -c{options.connections} "
        f"-d{options.duration}s per page; target p95 < {TARGET_MS:.0f} ms (reports: SQL + {REPORT_BUDGET_MS:.0f} ms)"
    )
    print(f"load average (1 min) before the load: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(
        f"dosing: {samples['_dosing_site']} as {samples['_dosing_email']}; past days "
        f"{samples['_dosing_days'][0]}..{samples['_dosing_days'][1]} ({samples['_dosing_due'][0]}-"
        f"{samples['_dosing_due'][1]} orders due, {WINDOW_PAGE} a page); today {samples['_dosing_today']} "
        f"({samples['_dosing_today_due']} due)"
    )
    print(f"reports: {start}..{end}, all sites, as {ADMIN_EMAIL}")
    for name, (own, bare) in budgets.items():
        target = bare + REPORT_BUDGET_MS
        print(f"  {name:22} report {own:7.1f} ms, bare SQL {bare:7.1f} ms -> target p95 < {target:.1f} ms")
    print(f"{'page':31} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'target':>8}")
    for r in results:
        report = r["name"].removesuffix(" (1 user)")
        target = budgets[report][1] + REPORT_BUDGET_MS if report in budgets else TARGET_MS
        verdict = "met" if r["p95_ms"] < target and not r["non_2xx"] else "MISSED"
        print(
            f"{r['name']:31} {r['rps']:8.1f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} {r['p99_ms']:8.2f} "
            f"{r['non_2xx']:>8} {target:8.1f} {verdict}"
        )
    print("SQL statements per page (small case / large case):")
    for name, what, sizes, small, large in statement_rows:
        detail = f" ({what}: {sizes[0]} / {sizes[1]})" if what else ""
        print(f"  {name:22} {small:>4} / {large:<4}{detail}")


if __name__ == "__main__":
    main()
