"""Errors on console pages: an HTML page saying what happened, or the sign-in page when signed out.

The API's error handlers build a problem+json response for every error (clinic.core.errors); for a
console request this turns it into the page a person reads. The page never shows a stack trace,
and a client outside the caller's scope is the same "page not found" as a client that does not exist.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

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


#: Query parameters never carried into an address clinic sends the browser to: search terms (a
#: name, an MRN, a phone number) stay out of redirects, and so out of histories and logs.
_PRIVATE_PARAMETERS = frozenset({"q"})


def safe_next(target: str | None) -> str | None:
    r"""A path on this site to go to after signing in (never another origin), search terms left out.

    Refused: anything but an absolute path (``//host``, ``/\host``, ``https://…``), spaces and
    control characters (a browser drops tabs and newlines from an address: ``/\t/host`` is
    ``//host``), and a path that is one of those once percent-decoded (``/%2F%2Fhost``).
    """
    if not target or len(target) > 2048 or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    for path in (parts.path, unquote(parts.path)):
        if not path.startswith("/") or path.startswith("//") or "\\" in path:
            return None
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
            return None
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
             if name not in _PRIVATE_PARAMETERS]
    return parts.path + ("?" + urlencode(query) if query else "")


def _same_origin_path(url: str | None) -> str | None:
    """The path and query of ``url`` when it is an address of this site (the referring page's)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc != request.host:
        return None
    return parts.path + ("?" + parts.query if parts.query else "")


def sign_in_redirect() -> Response:
    """To the sign-in page, coming back here afterwards.

    Here is the page the person is on: the address of a GET page, the page htmx updates
    (``HX-Current-URL``, not the fragment it asked for), the referring page of a form's POST.
    """
    if is_htmx():
        here = _same_origin_path(request.headers.get("HX-Current-URL"))
    elif request.method == "GET":
        here = request.full_path.rstrip("?")
    else:
        here = _same_origin_path(request.referrer)
    back = safe_next(here)
    location = "/login" + ("?" + urlencode({"next": back}) if back else "")
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
    if is_htmx() and status in (403, 404):
        # htmx swaps no error answer: the person would see nothing happen. A GET becomes a page
        # load of its address, which shows this page; anything else reloads the page they are on
        # (a form out of date gets a fresh token, a record gone is seen gone).
        if request.method == "GET":
            response.headers["HX-Redirect"] = safe_next(request.full_path.rstrip("?")) or "/"
        else:
            response.headers["HX-Refresh"] = "true"
    return response
