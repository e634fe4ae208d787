"""HTTP conventions: problem+json errors, security headers, keyset pagination, health, the spec, CLI."""

from __future__ import annotations

import pytest

from clinic.auth.permissions import public
from tests.conftest import make_test_app, postgres_base_url

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _is_problem(response, status):
    body = response.get_json()
    return (
        response.status_code == status
        and response.headers["Content-Type"] == "application/problem+json"
        and set(body) >= PROBLEM_KEYS
        and body["status"] == status
    )


def test_malformed_json_is_a_400_problem(client, bearer, make_user):
    response = client.post(
        "/api/v1/sites", data="{not json", content_type="application/json", headers=bearer(make_user("admin"))
    )
    assert _is_problem(response, 400)


def test_validation_errors_are_422_naming_each_field(client, bearer, make_user):
    response = client.post(
        "/api/v1/sites",
        json={"name": "  ", "timezone": "Mars/Olympus", "colour": "red"},
        headers=bearer(make_user("admin")),
    )
    assert _is_problem(response, 422)
    errors = response.get_json()["errors"]
    assert set(errors) == {"name", "timezone", "colour"}


def test_unknown_path_and_wrong_method_are_problems(client):
    assert _is_problem(client.get("/api/v1/nothing-here"), 404)
    wrong = client.delete("/healthz")
    assert _is_problem(wrong, 405)
    assert "GET" in wrong.headers["Allow"]


def test_missing_record_is_404(client, bearer, make_user):
    assert _is_problem(client.get("/api/v1/users/987654", headers=bearer(make_user("admin"))), 404)


def test_conflict_is_409_naming_the_field(client, bearer, make_user):
    headers = bearer(make_user("admin"))
    client.post("/api/v1/sites", json={"name": "Harbor", "timezone": "America/Chicago"}, headers=headers)
    again = client.post("/api/v1/sites", json={"name": "harbor", "timezone": "America/Chicago"}, headers=headers)
    assert _is_problem(again, 409)
    assert "name" in again.get_json()["errors"]


def test_a_server_error_reveals_nothing(database_urls):
    crashing = make_test_app(database_urls("sqlite"))

    @crashing.get("/boom")
    @public
    def boom():
        raise RuntimeError("secret internals: SELECT * FROM users")

    response = crashing.test_client().get("/boom")
    assert _is_problem(response, 500)
    assert "secret" not in response.get_data(as_text=True)
    assert "SELECT" not in response.get_data(as_text=True)


def test_a_route_without_permission_is_refused(database_urls):
    careless = make_test_app(database_urls("sqlite"))

    @careless.get("/forgot-to-declare")
    def forgot():
        return {"leak": True}

    assert careless.test_client().get("/forgot-to-declare").status_code == 403


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/nothing", "/api/v1/auth/me", "/api/v1/openapi.json"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "max-age" in headers["Strict-Transport-Security"]  # every environment but development


def test_hsts_outside_development(database_urls):
    from clinic import create_app

    strict = create_app(
        "production",
        {"SECRET_KEY": "x" * 40, "AUDIT_CHAIN_KEY": "y" * 40, "SQLALCHEMY_DATABASE_URI": database_urls("sqlite")},
    )
    assert "max-age" in strict.test_client().get("/healthz").headers["Strict-Transport-Security"]
    dev = create_app("development", {"SQLALCHEMY_DATABASE_URI": database_urls("sqlite")})
    assert "Strict-Transport-Security" not in dev.test_client().get("/healthz").headers


def test_production_refuses_to_start_without_a_secret_key():
    from clinic import create_app
    from config import ConfigError

    with pytest.raises(ConfigError):
        create_app("production", {"SECRET_KEY": "", "SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize(
    ("setting", "value"),
    [("REPORT_WORK_MEM", "64"), ("REPORT_WORK_MEM", "lots"), ("REPORT_WORK_MEM", "64MB; SELECT 1"),
     ("REMINDER_SEND_CHUNK", 0), ("REMINDER_BATCH_SIZE", -5)],
)
def test_bad_tuning_settings_refuse_to_start_naming_the_setting(database_urls, setting, value):
    from config import ConfigError

    with pytest.raises(ConfigError, match=setting):
        make_test_app(database_urls("sqlite"), **{setting: value})
    make_test_app(database_urls("sqlite"), REPORT_WORK_MEM="256MB", REMINDER_SEND_CHUNK=1)  # good ones start


def test_signed_in_responses_are_never_cached(client, bearer, make_user):
    response = client.get("/api/v1/auth/me", headers=bearer(make_user("admin")))
    assert response.headers["Cache-Control"] == "no-store"


def test_keyset_pagination_walks_every_row_once(client, bearer, make_user, make_site):
    created = {make_site().id for _ in range(7)}
    headers = bearer(make_user("admin"))
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/sites?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=headers).get_json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert created <= set(seen)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert pages >= 3


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "cursor=forged-cursor"])
def test_bad_paging_parameters_are_422(client, bearer, make_user, query):
    response = client.get(f"/api/v1/sites?{query}", headers=bearer(make_user("admin")))
    assert _is_problem(response, 422)
    assert query.split("=")[0] in response.get_json()["errors"]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_database_broker_and_heartbeat(client):
    response = client.get("/readyz")
    body = response.get_json()
    # No worker has beaten in this database: not ready, naming the worker.
    assert response.status_code == 503
    assert body["checks"] == {"database": "ok", "broker": "ok", "worker": "failed: no heartbeat yet"}
    assert body["worker_heartbeat"]["status"] == "never"


