"""The console's reports: each report with its range and site, chart, table, CSV and runs."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("report_pages", __name__)
