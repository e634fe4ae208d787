"""Whether a client completed an intake-assessment appointment (false until scheduling exists)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import false


def completed_intake_assessment(client_id_column: Any) -> Any:
    return false()


def completed_appointment_days() -> list[Any]:
    """``SELECT client_id, day`` of completed appointments (none until scheduling exists)."""
    return []
