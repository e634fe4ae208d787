"""The console's dosing window (/dosing) and a client's doses."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("dosing_pages", __name__)
