"""Extensions, created unbound here and bound to the app in ``create_app``.

Celery is created by :func:`clinic.core.celery.celery_init_app` (the Flask documentation's
pattern) and kept in ``app.extensions["celery"]``. How clinic tunes an extension once it is
bound (the engine's connections, the limiter's hooks) is here too, beside the extension.
"""

from __future__ import annotations

import http
import threading
import time
from collections.abc import Mapping
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Flask, current_app, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, missing
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import IntegerConverter, ValidationError

from clinic.core.errors import PROBLEM_MIMETYPE, abort_problem
from clinic.core.models import Base
from clinic.core.schemas import ProblemSchema

#: The largest id a row can have (PostgreSQL ``integer``); the id fields of request bodies share it.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a row id, 1..MAX_ID unless the rule says otherwise.

    A path id outside that range cannot name a row: it is a 404 instead of reaching the
    database with a number it cannot bind (SQLite's limit is 2**63 - 1, PostgreSQL's
    ``integer`` 2**31 - 1). The bounds are documented in the spec as the parameter's minimum
    and maximum.
    """

    def __init__(
        self, map: Any, fixed_digits: int = 0, min: int | None = 1, max: int | None = MAX_ID, signed: bool = False
    ) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> Any:
        try:
            return super().to_python(value)
        except ValidationError:
            # Werkzeug would report "no match" as a 405 when a sibling rule of the same path
            # has other methods (PATCH /users/0 -> "Allow: GET"); the resource does not exist.
            raise NotFound() from None


class RequestParser(FlaskParser):
    """webargs' Flask parser, which refuses to read a missing body as an empty one.

    webargs loads a request with no JSON body (nothing sent, or no JSON ``Content-Type``) as
    ``{}``, so an operation whose fields are all optional ran on nothing (``POST
    /clients/{id}/plans`` made an empty plan). Where the spec requires the body
    (``@blp.arguments(Schema)``; flask-smorest's ``required=True`` is the default), leaving it
    out is a 422 naming ``_schema``, as for a body that is not a JSON object; an operation that
    may be called without one declares ``required=False`` and gets ``{}``. Every blueprint's
    arguments are read by this parser (set below, before any view is decorated).
    """

    def load_json(self, req: Any, schema: Schema) -> Any:
        body = super().load_json(req, schema)
        if body is missing and _requires_body(req.endpoint):
            abort_problem(
                422,
                "This operation needs a JSON body (Content-Type: application/json).",
                errors={"_schema": ["Missing JSON body."]},
            )
        return body


def _requires_body(endpoint: str | None) -> bool:
    """Whether the view of ``endpoint`` documents a required JSON body (flask-smorest keeps the doc on the view)."""
    view = current_app.view_functions.get(endpoint) if endpoint else None
    parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(p.get("in") == "json" and p.get("required", True) for p in parameters)


# Blueprints use the parser given here when their views are decorated; clinic.extensions is
# imported (through the models) before any of them is.
Blueprint.ARGUMENTS_PARSER = RequestParser()


class OperationDocs(BasePlugin):
    """Completes each operation of the spec: an ``operationId``, and problem+json on its errors.

    The ``operationId`` is the Flask endpoint (``clients.get_client``), so links can name their
    targets. An error response documented by its status and description alone
    (``@blp.alt_response(409, description=...)``) is sent as a problem: its content is
    documented as one, so the spec says what the 409's extension members look like.
    """

    def init_spec(self, spec: APISpec) -> None:
        self.problem = spec.components.get_ref("schema", "Problem")

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        for method, operation in (operations or {}).items():
            if rule is not None and "operationId" not in operation:
                many = len(operations or {}) > 1
                operation["operationId"] = f"{rule.endpoint}.{method}" if many else rule.endpoint
            for status, response in operation.get("responses", {}).items():
                if str(status).isdigit() and int(status) >= 400 and isinstance(response, dict):
                    response.setdefault("content", {PROBLEM_MIMETYPE: {"schema": self.problem}})


def links(
    status: int, parameters: Mapping[str, str], *operation_ids: str, body: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """OpenAPI links from the ``status`` response to other operations, for ``@blp.doc(**links(...))``.

    ``parameters`` maps a parameter of the targets to a runtime expression, e.g.
    ``{"client_id": "$response.body#/id"}`` or ``{"header.If-Match": "$response.header.ETag"}``;
    ``body`` gives fields of the targets' request body the same way. Each link is named after
    its target. Clients (and the stateful fuzz tests) follow them from a record just created to
    what can be done with it.
    """
    link: dict[str, Any] = {"parameters": dict(parameters)}
    if body:
        link["requestBody"] = dict(body)
    return {"responses": {status: {"links": {target: {"operationId": target, **link} for target in operation_ids}}}}


class ProblemApi(Api):  # type: ignore[misc]  # flask-smorest ships no type information
    """flask-smorest's Api, with errors served and documented as problem+json, and ids bounded."""

    ERROR_SCHEMA = ProblemSchema

    def init_app(self, app: Any, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        # Before any route is added: rules bind their converters when they are registered.
        app.url_map.converters["int"] = IdConverter
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs["extra_plugins"] = [*spec_kwargs.get("extra_plugins", ()), OperationDocs()]
        super().init_app(app, spec_kwargs=spec_kwargs)

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Any:
        from clinic.core.errors import handle_http_exception

        return handle_http_exception(error)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
#: Endpoints that check a password, the only ones clinic rate limits. Their attempts are counted
#: per client address before the request body is read, so an oversized, malformed or refused
#: attempt counts like any other.
SIGN_IN_ENDPOINTS = frozenset({"auth.login", "auth_pages.login"})  # the API's and the console's


def _sign_in_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _not_a_sign_in() -> bool:
    return request.endpoint not in SIGN_IN_ENDPOINTS


#: The sign-in limit is an application limit confined to the sign-in endpoints: Flask-Limiter checks
#: application limits before every request, ahead of anything that reads the body, whereas a
#: route's own ``@limiter.limit`` is only checked when its view is called, after the body was
#: read and parsed.
limiter = Limiter(
    key_func=get_remote_address,
    application_limits=[
        ApplicationLimit(limit_provider=_sign_in_limit, scope="sign-in", exempt_when=_not_a_sign_in),
    ],
)
# Every other request skips the limiter's lookups at once (they cost about 0.2 ms of CPU a request).
# So a limit declared on another route is only enforced once its endpoint is listed above.
limiter.request_filter(_not_a_sign_in)
api = ProblemApi()


def configure_engine(app: Flask) -> None:
    """SQLite: real transactions (savepoints work), foreign keys on, wait on locks.

    A server database: ping a pooled connection before use only when it sat idle.
    """
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        _ping_idle_connections(engine, float(app.config["DATABASE_PING_AFTER_IDLE_SECONDS"]))
        return

    _configure_sqlite(engine)


#: How long a SQLite transaction waits for the write lock (PRAGMA busy_timeout), well inside the
#: time gunicorn gives a request (30 s) before it replaces the worker.
SQLITE_BUSY_TIMEOUT_SECONDS = 10.0
_HOLDS_TURN = "clinic.sqlite_turn"


def _configure_sqlite(engine: Engine) -> None:
    """SQLite (the embedded default): WAL, a busy timeout, and every transaction a writer from its start.

    Write-ahead logging lets readers go on while one writes (web, worker and beat share the
    file). Each transaction begins IMMEDIATE: it takes the write lock at once, waiting for it up
    to the busy timeout. A deferred one that read first could not take it later once another
    process had written meanwhile (SQLITE_BUSY at once, whatever the timeout): a sign-in failed
    with "database busy" while the worker sealed audit events, and the sealer logged "database is
    locked". Nearly every transaction writes (every read of client data is audited), so waiting
    up front costs little. Threads of one process (a threaded server) take turns in order for
    the lock, instead of polling for it against each other through SQLite's busy handler, which
    let one wait past the timeout while others came and went.
    """
    turn = threading.Lock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Past the timeout, go on without a turn: SQLite's busy timeout still applies.
        if turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS):
            conn.info[_HOLDS_TURN] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _end_turn(conn)
            raise

    def _end_turn(conn: Any) -> None:
        if conn.info.pop(_HOLDS_TURN, False):
            turn.release()

    event.listen(engine, "commit", _end_turn)
    event.listen(engine, "rollback", _end_turn)


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout when it has been idle ``idle_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per request.
    A connection in steady use cannot have gone stale unnoticed, so only one that sat idle
    (through a database restart or a dropped connection, say) is pinged. A failed ping
    discards it and the pool connects afresh. A connection that dies within the idle window
    fails its request with a 503 (clinic.core.errors), and SQLAlchemy then discards the pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer a ping") from exc


_IDLE_SINCE = "clinic.idle_since"


def init_limiter(app: Flask) -> None:
    """Bind the limiter. Its check before every request stays: that is where the sign-in limit is counted.

    (Dropping that check saved about 5% of a simple read's CPU, but then the sign-in limit was
    only counted by the view's decorator, after the body had been read and parsed.)
    """
    limiter.init_app(app)
