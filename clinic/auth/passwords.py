"""Password hashing (argon2id) and the password policy (NIST SP 800-63B).

At least 12 characters, up to 256 accepted, no composition rules, common passwords refused.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
#: Verified against when the account does not exist, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-costs-the-same")


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
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``; costs the same when the hash is missing."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
