"""Cells of the CSV files clinic writes (reports, the appointment export, the dispensing log),
safe to open in a spreadsheet."""

from __future__ import annotations

#: Leading characters that make a spreadsheet read a cell as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str) -> str:
    """Text, defused so that a spreadsheet shows it rather than evaluates it: a leading apostrophe
    before a cell that would start a formula (a name, a site, a lot number, a note)."""
    return "'" + value if value.startswith(FORMULA_START) else value
