"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from flask_smorest import Blueprint

from clinic.auth.permissions import public
from clinic.system.operations import readiness
from clinic.system.schemas import HealthSchema, ReadinessSchema

blp = Blueprint("system", __name__, description="Health checks")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
@public
def healthz() -> dict[str, Any]:
    """The process is alive."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadinessSchema)
@blp.alt_response(
    503,
    schema=ReadinessSchema,
    description="The database or the broker does not answer, or no worker has sent a heartbeat for three intervals",
)
@public
def readyz() -> ResponseReturnValue:
    """The database and the broker answer and a worker beats (`checks`: database, broker, worker)."""
    ready, body = readiness()
    return jsonify(ReadinessSchema().dump(body)), 200 if ready else 503
