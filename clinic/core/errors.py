"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from functools import wraps
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Flask, Response, json, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://clinic.invalid/problems/"

#: Locations webargs reports errors under; the field path alone names the field.
_WEBARGS_LOCATIONS = {"json", "query", "querystring", "form", "headers", "cookies", "files", "path", "view_args"}


class APIError(HTTPException):
    """An HTTP error with a problem type, detail and optional field errors."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: Mapping[str, list[str]] | None = None,
        problem: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description=detail)
        self.code = status
        self.detail = detail
        self.errors = dict(errors) if errors else None
        self.problem = problem
        self.extra = dict(extra) if extra else {}
        self.extra_headers = dict(headers) if headers else {}


def abort_problem(status: int, detail: str | None = None, **kwargs: Any) -> NoReturn:
    """Stop the request with a problem+json response."""
    raise APIError(status, detail, **kwargs)


def field_error(field: str, message: str, *, status: int = 422) -> NoReturn:
    """Stop the request with a validation problem naming ``field``."""
    raise APIError(status, f"Invalid value for {field}.", errors={field: [message]})


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested error dict into ``{"a.0.b": ["message"]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = str(key)
            if not prefix and name in _WEBARGS_LOCATIONS and isinstance(value, Mapping):
                for sub_key, sub_value in flatten_errors(value).items():
                    flat.setdefault(sub_key, []).extend(sub_value)
                continue
            path = f"{prefix}.{name}" if prefix else name
            for sub_key, sub_value in flatten_errors(value, path).items():
                flat.setdefault(sub_key, []).extend(sub_value)
    elif isinstance(messages, list | tuple):
        if all(isinstance(item, str) for item in messages):
            flat[prefix or "_schema"] = [str(item) for item in messages]
        else:
            for item in messages:
                for sub_key, sub_value in flatten_errors(item, prefix).items():
                    flat.setdefault(sub_key, []).extend(sub_value)
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
    problem: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build a problem+json response."""
    phrase = _phrase(status)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (problem or phrase.lower().replace(" ", "-").replace("'", "")),
        "title": title or phrase,
        "status": status,
        "detail": detail or phrase,
    }
    if errors:
        body["errors"] = dict(errors)
    if extra:
        body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def handle_http_exception(error: HTTPException) -> Response:
    """Render any HTTPException (ours, Flask's, webargs's, Flask-Limiter's) as problem+json."""
    status = error.code or 500
    if status >= 500:
        return handle_unexpected(error)
    headers: dict[str, str] = {}
    if error.response is not None:
        # e.g. 405 carries Allow, 429 carries Retry-After.
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in error.response.headers:
                headers[name] = error.response.headers[name]
    if isinstance(error, APIError):
        headers.update(error.extra_headers)
        return problem_response(
            status,
            detail=error.detail,
            errors=error.errors,
            problem=error.problem,
            extra=error.extra,
            headers=headers,
        )
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    data = getattr(error, "data", None) or {}
    errors = None
    detail = error.description if isinstance(error.description, str) else None
    if "messages" in data or "errors" in data:
        errors = flatten_errors(data.get("errors") or data.get("messages"))
        if status == 400 and errors:
            detail = "The request body is not valid JSON."
            errors = None
        elif errors:
            detail = "The request has invalid fields: " + ", ".join(sorted(errors)) + "."
    if "message" in data:
        detail = str(data["message"])
    if status == 429:
        detail = "Too many requests; slow down and try again later."
    for name, value in (data.get("headers") or {}).items():
        headers[name] = value
    return problem_response(status, detail=detail, errors=errors, headers=headers)


def handle_unexpected(error: BaseException) -> Response:
    """A 500 that says nothing about the failure; the details go to the log."""
    original = getattr(error, "original_exception", None) or error
    if isinstance(original, DBAPIError):
        _log_database_error(original)
    elif not (isinstance(error, InternalServerError) and original is error):
        log.error("Unhandled error on %s %s", request.method, request.path, exc_info=original)
    return problem_response(500, detail="An unexpected error occurred; it has been logged.")


def _log_database_error(error: DBAPIError) -> None:
    """Log a database error by kind, code and place, never by message.

    A driver's message can quote the row it refused (PostgreSQL's "Failing row contains (...)")
    or the value it could not convert: client data, which has no place in a log. The traceback's
    frames are kept; the messages are not.
    """
    driver_error = error.orig
    log.error(
        "Unhandled database error on %s %s: %s (SQLSTATE %s, constraint %s)\n%s",
        request.method,
        request.path,
        type(driver_error).__name__,
        getattr(driver_error, "sqlstate", None) or "unknown",
        getattr(getattr(driver_error, "diag", None), "constraint_name", None) or "none",
        "".join(traceback.format_tb(error.__traceback__)),
    )


def handle_stale_data(_error: Exception) -> Response:
    """A versioned row changed under a concurrent write: the later writer's precondition failed."""
    return problem_response(412, detail="The record changed since you read it; read it again and reapply your change.",
                            problem="stale")


def handle_database_unavailable(error: Exception) -> Response:
    """A database that is locked (SQLite under concurrent writers) or unreachable: retry, not a 500."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, type(error).__name__)
    return problem_response(503, detail="The database is busy or unavailable; retry shortly.", problem="database-busy",
                            headers={"Retry-After": "1"})


def register_error_handlers(app: Flask, *, on_error: Callable[[], None]) -> None:
    """Route every error the app can raise to problem+json, calling ``on_error`` first.

    ``on_error`` is how the request's unit of work learns it failed (``clinic.core.http``).
    """
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm.exc import StaleDataError

    def failing(handler: Callable[[Any], Response]) -> Callable[[Any], Response]:
        @wraps(handler)
        def handle(error: Any) -> Response:
            on_error()
            return handler(error)

        return handle

    app.register_error_handler(OperationalError, failing(handle_database_unavailable))
    app.register_error_handler(StaleDataError, failing(handle_stale_data))
    app.register_error_handler(HTTPException, failing(handle_http_exception))
    app.register_error_handler(Exception, failing(handle_unexpected))
