"""HTTP endpoints: a client's record as a FHIR Bundle under a disclosure consent."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("fhir", __name__, url_prefix="/api/v1", description="FHIR R4 export")
