"""The console's audit trail page (admin): filters, names, the chain's verification."""

from __future__ import annotations

from clinic.console import ConsoleBlueprint

blp = ConsoleBlueprint("audit_pages", __name__)
