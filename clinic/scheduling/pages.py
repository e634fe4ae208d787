"""Console pages for scheduling: day and week views, booking, series, groups, status changes, working hours."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("scheduling_pages", __name__)
