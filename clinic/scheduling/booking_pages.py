"""Console pages for booking: the availability finder, recurring series, group sessions, working hours."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("booking_pages", __name__)
