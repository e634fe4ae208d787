"""The page a reminder's link opens: the appointment's time, and confirm, cancel or opt out.

A plain web page, not part of the JSON API: a client taps it on a phone. Opening it (GET)
changes nothing — link previews fetch it — each action is a POST of the page's form.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from clinic.auth.permissions import public
from clinic.notify import links
from clinic.notify.messages import SHIPPED_LANGUAGES, render, render_invalid_link_page

blp = Blueprint("reminder_links", __name__)

#: Inline styles and a form posting to itself; nothing else.
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
_ACTIONS = ("confirm", "cancel", "stop")


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _PAGE_CSP
    return response


def _invalid() -> Response:
    language = request.accept_languages.best_match(SHIPPED_LANGUAGES) or SHIPPED_LANGUAGES[0]
    return _html(render_invalid_link_page(language), status=404)


def _page(target: links.LinkTarget, *, outcome: str | None = None, status: int = 200) -> Response:
    shown = links.page(target, outcome=outcome)
    return _html(render("link.html", shown.pop("context"), **shown), status=status)


@blp.route("/r/<token>", methods=["GET"])
@public
def show(token: str) -> Response:
    target = links.read_token(token)
    return _invalid() if target is None else _page(target)


@blp.route("/r/<token>", methods=["POST"])
@public
def act(token: str) -> Response:
    target = links.read_token(token)
    if target is None:
        return _invalid()
    action = request.form.get("action", "")
    if action not in _ACTIONS:
        return _page(target, status=400)
    return _page(target, outcome=links.act(target, action))
