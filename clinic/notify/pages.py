"""Console pages for the signed-in user's staff notifications (alerts): read and acknowledge."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("notify_pages", __name__)
