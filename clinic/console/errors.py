"""Errors on console pages: an HTML page saying what happened, or the sign-in page when signed out.

The API's error handlers build a problem+json response for every error (clinic.core.errors); for a
console request this turns it into the page a person reads. The page never shows a stack trace,
and a client outside the caller's scope is the same "page not found" as a client that does not exist.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from flask import Response, g, render_template, request

from clinic.console import CONSOLE_CSP, is_console_request, is_htmx
from clinic.core.errors import PROBLEM_MIMETYPE

_TITLES = {
    403: "You cannot do this",
    404: "Page not found",
    405: "Page not found",
    409: "This change conflicts with the record",
    412: "Someone else changed this first",
    413: "Too much to send",
    422: "Some details need correcting",
    429: "Too many attempts",
    500: "Sorry, something went wrong",
    503: "The service is busy",
}

_DETAILS = {
    404: "There is no page at this address, or it is not available to you. "
    "Check the address, or find the client with the search box.",
    405: "There is no page at this address.",
    500: "The problem has been logged. Try again; if it happens again, tell your administrator.",
}


def safe_next(target: str | None) -> str | None:
    """A path on this site to return to after signing in (never another origin)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def sign_in_redirect() -> Response:
    """To the sign-in page, coming back here afterwards (a GET page; the referring page for a POST)."""
    here = request.full_path.rstrip("?") if request.method == "GET" else None
    if here is None and request.referrer:
        from urllib.parse import urlsplit

        parts = urlsplit(request.referrer)
        if parts.netloc == request.host:
            here = parts.path
    location = "/login" + ("?" + urlencode({"next": here}) if safe_next(here) else "")
    response = Response("", status=303)
    if is_htmx():
        response.status_code = 204
        response.headers["HX-Redirect"] = location
    else:
        response.headers["Location"] = location
    return response


def as_page(problem: Response) -> Response:
    """The console's version of an API error response (unchanged outside the console)."""
    if problem.mimetype != PROBLEM_MIMETYPE or not is_console_request():
        return problem
    status = problem.status_code
    if status == 401:
        return sign_in_redirect()
    body = json.loads(problem.get_data())
    detail = _DETAILS.get(status) or body.get("detail") or ""
    if body.get("type", "").endswith("/csrf"):
        detail = (
            "The form was out of date (you may have signed in again elsewhere). "
            "Go back, reload the page and try again."
        )
    g.content_security_policy = CONSOLE_CSP
    html = render_template(
        "console/error.html", status=status, title=_TITLES.get(status, body.get("title", "Error")), detail=detail,
        errors=body.get("errors") or {},
    )
    response = Response(html, status=status, mimetype="text/html")
    for name in ("Retry-After", "Allow"):
        if name in problem.headers:
            response.headers[name] = problem.headers[name]
    return response
