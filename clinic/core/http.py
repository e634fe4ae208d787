"""Per-request plumbing: one commit per request, security headers, no caching of client data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy.exc import IntegrityError, OperationalError

from clinic.core import unit_of_work
from clinic.core.errors import problem_response, register_error_handlers

log = logging.getLogger(__name__)

_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://cdn.jsdelivr.net; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def mark_client_data() -> None:
    """The response carries client data: ``Cache-Control: no-store``, signed in or not.

    The scoped loaders (clinic.auth.permissions) call it for every row and list they hand out.
    """
    if has_request_context():
        g._client_data = True


def _finish_unit_of_work(response: Response) -> Response:
    """Commit once, when the view returned normally; roll back (keeping failure audits) otherwise."""
    if unit_of_work.failed() or response.status_code >= 500:
        unit_of_work.rollback()
        return response
    try:
        unit_of_work.commit()
    except IntegrityError:
        unit_of_work.rollback()
        return problem_response(409, detail="The change conflicts with existing data.")
    except OperationalError:
        unit_of_work.rollback()
        log.exception("commit failed")
        return problem_response(503, detail="The database is busy; try again.")
    return response


_NUL = "\x00"


def _text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (on PostgreSQL, and so on neither backend), if it cannot."""
    if _NUL in value:
        return "Must not contain the NUL character (U+0000)."
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Must be valid Unicode text (no lone surrogates)."
    return None


def _unstorable_text(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(field path, message)`` for every string in a JSON document that cannot be stored."""
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem:
            yield path or "_schema", problem
    elif isinstance(value, dict):
        for key, item in value.items():
            sub_path = f"{path}.{key}" if path else str(key)
            problem = _text_problem(str(key))
            if problem:
                yield _printable(sub_path), problem
            else:
                yield from _unstorable_text(item, sub_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_text(item, f"{path}.{index}" if path else str(index))


def _printable(path: str) -> str:
    return path.encode("utf-8", "backslashreplace").decode("utf-8").replace(_NUL, "\\u0000")


def _json_body() -> Any:
    """The JSON body parsed as strictly as webargs parses it; None when absent or malformed (its 400)."""
    if not request.is_json:
        return None
    try:
        return json.loads(request.get_data(cache=True).decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError
        return None


def refuse_unstorable_text() -> Response | None:
    """422 for a query parameter or JSON string holding U+0000 or a lone surrogate.

    PostgreSQL text cannot hold either (and no field of clinic needs them); checked once here,
    for every endpoint, so the database never sees them and both backends answer alike.
    """
    if request.routing_exception is not None:
        return None  # 404/405 come first
    errors: dict[str, list[str]] = {}
    for name, values in request.args.lists():
        for value in (name, *values):
            problem = _text_problem(value)
            if problem:
                errors.setdefault(_printable(name), []).append(problem)
                break
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (problem := _text_problem(value)):
            errors.setdefault(name, []).append(problem)
    for path, problem in _unstorable_text(_json_body(), ""):
        errors.setdefault(path, []).append(problem)
    if not errors:
        return None
    unit_of_work.fail()
    return problem_response(
        422, detail="The request has invalid fields: " + ", ".join(sorted(errors)) + ".", errors=errors
    )


def _security_headers(response: Response, *, hsts: bool) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    docs = request.path.startswith("/api/docs")
    headers.setdefault("Content-Security-Policy", _DOCS_CSP if docs else _API_CSP)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if hsts:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if g.get("_client_data") or g.get("auth_kind") is not None:
        # Anything a signed-in user receives may carry client data: never cache it.
        headers["Cache-Control"] = "no-store"
        headers.add("Vary", "Cookie, Authorization")
    return response


def init_request_cycle(app: Flask) -> None:
    """One unit of work per request (any error rolls it back), input checks, response headers."""
    hsts = bool(app.config.get("HSTS_ENABLED"))
    register_error_handlers(app, on_error=unit_of_work.fail)
    # After the permission check (registered earlier): authorization precedes validation.
    app.before_request(refuse_unstorable_text)

    @app.after_request
    def after(response: Response) -> Response:
        response = _finish_unit_of_work(response)
        return _security_headers(response, hsts=hsts)

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        if exc is not None:  # the response was never finished: nothing of the request may stand
            unit_of_work.rollback()
