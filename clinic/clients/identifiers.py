"""Medical record numbers: 7 random digits and a Damm check digit.

The Damm algorithm catches every single-digit error and every swap of two adjacent digits, so
a mistyped MRN is refused rather than matched to someone else. Random, not sequential, so an
MRN says nothing about how many clients a program has.
"""

from __future__ import annotations

import re
import secrets

from stdnum import damm

MRN_LENGTH = 8
_SEPARATORS = re.compile(r"[\s-]")


def new_mrn() -> str:
    body = str(secrets.randbelow(9_000_000) + 1_000_000)
    return body + damm.calc_check_digit(body)


def normalise_mrn(raw: str) -> str:
    return _SEPARATORS.sub("", raw.strip())


def looks_like_mrn(raw: str) -> bool:
    return bool(re.fullmatch(r"\d{8}", normalise_mrn(raw)))


def is_valid_mrn(raw: str) -> bool:
    value = normalise_mrn(raw)
    return looks_like_mrn(value) and bool(damm.is_valid(value))
