"""Swagger UI's files for the API docs page (/api/docs), served by clinic itself.

The page used to load Swagger UI from a CDN, so a clinic without internet access showed a blank
page, and every visit told a third party who reads the docs. The files come from the pinned
``flask-swagger-ui`` package (its ``dist`` folder is Swagger UI's own distribution); only that
package's files are used, not its blueprint. ``OPENAPI_SWAGGER_UI_URL`` points here by default.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from clinic.auth.permissions import public

#: Where the docs page finds Swagger UI (config.py's default for OPENAPI_SWAGGER_UI_URL).
ASSETS_URL = "/api/docs/assets/"
#: The files may be cached for an hour; a changed file is revalidated through its ETag after that.
_MAX_AGE_SECONDS = 3600

blp = Blueprint("docs_assets", __name__)


def _dist_folder() -> Path:
    with as_file(files("flask_swagger_ui") / "dist") as folder:
        return Path(folder)  # an installed package's folder on disk: it outlives the context


_DIST = _dist_folder()


@blp.route(f"{ASSETS_URL}<path:filename>", methods=["GET"])
@public
def swagger_ui_file(filename: str) -> Response:
    """One file of Swagger UI's distribution (404 for anything else: send_from_directory stays inside it)."""
    return send_from_directory(_DIST, filename, max_age=_MAX_AGE_SECONDS)
