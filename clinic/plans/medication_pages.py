"""The console's medication page: orders, dose history, the safety rules' messages and overrides."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("medication_pages", __name__)
