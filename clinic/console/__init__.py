"""The staff console's frame: blueprints, page rendering, forms, dates, error pages and assets.

Each domain has a ``pages.py`` beside its ``api.py``: a :class:`ConsoleBlueprint` whose views load
(through the domain's loaders), authorise (``requires``, like the API), call one operation and
render a template kept beside the domain. What every page shares — the layout, the form macros,
the stylesheet, htmx and the error pages — lives here, and nothing here knows a domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from flask import Blueprint, Flask, Response, current_app, g, render_template, request, url_for
from flask_login import current_user
from marshmallow import Schema, ValidationError

from clinic.core.errors import abort_problem, flatten_errors
from clinic.core.http import mark_client_data
from clinic.extensions import MAX_ID

#: Every console page: scripts, styles, images and fonts from clinic itself only; no inline script
#: or style; forms post to clinic only.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

#: Names of the blueprints whose views are console pages (their errors render as HTML pages).
_CONSOLE_BLUEPRINTS: set[str] = set()


class ConsoleBlueprint(Blueprint):
    """A blueprint of console pages: HTML error pages, the console's CSP, templates beside the domain."""

    def __init__(self, name: str, import_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("template_folder", "templates")
        super().__init__(name, import_name, **kwargs)
        _CONSOLE_BLUEPRINTS.add(name)


def is_console_request() -> bool:
    """A console page, or a browser asking for a page clinic does not have (outside the API)."""
    if request.blueprint in _CONSOLE_BLUEPRINTS:
        return True
    if request.path.startswith(("/api/", "/r/", "/healthz", "/readyz", "/metrics")):
        return False
    accepted = request.accept_mimetypes
    return accepted.accept_html and accepted.best_match(["application/json", "text/html"]) == "text/html"


def is_htmx() -> bool:
    """The request came from htmx (a partial update), not a full page load."""
    return request.headers.get("HX-Request") == "true"


def page(template: str, *, status: int = 200, headers: Mapping[str, str] | None = None, **context: Any) -> Response:
    """Render a console template as an HTML response."""
    response = Response(render_template(template, **context), status=status, mimetype="text/html")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def redirect_to(location: str, *, status: int = 303) -> Response:
    """After a POST: 303 to ``location`` (htmx follows it with HX-Redirect when it asked)."""
    if is_htmx():
        response = Response("", status=204)
        response.headers["HX-Redirect"] = location
        return response
    response = Response("", status=status)
    response.headers["Location"] = location
    return response


# --- forms ---------------------------------------------------------------------------------------


class FormErrors(dict[str, list[str]]):
    """Field name -> messages, in the order the fields were reported; ``_schema`` for the form's own.

    ``problem`` is the operation's refusal they came from, when one did (its status, its extension
    members such as a duplicate check's ``candidates``).
    """

    problem: Any = None

    @classmethod
    def from_validation(cls, error: ValidationError) -> FormErrors:
        return cls(flatten_errors(error.messages))

    @classmethod
    def from_problem(cls, problem: Any) -> FormErrors:
        """From an APIError an operation raised: its field errors, or its detail as the form's own."""
        errors = getattr(problem, "errors", None)
        if errors:
            found = cls({key: list(value) for key, value in errors.items()})
        else:
            found = cls({"_schema": [str(getattr(problem, "detail", None) or "The change could not be saved.")]})
        found.problem = problem
        return found


def attempt(operation: Any, *args: Any, **kwargs: Any) -> tuple[Any, FormErrors]:
    """Run one operation for a form: (its result, no errors), or (None, the errors it refused with).

    The operation runs in a savepoint of the request's unit of work. A refusal undoes everything
    the operation wrote or queued, as a failed API request would, but for what a refusal must leave
    (its audit event); the request then goes on as a page view — the page shows the errors beside
    the fields, and its own reads of client data are audited and committed like any page view's.
    401, 403 and 404 are not a form's errors: they fail the request and become the error page.
    """
    from clinic.core import unit_of_work
    from clinic.core.errors import APIError

    try:
        with unit_of_work.savepoint():
            return operation(*args, **kwargs), FormErrors()
    except APIError as error:
        if (error.code or 500) >= 500 or error.code in (401, 403, 404):
            raise
        return None, FormErrors.from_problem(error)


def form_values(*, lists: tuple[str, ...] = (), drop_empty: bool = True) -> dict[str, Any]:
    """The posted form as a dict: ``lists`` are multi-valued (checkboxes), empty fields left out.

    The CSRF token is never part of the values.
    """
    values: dict[str, Any] = {}
    for name in request.form:
        if name == "csrf_token":
            continue
        if name in lists:
            values[name] = [item for item in request.form.getlist(name) if item != ""]
            continue
        value = request.form.get(name, "")
        if drop_empty and value.strip() == "":
            continue
        values[name] = value
    for name in lists:
        values.setdefault(name, [])
    return values


#: A whole number as a form or a query sends it: ASCII digits only (``str.isdigit`` also takes "²",
#: which ``int`` refuses), and few enough for ``int`` to read.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def as_id(raw: Any) -> int | None:
    """``raw`` as a row id (1 to the largest id), or None when it is anything else: text, "²", a huge number."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not _WHOLE_NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def as_number(raw: Any) -> Any:
    """A whole number typed in a form as the API's JSON carries it; anything else unchanged, for the schema's error."""
    if isinstance(raw, str) and _WHOLE_NUMBER.fullmatch(raw.strip()):
        return int(raw.strip())
    return raw


def not_found() -> NoReturn:
    """The "page not found" page: what an id the user may not see gets, as one that does not exist does."""
    abort_problem(404, "Not found.")


def visible_id(raw: Any, allowed: Iterable[int]) -> int | None:
    """An id sent in a form or a query that must name one of ``allowed`` (the user's sites, clinicians...).

    None when nothing was sent; otherwise the id, or the "page not found" page: a site, clinician or
    client the user may not see is answered as one that does not exist, never with what it is.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    ident = as_id(raw) if not isinstance(raw, int) else raw
    if ident is None or ident not in set(allowed):
        not_found()
    return ident


def load_form(schema: Schema, values: Mapping[str, Any], *, partial: bool = False) -> tuple[dict[str, Any], FormErrors]:
    """Validate ``values`` with the API's schema: (data, no errors) or ({}, the field errors)."""
    try:
        return schema.load(values, partial=partial), FormErrors()
    except ValidationError as error:
        return {}, FormErrors.from_validation(error)


# --- the app -------------------------------------------------------------------------------------


def init_console(app: Flask) -> None:
    """Template helpers, the console's CSP on its pages, and the assets blueprint."""
    from clinic.console import assets, dates

    app.register_blueprint(assets.blp)
    dates.register_filters(app)

    @app.before_request
    def console_policy() -> None:
        if request.blueprint in _CONSOLE_BLUEPRINTS:
            g.content_security_policy = CONSOLE_CSP
            mark_client_data()  # no console page is kept by the browser or a proxy

    # Globals, not context: macros imported by a template see them too.
    app.jinja_env.globals.update(csrf_token=_csrf_token, asset=assets.asset_url, nav_items=_nav_items)

    @app.context_processor
    def console_context() -> dict[str, Any]:
        return {"idle_seconds": int(current_app.config["SESSION_IDLE_TIMEOUT"].total_seconds()),
                "current_site_id": current_site_id()}


SITE_COOKIE = "clinic_site"


def current_site_id() -> int | None:
    """The site the signed-in user works at now: the one chosen in the top bar, else their first.

    Pages that show one site at a time (the schedule, today, intake) start from it.
    """
    user = current_user
    if not user or not user.is_authenticated:
        return None
    site_ids = sorted(user.site_ids)
    chosen = as_id(request.cookies.get(SITE_COOKIE, ""))
    if chosen in site_ids:
        return chosen
    return site_ids[0] if site_ids else None


def current_site() -> Any:
    """The :class:`~clinic.auth.models.Site` of :func:`current_site_id`, from the user's own sites (None: no site)."""
    chosen = current_site_id()
    if chosen is None:
        return None
    return next((site for site in current_user.sites if site.id == chosen), None)


def _csrf_token() -> str:
    session_row = g.get("user_session")
    return session_row.csrf_token if session_row is not None else ""


#: The navigation of each role, its home first: (endpoint, label). Endpoints not registered are left out.
NAVIGATION: dict[str, tuple[tuple[str, str], ...]] = {
    "intake": (
        ("intake_pages.queue", "Intake"),
        ("client_pages.search", "Clients"),
        ("scheduling_pages.schedule", "Schedule"),
        ("notify_pages.alerts", "Alerts"),
    ),
    "clinician": (
        ("today_pages.today", "Today"),
        ("client_pages.search", "Clients"),
        ("scheduling_pages.schedule", "Schedule"),
        ("dosing_pages.window", "Dosing"),
        ("intake_pages.queue", "Intake"),
        ("notify_pages.alerts", "Alerts"),
        ("report_pages.index", "Reports"),
    ),
    "admin": (
        ("admin_pages.admin", "Admin"),
        ("report_pages.index", "Reports"),
        ("audit_pages.audit", "Audit"),
        ("notify_pages.alerts", "Alerts"),
    ),
}


def _nav_items(role: str) -> list[tuple[str, str, bool]]:
    """(url, label, current) for each navigation item of ``role`` whose page exists."""
    items = []
    current_prefix = (request.blueprint or "") if request else ""
    for endpoint, label in NAVIGATION.get(role, ()):
        if endpoint not in current_app.view_functions:
            continue
        items.append((url_for(endpoint), label, endpoint.split(".")[0] == current_prefix))
    return items


def home_endpoint(role: str) -> str | None:
    """The first navigation item of ``role`` whose page exists: the role's home."""
    for endpoint, _label in NAVIGATION.get(role, ()):
        if endpoint in current_app.view_functions:
            return endpoint
    return None
