"""No lost updates: concurrent edits of one plan with the same ETag on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask

from clinic.auth import operations as auth_ops
from clinic.auth.models import Role
from clinic.extensions import db
from tests.conftest import committed_postgres_app as committed_postgres

WRITERS = 20


@pytest.fixture
def committed_postgres_app() -> Iterator[Flask]:
    with committed_postgres(connections=WRITERS) as app:
        yield app


def test_twenty_concurrent_patches_with_one_etag_give_one_winner(committed_postgres_app):
    app = committed_postgres_app
    with app.test_request_context():
        site = auth_ops.create_site(name="Concurrency", timezone="America/Chicago")
        clinician = auth_ops.create_user(
            email="c@example.org",
            name="C",
            role=Role.CLINICIAN,
            site_ids=[site.id],
            password="a long and uncommon passphrase",
        )
        db.session.flush()
        _row, token = auth_ops.create_token(clinician, name="t", expires_in_days=1)
        site_id = site.id
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    person = client.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": site_id, "first_name": "Ana", "last_name": "Lima", "date_of_birth": "1990-01-01"},
    ).get_json()
    created = client.post(f"/api/v1/clients/{person['id']}/plans", headers=headers, json={"problems": []})
    plan_id, etag = created.get_json()["id"], created.headers["ETag"]

    barrier = threading.Barrier(WRITERS)
    results: dict[int, tuple[int, str | None]] = {}

    def writer(n: int) -> None:
        own = app.test_client()
        body = {"problems": [{"description": f"Problem written by writer {n}", "goals": []}]}
        barrier.wait()
        response = own.patch(f"/api/v1/plans/{plan_id}", headers={**headers, "If-Match": etag}, json=body)
        results[n] = (response.status_code, response.headers.get("ETag"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = Counter(status for status, _ in results.values())
    assert statuses == {200: 1, 412: WRITERS - 1}
    winner = next(n for n, (status, _) in results.items() if status == 200)
    stored = client.get(f"/api/v1/plans/{plan_id}", headers=headers)
    assert stored.get_json()["problems"][0]["description"] == f"Problem written by writer {winner}"
    assert stored.get_json()["revision"] == 2
    assert stored.headers["ETag"] == results[winner][1]
    revisions = client.get(f"/api/v1/plans/{plan_id}/revisions", headers=headers).get_json()["items"]
    assert [r["number"] for r in revisions] == [1, 2]
