"""Test fixtures: one migrated database per backend per run, each test in a rolled-back transaction.

The suite runs on SQLite always and on PostgreSQL when ``TEST_DATABASE_URL`` is set or
``CLINIC_REQUIRE_SERVICES=1`` (then an unreachable server fails the run instead of skipping).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text

from clinic import create_app
from clinic.auth import operations as auth_ops
from clinic.auth.models import Role, Site, User
from clinic.extensions import db

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
PASSWORD = "a-long-and-uncommon-passphrase"

# Workers the tests start (development settings, throw-away databases) anchor the audit chain to
# the log, not to the development database's anchor file in instance/.
os.environ["AUDIT_ANCHOR_TARGET"] = "log"


def services_required() -> bool:
    return os.environ.get("CLINIC_REQUIRE_SERVICES") == "1"


def postgres_base_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    if services_required():
        return DEFAULT_PG_URL
    return None


def redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        return url
    if services_required():
        return DEFAULT_REDIS_URL
    return None


def _sqlalchemy_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@pytest.fixture(scope="session")
def require_redis() -> str:
    """A reachable Redis URL; skips without one unless services are required."""
    import redis

    url = redis_url()
    if url is None:
        pytest.skip("Redis tests need TEST_REDIS_URL or CLINIC_REQUIRE_SERVICES=1")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {url} is not reachable: {exc}")
    return url


class TempPostgres:
    """A throw-away PostgreSQL database created next to the one the URL names."""

    def __init__(self, base_url: str) -> None:
        self.admin_url = make_url(_sqlalchemy_url(base_url))
        self.name = f"clinic_test_{uuid.uuid4().hex[:10]}"
        self.url = self.admin_url.set(database=self.name).render_as_string(hide_password=False)

    def create(self) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"PostgreSQL at {self.admin_url.render_as_string()} is not usable: {exc}")
        finally:
            engine.dispose()

    def drop(self) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()


def _backend_params() -> list[Any]:
    params: list[Any] = [pytest.param("sqlite", id="sqlite")]
    params.append(
        pytest.param(
            "postgresql",
            id="postgresql",
            marks=pytest.mark.skipif(
                postgres_base_url() is None,
                reason="PostgreSQL tests need TEST_DATABASE_URL or CLINIC_REQUIRE_SERVICES=1",
            ),
        )
    )
    return params


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Make (once per backend) an empty database and return its URL."""
    made: dict[str, str] = {}
    temps: list[TempPostgres] = []

    def url_for(backend: str) -> str:
        if backend not in made:
            if backend == "sqlite":
                made[backend] = f"sqlite:///{tmp_path_factory.mktemp('db') / 'clinic.db'}"
            else:
                base = postgres_base_url()
                assert base is not None
                temp = TempPostgres(base)
                temp.create()
                temps.append(temp)
                made[backend] = temp.url
        return made[backend]

    yield url_for
    for temp in temps:
        temp.drop()


@contextmanager
def committed_postgres_app(connections: int) -> Iterator[Flask]:
    """An app on a throw-away PostgreSQL database whose commits are real, for tests of concurrent writers.

    Skips without PostgreSQL (fails when services are required). The pool holds ``connections``
    (plus a few), so that many requests can hold a connection at once.
    """
    base = postgres_base_url()
    if base is None:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL or CLINIC_REQUIRE_SERVICES=1)")
    temp = TempPostgres(base)
    temp.create()
    app = make_test_app(
        temp.url,
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_size": connections + 2,
            "max_overflow": 5,
            "hide_parameters": True,
        },
    )
    try:
        with app.app_context():
            upgrade()
            db.session.remove()
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        temp.drop()


def committed_clinician(
    app: Flask,
    *,
    email: str,
    site_name: str = "Parallel site",
    timezone: str = "America/New_York",
    is_otp: bool = False,
) -> tuple[int, int, dict[str, str]]:
    """A site and its clinician, committed, on a :func:`committed_postgres_app`: (site id, user id, bearer headers)."""
    with app.test_request_context():
        site = auth_ops.create_site(name=site_name, timezone=timezone, is_otp=is_otp)
        db.session.flush()
        user = auth_ops.create_user(
            email=email, name="Dana Reyes", role=Role.CLINICIAN, site_ids=[site.id], password=PASSWORD, audit=False
        )
        _row, token = auth_ops.create_token(user, name="test", expires_in_days=1)
        site_id, user_id = site.id, user.id
        db.session.commit()
    return site_id, user_id, {"Authorization": f"Bearer {token}"}


