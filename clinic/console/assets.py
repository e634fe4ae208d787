"""The console's static files — htmx, the stylesheet, the console script, icons — served by clinic.

Nothing comes from another origin. Each file's URL carries a digest of its content, so a browser
may keep it for a year and still never runs a stale copy after an upgrade.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, abort, redirect, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from clinic.core.permissions import public

STATIC = Path(__file__).resolve().parent / "static"

#: Also the home of the shared templates (console/base.html, console/macros.html, console/error.html).
blp = Blueprint("console_assets", __name__, template_folder="templates")


@cache
def _digest(filename: str) -> str:
    return hashlib.sha256((STATIC / filename).read_bytes()).hexdigest()[:12]


def asset_url(filename: str) -> str:
    """The URL of one asset, with its content digest as the cache key."""
    return url_for("console_assets.asset", filename=filename, v=_digest(filename))


@blp.route("/assets/<path:filename>", methods=["GET"])
@public
def asset(filename: str) -> Response:
    if filename.endswith((".txt", ".md")) and not filename.startswith("vendor/"):
        abort(404)
    response = send_from_directory(STATIC, filename, max_age=365 * 24 * 3600)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@blp.route("/favicon.ico", methods=["GET"])
@public
def favicon() -> ResponseReturnValue:
    """Browsers ask for /favicon.ico by habit; the icon is an SVG asset."""
    return redirect(asset_url("favicon.svg"), code=301)
