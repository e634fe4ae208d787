"""The console's drug screen and contingency management page."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("screen_pages", __name__)
