"""Console pages for intake: the call log, the follow-up queue, new calls, converting a caller."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("intake_pages", __name__)