def make_test_app(database_url: str, **overrides: Any) -> Flask:
    settings = {
        "SQLALCHEMY_DATABASE_URI": _sqlalchemy_url(database_url),
        **overrides,
    }
    return create_app("testing", settings)


@pytest.fixture(scope="session", params=_backend_params())
def app(request: pytest.FixtureRequest, database_urls: Callable[[str], str]) -> Iterator[Flask]:
    """The application on a freshly migrated database (``flask db upgrade``), per backend."""
    application = make_test_app(database_urls(request.param))
    with application.app_context():
        upgrade()
        db.session.remove()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _transaction(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run each database test inside a transaction that is rolled back afterwards.

    Application code commits freely: its commits release savepoints on the outer transaction.
    """
    if "app" not in request.fixturenames:
        yield
        return
    application: Flask = request.getfixturevalue("app")
    # No app context stays pushed during the test: each request must get its own, as in production.
    with application.app_context():
        engine = db.engine
    connection = engine.connect()
    outer = connection.begin()
    engines = db._app_engines[application]
    engines[None] = connection  # type: ignore[assignment]
    factory_kw = db.session.session_factory.kw
    factory_kw["join_transaction_mode"] = "create_savepoint"
    try:
        yield
    finally:
        factory_kw.pop("join_transaction_mode", None)
        engines[None] = engine
        outer.rollback()
        connection.close()


@pytest.fixture
def backend(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


@pytest.fixture
def make_site(app: Flask) -> Callable[..., Site]:
    counter = iter(range(1, 10_000))

    def factory(**fields: Any) -> Site:
        n = next(counter)
        values = {"name": f"Site {n} {uuid.uuid4().hex[:6]}", "timezone": "America/New_York", **fields}
        with app.app_context():
            site = auth_ops.create_site(**values)
            db.session.commit()
            db.session.refresh(site)
            db.session.expunge(site)
        return site

    return factory


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    def factory(role: str | Role = Role.CLINICIAN, *, sites: list[Site] | None = None, **fields: Any) -> User:
        values = {
            "email": f"{uuid.uuid4().hex[:10]}@example.org",
            "name": "Test User",
            "password": PASSWORD,
            "site_ids": [s.id for s in sites or []],
            **fields,
        }
        with app.app_context():
            user = auth_ops.create_user(role=Role(role), audit=False, **values)
            db.session.commit()
            user_id = user.id
            db.session.remove()
            loaded = db.session.get(User, user_id)
            assert loaded is not None
            _ = loaded.sites
            db.session.expunge_all()
        return loaded

    return factory


@dataclass
class Session:
    """A test client signed in with a cookie session, sending the CSRF token on every request."""

    client: FlaskClient
    csrf_token: str
    user: User

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("X-CSRF-Token", self.csrf_token)
        kwargs["headers"] = headers
        return kwargs

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, **self._headers(kwargs))

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.client.patch(url, **self._headers(kwargs))

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.client.put(url, **self._headers(kwargs))

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.client.delete(url, **self._headers(kwargs))


@pytest.fixture
def login(app: Flask) -> Callable[..., Session]:
    def sign_in(user: User, password: str = PASSWORD) -> Session:
        client = app.test_client()
        response = client.post("/api/v1/auth/login", json={"email": user.email, "password": password})
        assert response.status_code == 200, response.get_json()
        return Session(client=client, csrf_token=response.get_json()["csrf_token"], user=user)

    return sign_in


@pytest.fixture
def bearer(app: Flask) -> Callable[[User], dict[str, str]]:
    """Authorization headers carrying a fresh API token of ``user``."""

    def make(user: User) -> dict[str, str]:
        with app.test_request_context():
            loaded = db.session.get(User, user.id)
            assert loaded is not None
            _row, token = auth_ops.create_token(loaded, name="test", expires_in_days=1)
            db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
