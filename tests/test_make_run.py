"""``make run``'s processes as honcho starts them from Procfile.dev: ready, quiet, tidy, and stopped by Ctrl-C.

honcho runs web (gunicorn), worker and beat on a fresh SQLite database and the embedded broker,
from a scratch working directory, as ``make run`` does from the checkout. Then: /readyz turns 200
once the worker has beaten; nothing is written outside instance/ (kombu's broker used to leave a
``control/`` folder in the working directory); the periodic housekeeping of an idle clinic logs
nothing at INFO; and SIGINT to honcho (Ctrl-C) stops all three within seconds, each with status
0, without a traceback, an error line or honcho's SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config import BASE_DIR

START_SECONDS = 90
STOP_SECONDS = 15
IDLE_SECONDS = 5


def _free_port() -> int:
    """A free loopback port for the web process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.slow
def test_make_run_starts_ready_stays_quiet_and_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "checkout"
    (workdir / "instance").mkdir(parents=True)
    # What the Procfile's commands read from the working directory.
    (workdir / "gunicorn.conf.py").symlink_to(BASE_DIR / "gunicorn.conf.py")
    database = workdir / "instance" / "clinic.db"
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "PUBLIC_BASE_URL"}},
        "CLINIC_ENV": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "CELERY_DATA_DIR": str(workdir / "instance" / "broker"),
        "PYTHONPATH": str(BASE_DIR),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Beat sends the seal every second, so an idle minute's worth of housekeeping happens quickly.
        "AUDIT_SEAL_INTERVAL_SECONDS": "1",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert migrate.returncode == 0, migrate.stderr

    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "--no-colour", "-f", str(BASE_DIR / "Procfile.dev"), "-d", str(workdir),
             "start", "--port", str(port)],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        readyz = f"http://127.0.0.1:{port}/readyz"

        def ready() -> bool:
            assert honcho.poll() is None, log_path.read_text()
            try:
                return requests.get(readyz, timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading the app
                return False

        deadline = time.monotonic() + START_SECONDS
        while not ready():
            assert time.monotonic() < deadline, f"never ready:\n{log_path.read_text()[-4000:]}"
            time.sleep(0.5)
        body = requests.get(readyz, timeout=5).json()
        assert body["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}

        # Five idle seals later (one a second): beat and the worker said nothing about them at INFO.
        time.sleep(IDLE_SECONDS)
        idle = log_path.read_text()
        assert "Sending due task" not in idle, idle[-4000:]
        assert not re.search(r"seal_audit_events\[", idle), idle[-4000:]  # received / succeeded
        assert "superuser privileges" not in idle
        assert "No hostname was supplied" not in idle

        stop_sent = time.monotonic()
        os.kill(honcho.pid, signal.SIGINT)
        returncode = honcho.wait(timeout=STOP_SECONDS)
        stopped_after = time.monotonic() - stop_sent
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)

    output = log_path.read_text()
    assert returncode == 130, output[-4000:]  # honcho's status for a stop by SIGINT (make run accepts it)
    assert stopped_after < 5, f"stopping took {stopped_after:.1f} s:\n{output[-4000:]}"
    for name in ("web.1", "worker.1", "beat.1"):
        assert f"{name} stopped (rc=0)" in output, output[-4000:]
    assert "SIGKILL" not in output
    assert "Traceback" not in output
    assert not re.search(r"\bERROR\b", output), output[-4000:]
    # All runtime state is under instance/: nothing else appeared in the working directory.
    assert sorted(p.name for p in workdir.iterdir()) == ["gunicorn.conf.py", "instance"]
    assert (workdir / "instance" / "broker" / "control").is_dir()
