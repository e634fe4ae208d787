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
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import IntegerConverter, ValidationError

from clinic.core.errors import PROBLEM_MIMETYPE
from clinic.core.models import Base
from clinic.core.schemas import ProblemSchema

#: The largest id a row can have (PostgreSQL ``integer``); the id fields of request bodies share it.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a row id, 1..MAX_ID unless the rule says otherwise.

    A path id outside that range cannot name a row: it is a 404 instead of reaching the
    database with a number it cannot bind (SQLite's limit is 2**63 - 1, PostgreSQL's
    ``integer`` 2**31 - 1). The bounds are documented in the spec as the parameter's minimum
    and maximum.
    """

    def __init__(
        self, map: Any, fixed_digits: int = 0, min: int | None = 1, max: int | None = MAX_ID, signed: bool = False
    ) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> Any:
        try:
            return super().to_python(value)
        except ValidationError:
            # Werkzeug would report "no match" as a 405 when a sibling rule of the same path
            # has other methods (PATCH /users/0 -> "Allow: GET"); the resource does not exist.
            raise NotFound() from None


class ProblemApi(Api):  # type: ignore[misc]  # flask-smorest ships no type information
    """flask-smorest's Api, with errors served and documented as problem+json, and ids bounded."""

    ERROR_SCHEMA = ProblemSchema

    def init_app(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # Before any route is added: rules bind their converters when they are registered.
        app.url_map.converters["int"] = IdConverter
        super().init_app(app, *args, **kwargs)

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
