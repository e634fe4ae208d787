"""The console's treatment plan pages: the plan tree edited in place, revisions, signatures, reviews."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("plan_pages", __name__)
