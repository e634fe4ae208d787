"""HTTP endpoints: the CapabilityStatement and the bulk ``$export`` (FHIR Bulk Data Access)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("fhir_bulk", __name__, url_prefix="/api/v1", description="FHIR R4 bulk export")
