"""The embedded default under load: SQLite with the worker sealing audit events gives no error.

A clinic on `make run` saw a sign-in answered 503 "database busy" while the worker sealed audit
events, and the sealer logged "database is locked". This runs bench/sqlite_mixed.py's load for
10 seconds (the bench runs it for 60): a real Celery worker and beat on the embedded broker, the
seal every second, and staff signing in, searching, opening charts, registering clients and
changing phone numbers from four threads at once. Every answer must be below 500, nothing may
raise, and the worker's log must hold no "database is locked".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sqlite_mixed import run
from tests.test_celery_worker import _celery_default_app_kept

SECONDS = 10
THREADS = 4


@pytest.mark.slow
def test_a_mixed_load_with_the_worker_sealing_gives_no_error(tmp_path: Path) -> None:
    with _celery_default_app_kept():  # the load's app must not stay Celery's default for later tests
        result = run(SECONDS, THREADS, tmp_path)

    assert result.errors == [], result.summary()
    assert sum(result.requests.values()) > 50, result.summary()
    assert result.requests["sign-in"] > 0 and result.requests["write"] > 0, result.summary()
    assert result.sealed > 0, result.summary()  # the worker sealed while the load ran
