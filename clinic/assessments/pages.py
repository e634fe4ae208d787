"""The console's assessment pages: instrument forms built from their definitions, scores, signing, trends."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("assessment_pages", __name__)
