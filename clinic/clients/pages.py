"""Console pages for clients: search and register, the chart, episodes, consents and disclosures."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("client_pages", __name__)
