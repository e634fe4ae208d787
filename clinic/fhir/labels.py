"""The security labels every exported resource carries, the 42 CFR 2.32 notice, and the code systems.

DOMAIN.md ("42 CFR 2.32 notice and FHIR security labels") gives the labels and the notice; the
systems are the canonical URLs of HL7's terminology and of the code systems the mapping uses.
clinic's own definitions (the code systems of its vocabularies, the MRN's identifier system, the
notice's extension) live under the deployment's FHIR base (``FHIR_BASE_URL``, by default
``PUBLIC_BASE_URL`` + ``/api/v1/fhir``): :func:`fhir_base`, :func:`clinic_system`.
"""

from __future__ import annotations

import html
from typing import Any, Final

from flask import current_app

CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
IDENTIFIER_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
GOAL_ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
CAREPLAN_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
GOAL_RELATIONSHIP_TYPE: Final = "http://hl7.org/fhir/goal-relationship-type"
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
BCP47: Final = "urn:ietf:bcp:47"

#: US Core profiles the mapping conforms to (version-less canonicals, as US Core publishes them).
US_CORE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"

#: Every resource's ``meta.security``: restricted, Part 2, and the prohibition on redisclosure.
SECURITY_LABELS: Final[tuple[dict[str, str], ...]] = (
    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
    {"system": ACT_CODE, "code": "NORDSCLCD", "display": "no redisclosure without consent directive"},
)

#: The abbreviated 42 CFR 2.32 notice every disclosure carries.
NOTICE: Final = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."

#: Path, under :func:`fhir_base`, of the extension carrying the notice on a Bundle's ``meta``.
NOTICE_EXTENSION_PATH: Final = "/StructureDefinition/42cfr2-notice"


def labelled(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with the Part 2 labels in ``meta.security`` (kept beside any other ``meta``)."""
    meta = dict(resource.get("meta") or {})
    meta["security"] = [dict(label) for label in SECURITY_LABELS]
    return {**resource, "meta": meta}


def fhir_base() -> str:
    """The deployment's FHIR base URL: Bundle entries' ``fullUrl`` and clinic's canonical URLs start with it."""
    configured = str(current_app.config.get("FHIR_BASE_URL") or "")
    if configured:
        return configured.rstrip("/")
    return str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/") + "/api/v1/fhir"


def clinic_system(name: str) -> str:
    """The canonical URL of one of clinic's own code systems, such as ``intervention-kind``."""
    return f"{fhir_base()}/CodeSystem/{name}"


def mrn_system() -> str:
    """The identifier system of clinic's medical record numbers (``FHIR_IDENTIFIER_SYSTEM``)."""
    configured = str(current_app.config.get("FHIR_IDENTIFIER_SYSTEM") or "")
    return configured or f"{fhir_base()}/sid/mrn"


def notice_extension() -> dict[str, str]:
    """The 42 CFR 2.32 notice as an extension (on ``Bundle.meta``: a Bundle has no extensions of its own)."""
    return {"url": fhir_base() + NOTICE_EXTENSION_PATH, "valueString": NOTICE}


def reference(resource_type: str, resource_id: str, display: str | None = None) -> dict[str, str]:
    """A relative reference, ``Patient/patient-12``, resolved inside a Bundle or a bulk export."""
    ref = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        ref["display"] = display
    return ref


def patient_reference(client_id: int) -> dict[str, str]:
    """The reference to a client's Patient resource (``Patient/patient-<client id>``)."""
    return reference("Patient", f"patient-{client_id}")


def narrative(*lines: str) -> dict[str, str]:
    """A generated narrative: each line a paragraph of text, escaped, in an XHTML div."""
    body = "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in lines if line)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}
