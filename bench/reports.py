"""Reports over the full 100,000-client data: each report's time against the bare SQL it runs.

    .venv/bin/python bench/reports.py [--repeat 3] [--only drug-screens ...] [--days 90] [--show-sql]

Every report runs for all sites over five years ending today (the widest range allowed), or over the
range from --days days before today (the console measures its reports page with 90). The SQL
statements it sends are captured, then replayed through the raw driver cursor; the ratio is the
report's time over that bare SQL time (the best of --repeat runs of each).
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from typing import Any

from _common import machine, make_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=(), metavar="REPORT", help="run only these reports")
    parser.add_argument("--days", type=int, default=5 * 365, help="from this many days before today")
    parser.add_argument("--show-sql", action="store_true", help="print each report's SQL")
    options = parser.parse_args()
    from sqlalchemy import event

    from clinic.core.time import utcnow
    from clinic.extensions import db
    from clinic.reports.registry import Context, Scope, all_reports

    app = make_app()
    end = utcnow().date()
    start = end - timedelta(days=options.days)
    print(f"machine: {machine()}; range {start}..{end}, all sites; best of {options.repeat}")
    print(f"{'report':24} {'report s':>9} {'bare SQL s':>11} {'ratio':>6} {'rows':>6}")
    with app.app_context():
        engine = db.engine
        for report in all_reports():
            if options.only and report.name not in options.only:
                continue
            captured: list[tuple[str, Any]] = []

            def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
                captured.append((statement, parameters))  # noqa: B023 - read right after this report

            best = float("inf")
            rows = 0
            for attempt in range(options.repeat):
                if attempt == 0:
                    event.listen(engine, "before_cursor_execute", capture)
                started = time.perf_counter()
                result = report.compute(Context(start=start, end=end, today=end, scope=Scope(None)))
                best = min(best, time.perf_counter() - started)
                if attempt == 0:
                    event.remove(engine, "before_cursor_execute", capture)
                rows = len(result.rows)
                db.session.rollback()
            bare = float("inf")
            for _ in range(options.repeat):
                with engine.connect() as connection:
                    cursor = connection.connection.cursor()
                    started = time.perf_counter()
                    for statement, parameters in captured:
                        cursor.execute(statement, parameters)
                        cursor.fetchall()
                    bare = min(bare, time.perf_counter() - started)
                    connection.rollback()
            if options.show_sql:
                for statement, parameters in captured:
                    print(statement, parameters, sep="\n")
            print(f"{report.name:24} {best:9.3f} {bare:11.3f} {best / bare:6.2f} {rows:>6}")


if __name__ == "__main__":
    main()
