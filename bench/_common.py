"""Shared by the benchmark scripts: the benchmark database, the app, a bearer token, sample ids."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The seeded benchmark database (docs/performance.md): 100,000 clients.
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/clinic_bench")
os.environ["DATABASE_URL"] = BENCH_DATABASE_URL
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-0123456789abcdef")
os.environ.setdefault("AUDIT_CHAIN_KEY", "benchmark-only-audit-chain-key-0123456789abcdef")

CLINICIAN_EMAIL = "clinician1.riverside@demo.example.org"
ADMIN_EMAIL = "admin@demo.example.org"


def make_app() -> Any:
    from clinic import create_app

    return create_app("production")


def token_for(app: Any, email: str) -> tuple[str, int, list[int]]:
    """A fresh one-day API token of the demo user, with their id and site ids."""
    from sqlalchemy import select

    from clinic.auth import operations as auth_ops
    from clinic.auth.models import User
    from clinic.extensions import db

    with app.test_request_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        _row, token = auth_ops.create_token(user, name="benchmark", expires_in_days=1)
        db.session.commit()
        return token, user.id, list(user.site_ids)


def machine() -> str:
    cores = os.cpu_count()
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {cores} cores, {total_kib / 1024 / 1024:.0f} GiB, Python {platform.python_version()}"
