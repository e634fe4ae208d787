"""The clinician's day (/today): appointments with one-click check-in and complete, alerts, reviews due, follow-ups."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("today_pages", __name__)
