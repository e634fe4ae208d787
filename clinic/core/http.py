"""Per-request plumbing: one commit per request, security headers, no caching of client data."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from sqlalchemy.exc import IntegrityError, OperationalError

from clinic.audit.operations import discard_queue, rollback_keeping_failures
from clinic.core.errors import problem_response
from clinic.extensions import db

log = logging.getLogger(__name__)

_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://cdn.jsdelivr.net; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def mark_request_failed() -> None:
    """The unit of work failed: roll back at the end of the request instead of committing."""
    g._clinic_failed = True


def _finish_unit_of_work(response: Response) -> Response:
    """Commit once, when the view returned normally; roll back (keeping failure audits) otherwise."""
    if g.get("_clinic_failed") or response.status_code >= 500:
        try:
            rollback_keeping_failures()
        except Exception:  # the original error matters more; log this one
            log.exception("could not record failure audit events")
            db.session.rollback()
            discard_queue()
        return response
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        discard_queue()
        return problem_response(409, detail="The change conflicts with existing data.")
    except OperationalError:
        db.session.rollback()
        discard_queue()
        log.exception("commit failed")
        return problem_response(503, detail="The database is busy; try again.")
    return response


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
    hsts = bool(app.config.get("HSTS_ENABLED"))

    @app.after_request
    def after(response: Response) -> Response:
        response = _finish_unit_of_work(response)
        return _security_headers(response, hsts=hsts)

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        if exc is not None:
            db.session.rollback()
            discard_queue()
