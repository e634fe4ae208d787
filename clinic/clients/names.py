"""Name normalisation for search and duplicate detection: "José" and "jose" are the same key."""

from __future__ import annotations

import re
import unicodedata

_KEEP = re.compile(r"[^a-z0-9' -]")
_SPACES = re.compile(r"\s+")


def search_key(name: str) -> str:
    """Lower-case, accents and punctuation removed, spaces collapsed: "  O'Brien-Núñez " -> "o'brien-nunez"."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", _KEEP.sub("", stripped)).strip()


def search_tokens(query: str) -> list[str]:
    return [token for token in search_key(query).split(" ") if token]
