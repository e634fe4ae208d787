"""HTTP endpoints: naloxone dispenses and overdose events."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("overdose", __name__, url_prefix="/api/v1", description="Overdose prevention")
