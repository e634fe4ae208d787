"""Console pages for administrators: sites and users."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("admin_pages", __name__)
