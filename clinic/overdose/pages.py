"""The console's overdose prevention page of a client: naloxone and overdose events."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("overdose_pages", __name__)
