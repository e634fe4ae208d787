"""Password hashing (argon2id) and the password policy (NIST SP 800-63B).

At least 12 characters, up to 256 accepted, no composition rules, common passwords refused.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app, has_app_context

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


@cache
def common_passwords() -> frozenset[str]:
    data = resources.files("clinic.auth").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip().lower() for line in gzip.decompress(data).decode().splitlines() if line.strip())


def password_problems(password: str, *, email: str | None = None, name: str | None = None) -> list[str]:
    """Why ``password`` is refused, or an empty list when it is acceptable."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.strip().lower()
    if lowered in common_passwords():
        problems.append("This password is too common; choose a less predictable one.")
    context = {value.strip().lower() for value in (email, name) if value}
    if email:
        context.add(email.split("@", 1)[0].lower())
    if lowered in context:
        problems.append("The password must not be your name or email address.")
    return problems


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
