"""Password hashing (argon2id) and the password policy (NIST SP 800-63B).

At least 12 characters, up to 256 accepted, no composition rules. Refused: only whitespace;
one character repeated; a short string repeated; a run such as 123456789012 or abcdefghijkl;
a password on the shipped list of common passwords; one built from the user's email (or its
local part), name or the product's name with nothing but digits and symbols added; and, last,
whatever zxcvbn estimates guessable in fewer than 10^8 guesses: its 30,000 passwords, its
dictionaries of words and names, and common passwords with digits or years appended.
Everything is checked offline.
"""

from __future__ import annotations

import gzip
import itertools
import re
import threading
from functools import cache
from importlib import resources
from typing import Any

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app, has_app_context
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 256

#: argon2id parameter sets; production uses RFC 9106's low-memory recommendation.
_HASHERS = {
    "rfc9106_low_memory": PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY),
    # Only for the test suite, where thousands of hashes would otherwise dominate the run time.
    "cheapest": PasswordHasher.from_parameters(profiles.CHEAPEST),
}
_dummy_hashes: dict[str, str] = {}


def _hasher() -> PasswordHasher:
    name = (
        current_app.config.get("PASSWORD_HASH_PROFILE", "rfc9106_low_memory")
        if has_app_context()
        else "rfc9106_low_memory"
    )
    return _HASHERS[name]


def _dummy_hash() -> str:
    """Verified against when the account does not exist, so both paths cost the same time."""
    hasher = _hasher()
    key = f"{hasher.time_cost}:{hasher.memory_cost}"
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash("not-a-real-password-but-costs-the-same")
    return _dummy_hashes[key]


#: Names of the product a password must not be built from (NIST SP 800-63B: the service's name).
PRODUCT_NAMES = ("clinic",)
#: zxcvbn's estimate below which a password is refused: its score 3, "safely unguessable".
MIN_GUESSES = 10**8
#: zxcvbn's own limit, which keeps a check within milliseconds; a longer password is judged by its beginning.
_ESTIMATE_LENGTH = 72
#: zxcvbn keeps the user's words in a module-global dictionary during a call: one call at a time.
_ESTIMATE_LOCK = threading.Lock()

TOO_COMMON = "This password is too common; choose a less predictable one."


@cache
def common_passwords() -> frozenset[str]:
    data = resources.files("clinic.auth").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip().lower() for line in gzip.decompress(data).decode().splitlines() if line.strip())


def password_problems(password: str, *, email: str | None = None, name: str | None = None) -> list[str]:
    """Why ``password`` is refused, or an empty list when it is acceptable."""
    if not password.strip():
        return ["A password cannot be only spaces."]
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    pattern = _pattern_problem(lowered)
    if pattern:
        problems.append(pattern)
    if lowered.strip() in common_passwords():
        problems.append(TOO_COMMON)
    context = _context_words(email=email, name=name)
    if _built_from(lowered, context):
        problems.append("The password must not be made of your name, your email address or this application's name.")
    if not problems:
        problems.extend(_estimate_problems(password, context))
    return problems


def _pattern_problem(lowered: str) -> str | None:
    """A repetition or a run, which adds length without adding anything to guess."""
    if len(set(lowered)) == 1:
        return "The password must not be one character repeated."
    period = (lowered + lowered).find(lowered, 1)
    if period < len(lowered) and len(lowered[:period].strip()) < MIN_LENGTH:
        return "The password must not be a short string repeated (like abcabcabcabc)."
    if _is_run(lowered):
        return "The password must not be a run of consecutive characters (like 123456789012 or abcdefghijkl)."
    return None


def _is_run(lowered: str) -> bool:
    """Every character one up (or every one down) from the one before; 9 to 0 and z to a wrap."""
    if not lowered.isascii() or not lowered.isalnum():
        return False
    pairs = list(itertools.pairwise(lowered))
    return any(all(_next_in_run(a, step) == b for a, b in pairs) for step in (1, -1))


def _next_in_run(char: str, step: int) -> str:
    alphabet = "0123456789" if char.isdigit() else "abcdefghijklmnopqrstuvwxyz"
    return alphabet[(alphabet.index(char) + step) % len(alphabet)]


def _context_words(*, email: str | None, name: str | None) -> list[str]:
    """The words of the user and the product that a password must not be made of, longest first."""
    words = set(PRODUCT_NAMES)
    if email:
        address = email.strip().lower()
        local = address.split("@", 1)[0]
        words.update({address, local, *re.split(r"[._+\-]+", local)})
    if name:
        parts = name.lower().split()
        words.update({" ".join(parts), "".join(parts), *parts})
    return sorted((w for w in words if len(w) >= 2), key=len, reverse=True)


def _built_from(lowered: str, context: list[str]) -> bool:
    """Whether the password is context words with, at most, digits, spaces and symbols added."""
    remainder = lowered
    for word in context:
        remainder = remainder.replace(word, "")
    return remainder != lowered and not any(char.isalpha() for char in remainder)


def _estimate_problems(password: str, context: list[str]) -> list[str]:
    """zxcvbn's verdict: refused when fewer than ``MIN_GUESSES`` guesses would find it."""
    with _ESTIMATE_LOCK:
        result: dict[str, Any] = zxcvbn(password[:_ESTIMATE_LENGTH], user_inputs=context)
    if result["guesses"] >= MIN_GUESSES:
        return []
    sequence = result["sequence"]
    if len(sequence) == 1 and sequence[0].get("dictionary_name") == "passwords":
        return [TOO_COMMON]
    feedback = result["feedback"]
    hints = " ".join(part for part in (feedback.get("warning"), *feedback.get("suggestions", [])) if part)
    return [f"This password is too easy to guess. {hints}".strip()]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``; costs the same when the hash is missing."""
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
