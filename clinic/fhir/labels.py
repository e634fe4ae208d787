"""The security labels every exported resource carries, the 42 CFR 2.32 notice, and the code systems.

DOMAIN.md ("42 CFR 2.32 notice and FHIR security labels") gives the labels and the notice; the
systems are the canonical URLs of HL7's terminology and of the code systems the mapping uses.
"""

from __future__ import annotations

from typing import Any, Final

CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"

#: Every resource's ``meta.security``: restricted, Part 2, and the prohibition on redisclosure.
SECURITY_LABELS: Final[tuple[dict[str, str], ...]] = (
    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
    {"system": ACT_CODE, "code": "NORDSCLCD", "display": "no redisclosure without consent directive"},
)

#: The abbreviated 42 CFR 2.32 notice every disclosure carries.
NOTICE: Final = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."


def labelled(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with the Part 2 labels in ``meta.security`` (kept beside any other ``meta``)."""
    meta = dict(resource.get("meta") or {})
    meta["security"] = [dict(label) for label in SECURITY_LABELS]
    return {**resource, "meta": meta}
