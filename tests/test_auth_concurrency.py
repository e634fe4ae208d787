"""Account rules that must hold under parallel requests, on PostgreSQL with committed data.

Each attempt is a request of its own, on its own thread and pooled connection, so the database
sees them interleave as it would behind several gunicorn workers.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from clinic.audit.models import AuditEvent
from clinic.auth import operations as auth_ops
from clinic.auth.models import Role, User
from clinic.core.time import utcnow
from clinic.extensions import db
from tests.conftest import PASSWORD
from tests.conftest import committed_postgres_app as committed_postgres

ATTEMPTS = 24
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def committed_postgres_app() -> Iterator[Flask]:
    with committed_postgres(connections=ATTEMPTS) as app:
        yield app


def _in_parallel(count: int, attempt: Callable[[int], Any]) -> dict[int, Any]:
    """Run ``attempt(n)`` for n in 0..count-1 on as many threads, released at the same instant."""
    barrier = threading.Barrier(count)
    results: dict[int, Any] = {}

    def run(n: int) -> None:
        barrier.wait()
        results[n] = attempt(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == count, "an attempt did not finish"
    return results


def _make_user(app: Flask, email: str, role: Role = Role.ADMIN) -> int:
    with app.test_request_context():
        user = auth_ops.create_user(email=email, name="Parallel", role=role, site_ids=[], password=PASSWORD)
        db.session.commit()
        return user.id


def test_parallel_wrong_passwords_lock_the_account_and_are_audited_once(committed_postgres_app: Flask) -> None:
    app = committed_postgres_app
    user_id = _make_user(app, "target@example.org")

    def wrong_password(n: int) -> int:
        response = app.test_client().post(
            LOGIN, json={"email": "target@example.org", "password": f"a wrong guess number {n}"}
        )
        return response.status_code

    statuses = _in_parallel(ATTEMPTS, wrong_password)
    assert Counter(statuses.values()) == {401: ATTEMPTS}

    # Locked for fifteen minutes: the right password is refused with the same 401.
    refused = app.test_client().post(LOGIN, json={"email": "target@example.org", "password": PASSWORD})
    assert refused.status_code == 401
    with app.app_context():
        user = db.session.get_one(User, user_id)
        assert user.locked_until is not None
        assert timedelta(minutes=14) < user.locked_until - utcnow() <= timedelta(minutes=15)
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource_id == str(user_id), AuditEvent.action.like("auth.%"))
        ).all()
        assert [e.action for e in events].count("auth.lockout") == 1
        reasons = Counter((e.details or {}).get("reason") for e in events if e.action == "auth.login")
        # Exactly the threshold counted as failures; every other attempt met the lock.
        assert reasons == {"wrong_password": 10, "locked": ATTEMPTS - 10 + 1}
        # The lock runs out after its fifteen minutes, and then the right password works again.
        db.session.execute(update(User).where(User.id == user_id).values(locked_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    signed_in = app.test_client().post(LOGIN, json={"email": "target@example.org", "password": PASSWORD})
    assert signed_in.status_code == 200


def test_two_admins_demoting_each_other_at_once_leave_one_admin(committed_postgres_app: Flask) -> None:
    app = committed_postgres_app
    with app.test_request_context():
        site_id = auth_ops.create_site(name="Race", timezone="America/Chicago").id
        db.session.commit()
    for round_number in range(5):
        with app.test_request_context():
            # Only this round's two administrators are active.
            db.session.execute(update(User).where(User.role == Role.ADMIN).values(is_active=False))
            admins = [
                auth_ops.create_user(
                    email=f"admin{round_number}-{n}@example.org", name="Admin", role=Role.ADMIN, site_ids=[], password=PASSWORD
                )
                for n in range(2)
            ]
            tokens = [auth_ops.create_token(admin, name="t", expires_in_days=1)[1] for admin in admins]
            ids = [admin.id for admin in admins]
            db.session.commit()

        def demote_the_other(n: int, ids: list[int] = ids, tokens: list[str] = tokens) -> int:
            response = app.test_client().patch(
                f"/api/v1/users/{ids[1 - n]}",
                json={"role": "clinician", "site_ids": [site_id]},
                headers={"Authorization": f"Bearer {tokens[n]}"},
            )
            return response.status_code

        statuses = _in_parallel(2, demote_the_other)
        assert sorted(statuses.values()) == [200, 409], round_number
        with app.app_context():
            active_admins = db.session.scalars(
                select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True))
            ).all()
            assert len(active_admins) == 1, round_number
