"""Per-request plumbing: one commit per request, security headers, no caching of client data."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from sqlalchemy.exc import IntegrityError, OperationalError

from clinic.core import idempotency, unit_of_work
from clinic.core.errors import problem_response, register_error_handlers

log = logging.getLogger(__name__)

#: The API docs page loads Swagger UI from clinic itself (clinic/system/docs_assets.py) and nothing from
#: another origin; its one inline script is flask-smorest's, which starts Swagger UI with the spec's URL.
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
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
    idempotency.keep(response)  # the answer to a keyed POST commits with what the request did
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

#: JSON nested deeper than this is refused (400) before anything reads it into objects.
MAX_JSON_DEPTH = 32

#: Bodies of HTML forms (the console's), whose fields are checked as a JSON body's strings are.
_FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

#: Characters no text field takes (API.md): C0 and C1 controls (but tab, line feed and carriage
#: return, which multi-line text may hold), the zero-width characters and Unicode's bidirectional
#: controls (Bidi_Control), which make text read differently from what is stored.
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_LINE_BREAKS_AND_TABS = re.compile("[\t\n\r]")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def _storage_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (on PostgreSQL, and so on neither backend), if it cannot."""
    if _NUL in value:
        return "Must not contain the NUL character (U+0000)."
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Must be valid Unicode text (no lone surrogates)."
    return None


def _text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` is refused as text, if it is: unstorable, or holding a character that hides what it says.

    ``multiline`` text may hold tabs and line breaks; a name, a query parameter or a key may not.
    """
    problem = _storage_problem(value)
    if problem:
        return problem
    found = _REFUSED.search(value) or (None if multiline else _LINE_BREAKS_AND_TABS.search(value))
    if found is None:
        return None
    char = found.group()
    if char in _ZERO_WIDTH:
        kind = "zero-width characters"
    elif unicodedata.category(char) == "Cc":
        kind = "control characters"
    else:
        kind = "bidirectional-override characters"
    return f"Must not contain {kind} (U+{ord(char):04X})."


def _secret(key: str) -> bool:
    """A password is hashed and never shown: it may hold any character that can be stored (NIST SP 800-63B)."""
    return key.endswith("password")


class _TooDeepError(Exception):
    """The JSON document is nested deeper than MAX_JSON_DEPTH."""


def _refused_text(document: Any) -> Iterator[tuple[str, str]]:
    """``(field path, message)`` for every string of a JSON document that is refused as text.

    Walks the document with a stack of its own (no recursion), and raises :class:`_TooDeepError` on a
    container more than MAX_JSON_DEPTH levels down.
    """
    stack: list[tuple[Any, str, int, bool]] = [(document, "", 0, False)]
    while stack:
        value, path, depth, secret = stack.pop()
        if isinstance(value, str):
            problem = _storage_problem(value) if secret else _text_problem(value, multiline=True)
            if problem:
                yield path or "_schema", problem
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise _TooDeepError
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                sub_path = f"{path}.{key}" if path else key
                problem = _text_problem(key)
                if problem:
                    yield _printable(sub_path), problem
                else:
                    stack.append((item, sub_path, depth + 1, _secret(key)))
        else:
            for index in reversed(range(len(value))):
                stack.append((value[index], f"{path}.{index}" if path else str(index), depth + 1, secret))


def _printable(path: str) -> str:
    """A field path fit to show: refused characters (and lone surrogates) written as escapes."""
    path = path.encode("utf-8", "backslashreplace").decode("utf-8")
    return _REFUSED.sub(lambda found: f"\\u{ord(found.group()):04x}", path)


def _refused_form_fields() -> Iterator[tuple[str, str]]:
    """``(field, message)`` for each field of a form body (a console form) refused as a JSON string would be.

    Its text reaches the same columns as the API's: the same characters are refused.
    """
    if request.mimetype not in _FORM_MIMETYPES:
        return
    for name, values in request.form.lists():
        problem = _text_problem(name)
        for value in values if problem is None else ():
            problem = _storage_problem(value) if _secret(name) else _text_problem(value, multiline=True)
            if problem:
                break
        if problem:
            yield _printable(name), problem


def _json_body() -> Any:
    """The JSON body parsed as strictly as webargs parses it; None when absent or malformed (its 400).

    Raises :class:`_TooDeepError` when the parser itself gives up on the nesting.
    """
    if not request.is_json:
        return None
    try:
        return json.loads(request.get_data(cache=True).decode("utf-8"))
    except RecursionError:
        raise _TooDeepError from None
    except ValueError:  # includes UnicodeDecodeError
        return None


def _larger_than(limit: int) -> bool:
    """Whether the body exceeds ``limit`` bytes: by its Content-Length, without reading it.

    A chunked body has no length: Werkzeug reads it only up to the limit and silently stops
    there, so one that fills the limit is taken to exceed it.
    """
    if request.content_length is not None:
        return request.content_length > limit
    if request.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return False
    return len(request.get_data(cache=True)) >= limit


def check_request_input() -> Response | None:
    """Refuse what no endpoint takes, for every endpoint, before anything else reads the body.

    - a body larger than ``MAX_CONTENT_LENGTH``: 413, without reading it;
    - JSON nested deeper than MAX_JSON_DEPTH: 400;
    - text that PostgreSQL cannot store (U+0000, lone surrogates), control characters (but
      line breaks and tabs in the body's strings), zero-width and bidirectional-override
      characters, in a query parameter, a path segment, the JSON body or a form's fields: 422
      naming each field.
    """
    if request.routing_exception is not None:
        return None  # 404/405 come first
    limit = request.max_content_length
    if limit is not None and _larger_than(limit):
        unit_of_work.fail()
        return problem_response(413, detail=f"The request body is larger than the limit of {limit} bytes.")
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
    try:
        for path, problem in _refused_text(_json_body()):
            errors.setdefault(path, []).append(problem)
    except _TooDeepError:
        unit_of_work.fail()
        return problem_response(
            400, detail=f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.", problem="json-too-deep"
        )
    for name, problem in _refused_form_fields():
        errors.setdefault(name, []).append(problem)
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
    policy = g.get("content_security_policy") or (_DOCS_CSP if docs else _API_CSP)
    headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if hsts:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if g.get("_client_data") or g.get("auth_kind") is not None:
        # Anything a signed-in user receives may carry client data: never cache it.
        headers["Cache-Control"] = "no-store"
        headers.add("Vary", "Cookie, Authorization")
    return response


def init_request_cycle(app: Flask, *, present_error: Callable[[Response], Response] | None = None) -> None:
    """One unit of work per request (any error rolls it back), input checks, response headers.

    ``present_error`` turns an error's problem+json into what the caller reads (the console's pages).
    """
    hsts = bool(app.config.get("HSTS_ENABLED"))
    register_error_handlers(app, on_error=unit_of_work.fail)
    # After the permission check (registered earlier): authorization precedes validation.
    app.before_request(check_request_input)
    # Last: a repeat is answered only once the caller is known to be allowed and the input sound.
    app.before_request(idempotency.begin)

    @app.after_request
    def after(response: Response) -> Response:
        response = _finish_unit_of_work(response)
        if present_error is not None and response.status_code >= 400:
            response = present_error(response)
        return _security_headers(response, hsts=hsts)

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        if exc is not None:  # the response was never finished: nothing of the request may stand
            unit_of_work.rollback()
