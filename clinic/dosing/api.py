"""HTTP endpoints: doses, take-home eligibility, the site's dispensing log."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("dosing", __name__, url_prefix="/api/v1", description="OTP dosing and take-homes")
