"""Extensions, created unbound here and bound to the app in ``create_app``.

Celery is created by :func:`clinic.core.celery.celery_init_app` (the Flask documentation's
pattern) and kept in ``app.extensions["celery"]``.
"""

from __future__ import annotations

import http
from typing import Any

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from flask_sqlalchemy import SQLAlchemy
from werkzeug.exceptions import HTTPException

from clinic.core.errors import PROBLEM_MIMETYPE
from clinic.core.models import Base
from clinic.core.schemas import ProblemSchema


class ProblemApi(Api):  # type: ignore[misc]  # flask-smorest ships no type information
    """flask-smorest's Api, with errors served and documented as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Any:
        from clinic.core.errors import handle_http_exception

        return handle_http_exception(error)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)
api = ProblemApi()