def test_readyz_is_503_naming_the_broker_when_it_does_not_answer(database_urls):
    broken = make_test_app(database_urls("sqlite"), CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("failed")


def test_readyz_is_503_naming_the_database_when_it_does_not_answer(tmp_path):
    broken = make_test_app(f"sqlite:///{tmp_path}/missing-dir/nothing.db")
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("failed")


def test_heartbeat_task_is_reported_by_readyz(app, client):
    from clinic.system.tasks import heartbeat

    with app.app_context():
        heartbeat.apply()
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200
    assert body["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}
    assert body["worker_heartbeat"]["status"] == "ok"
    assert body["worker_heartbeat"]["age_seconds"] < 60


def test_openapi_31_spec_documents_the_api(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/tokens", "post"),
        ("/api/v1/auth/tokens", "get"),
        ("/api/v1/auth/tokens/{token_id}", "delete"),
        ("/api/v1/sites", "post"),
        ("/api/v1/sites", "get"),
        ("/api/v1/sites/{site_id}", "patch"),
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{user_id}", "get"),
        ("/api/v1/users/{user_id}", "patch"),
        ("/api/v1/audit-events", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        operation = paths[path][method]
        assert operation["responses"], (path, method)
    login_body = paths["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert login_body["$ref"].endswith("/Login")
    assert "bearerAuth" in spec["components"]["securitySchemes"]


def test_docs_page_is_served(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert "swagger" in response.get_data(as_text=True).lower()


def test_cli_creates_the_first_admin_from_stdin(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Boss@Example.org",
            "--name",
            "Boss",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input="a long and uncommon passphrase\n",
    )
    assert result.exit_code == 0, result.output
    assert "boss@example.org" in result.output
    login = app.test_client().post(
        "/api/v1/auth/login", json={"email": "boss@example.org", "password": "a long and uncommon passphrase"}
    )
    assert login.status_code == 200


def test_cli_refuses_a_common_password(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "--email", "x@example.org", "--name", "X", "--role", "admin", "--password-stdin"],
        input="qwerty123456\n",
    )
    assert result.exit_code == 1
    assert "password" in result.output


def test_a_busy_database_is_a_503_to_retry_not_a_500(database_urls):
    from sqlalchemy.exc import OperationalError

    busy = make_test_app(database_urls("sqlite"))

    @busy.get("/locked")
    @public
    def locked():
        raise OperationalError("UPDATE x", {}, Exception("database is locked"))

    response = busy.test_client().get("/locked")
    assert _is_problem(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert "UPDATE" not in response.get_data(as_text=True)


def _backend_pid_app(database_url, idle_seconds):
    from sqlalchemy import text

    from clinic.extensions import db

    served = make_test_app(database_url, DATABASE_PING_AFTER_IDLE_SECONDS=idle_seconds)

    @served.get("/backend-pid")
    @public
    def backend_pid():
        return {"pid": db.session.execute(text("SELECT pg_backend_pid()")).scalar()}

    return served


@pytest.mark.skipif(postgres_base_url() is None, reason="needs PostgreSQL (TEST_DATABASE_URL or CLINIC_REQUIRE_SERVICES=1)")
@pytest.mark.parametrize(("idle_seconds", "second_status"), [(0, 200), (3600, 503)])
def test_a_pooled_connection_that_died_while_idle_is_replaced_after_a_ping(database_urls, idle_seconds, second_status):
    """Idle connections are pinged before use; busy ones are not (no round trip per request)."""
    from sqlalchemy import create_engine, text

    url = database_urls("postgresql")
    served = _backend_pid_app(url, idle_seconds)
    http = served.test_client()
    first = http.get("/backend-pid")
    assert first.status_code == 200
    killer = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with killer.connect() as conn:  # the server ends the pooled connection (a restart, a proxy timeout)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first.get_json()["pid"]})
    killer.dispose()
    second = http.get("/backend-pid")
    assert second.status_code == second_status
    if second_status == 200:  # pinged, found dead, replaced: the caller never noticed
        assert second.get_json()["pid"] != first.get_json()["pid"]
    else:  # not idle long enough to be pinged: a 503 to retry, never a 500
        assert _is_problem(second, 503)
    assert http.get("/backend-pid").status_code == 200  # either way the pool recovers
    with served.app_context():
        from clinic.extensions import db

        db.engine.dispose()


def test_sqlite_runs_in_write_ahead_log_mode(database_urls):
    from sqlalchemy import text

    from clinic.extensions import db

    embedded = make_test_app(database_urls("sqlite"))
    with embedded.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
