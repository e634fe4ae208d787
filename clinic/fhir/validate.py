"""Check every exported resource: the R4B model of its type, then what the models do not check.

``check(resource)`` parses the resource with fhir.resources' R4B model of its ``resourceType``
(types, cardinalities, required elements, unknown elements, id and date formats) and then checks
what the models leave alone:

- the three Part 2 security labels (``clinic.fhir.labels.SECURITY_LABELS``) are in ``meta.security``;
- every coding (a dict with ``system`` and ``code``) names a system clinic uses, with a code that
  system has: LOINC codes well formed with their check digit (mod 10), LOINC answer and part codes
  (``LA…``, ``LP…``) well formed, SNOMED CT ids with their check digit (Verhoeff); RxNorm, HL7
  terminology and clinic's own code systems only with a code registered here
  (:func:`register_codes`, :func:`register_clinic_codes`: each mapping module registers the codes
  it emits, with their display); UCUM units and BCP 47 language tags well formed;
- the codes of required bindings the models accept as any string (``Patient.gender``, statuses, ...);
- narrative is XHTML in a ``div``; references are relative (``Type/id``) so they resolve inside a
  Bundle or a bulk export.

Any problem raises :class:`InvalidResourceError` naming the resource and every problem found: an
export never sends a resource that does not pass.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from stdnum import luhn, verhoeff

from clinic.fhir import labels
from clinic.fhir.labels import (
    ACT_CODE,
    BCP47,
    CAREPLAN_CATEGORY,
    CONFIDENTIALITY,
    CONSENT_SCOPE,
    GOAL_ACHIEVEMENT,
    GOAL_RELATIONSHIP_TYPE,
    IDENTIFIER_TYPE,
    LOINC,
    PARTICIPATION_TYPE,
    SECURITY_LABELS,
    SNOMED,
    UCUM,
)


class InvalidResourceError(ValueError):
    """A resource that fails the model of its type or one of clinic's own checks."""

    def __init__(self, resource_type: str, resource_id: str, problems: list[str]) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.problems = problems
        super().__init__(f"{resource_type}/{resource_id} is not valid FHIR R4: " + "; ".join(problems))


#: Codes clinic emits, by system: code -> display. LOINC and SNOMED CT codes are also checked by form.
_CODES: dict[str, dict[str, str]] = {}
#: clinic's own code systems, by name (their URL depends on the deployment's FHIR base).
_CLINIC_CODES: dict[str, dict[str, str]] = {}


def register_codes(system: str, codes: Mapping[str, str]) -> None:
    """Declare codes of ``system`` clinic emits (code -> display); a coding of the system must use one."""
    _CODES.setdefault(system, {}).update(codes)


def register_clinic_codes(name: str, codes: Mapping[str, str]) -> None:
    """Declare one of clinic's own code systems (``labels.clinic_system(name)``) and its codes."""
    _CLINIC_CODES.setdefault(name, {}).update(codes)


def display(system: str, code: str) -> str:
    """The display registered for a code (KeyError when the code is not registered)."""
    return _CODES[system][code]


register_codes(CONFIDENTIALITY, {"R": "restricted"})
register_codes(
    ACT_CODE,
    {
        "42CFRPart2": "42 CFR Part2",
        "NORDSCLCD": "no redisclosure without consent directive",
        "IDSCL": "information disclosure",
    },
)
register_codes(PARTICIPATION_TYPE, {"IRCP": "information recipient", "PPRF": "primary performer"})
register_codes(IDENTIFIER_TYPE, {"MR": "Medical record number"})
register_codes(CONSENT_SCOPE, {"patient-privacy": "Privacy Consent"})
register_codes(CAREPLAN_CATEGORY, {"assess-plan": "Assessment and Plan of Treatment"})
register_codes(GOAL_RELATIONSHIP_TYPE, {"milestone": "Milestone"})
register_codes(
    GOAL_ACHIEVEMENT,
    {
        "in-progress": "In Progress",
        "achieved": "Achieved",
        "not-achieved": "Not Achieved",
    },
)
register_codes(LOINC, {"59284-0": "Consent Document"})

#: Values of required bindings the R4B models accept as any string: (resource type, element path).
_REQUIRED: Final[dict[tuple[str, str], frozenset[str]]] = {
    key: frozenset(values.split())
    for key, values in {
        ("Patient", "gender"): "male female other unknown",
        ("EpisodeOfCare", "status"): "planned waitlist active onhold finished cancelled entered-in-error",
        ("CarePlan", "status"): "draft active on-hold revoked completed entered-in-error unknown",
        ("CarePlan", "intent"): "proposal plan order option",
        ("CarePlan", "activity.detail.status"): (
            "not-started scheduled in-progress on-hold completed cancelled stopped unknown entered-in-error"
        ),
        ("Goal", "lifecycleStatus"): (
            "proposed planned accepted active on-hold completed cancelled entered-in-error rejected"
        ),
        ("MedicationRequest", "status"): "active on-hold cancelled completed entered-in-error stopped draft unknown",
        ("MedicationRequest", "intent"): (
            "proposal plan order original-order reflex-order filler-order instance-order option"
        ),
        ("Appointment", "status"): (
            "proposed pending booked arrived fulfilled cancelled noshow entered-in-error checked-in waitlist"
        ),
        ("Appointment", "participant.status"): "accepted declined tentative needs-action",
        ("Appointment", "participant.required"): "required optional information-only",
        ("Consent", "status"): "draft proposed active rejected inactive entered-in-error",
        ("Consent", "provision.type"): "deny permit",
        ("QuestionnaireResponse", "status"): "in-progress completed amended entered-in-error stopped",
        ("Observation", "status"): (
            "registered preliminary final amended corrected cancelled entered-in-error unknown"
        ),
    }.items()
}

_NARRATIVE_STATUS = frozenset({"generated", "extensions", "additional", "empty"})
_XHTML = "{http://www.w3.org/1999/xhtml}div"
_LOINC_CODE = re.compile(r"^(\d{1,7})-(\d)$")
#: LOINC answer (LA) and part (LP) codes: their check digit does not follow the mod 10 of the number.
_LOINC_ANSWER_OR_PART = re.compile(r"^L[AP]\d{1,8}-\d$")
_SNOMED_ID = re.compile(r"^[1-9]\d{5,17}$")
_BCP47_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def check(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource itself when it is valid; :class:`InvalidResourceError` listing every problem otherwise."""
    resource_type = str(resource.get("resourceType"))
    problems = _model_problems(resource_type, resource)
    problems += _label_problems(resource)
    problems += [problem for path, coding in _codings(resource, "") if (problem := _coding_problem(path, coding))]
    problems += _binding_problems(resource_type, resource)
    problems += _narrative_problems(resource)
    problems += [
        f"{path}: reference {value!r} is not a relative reference (Type/id)"
        for path, value in _references(resource, "")
        if not _RELATIVE_REFERENCE.match(value)
    ]
    if problems:
        raise InvalidResourceError(resource_type, str(resource.get("id")), problems)
    return resource


def _model_problems(resource_type: str, resource: dict[str, Any]) -> list[str]:
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [f"unknown resourceType {resource_type!r}"]
    try:
        model.model_validate(resource)
    except ValidationError as error:
        return [
            f"{'.'.join(str(part) for part in item['loc']) or resource_type}: {item['msg']}" for item in error.errors()
        ]
    return []


def _label_problems(resource: dict[str, Any]) -> list[str]:
    present = {(label.get("system"), label.get("code")) for label in (resource.get("meta") or {}).get("security") or []}
    return [
        f"meta.security: the label {label['system']}|{label['code']} is missing"
        for label in SECURITY_LABELS
        if (label["system"], label["code"]) not in present
    ]


def _codings(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every coding-shaped dict (``system`` and ``code`` both strings; a Quantity's too) with its path."""
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield path, node
        for key, value in node.items():
            yield from _codings(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _codings(item, f"{path}[{index}]")


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key == "reference" and isinstance(value, str):
                yield here, value
            else:
                yield from _references(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, f"{path}[{index}]")


def _loinc_problem(code: str) -> str | None:
    if _LOINC_ANSWER_OR_PART.match(code):
        return None
    match = _LOINC_CODE.match(code)
    if match is None:
        return f"{code!r} is not a LOINC code (digits, a hyphen, a check digit)"
    if luhn.calc_check_digit(match.group(1)) != match.group(2):
        return f"LOINC {code!r} has the wrong check digit"
    return None


def _snomed_problem(code: str) -> str | None:
    if _SNOMED_ID.match(code) and verhoeff.is_valid(code):
        return None
    return f"{code!r} is not a SNOMED CT id (its Verhoeff check digit fails)"


def _ucum_problem(code: str) -> str | None:
    return None if code and not any(ch.isspace() for ch in code) else f"{code!r} is not a UCUM unit"


def _bcp47_problem(code: str) -> str | None:
    return None if _BCP47_TAG.match(code) else f"{code!r} is not a BCP 47 language tag"


#: Systems whose codes are checked by their form (and, for LOINC and SNOMED CT, their check digit).
_FORM_CHECKS: Final = {LOINC: _loinc_problem, SNOMED: _snomed_problem, UCUM: _ucum_problem, BCP47: _bcp47_problem}


def _registered(system: str) -> dict[str, str] | None:
    """The codes registered for ``system`` (clinic's own systems by name under the FHIR base); None: unknown."""
    if system in _CODES:
        return _CODES[system]
    clinic_prefix = labels.fhir_base() + "/CodeSystem/"
    if system.startswith(clinic_prefix):
        return _CLINIC_CODES.get(system.removeprefix(clinic_prefix))
    return None


def _coding_problem(path: str, coding: dict[str, Any]) -> str | None:
    system, code = coding["system"], coding["code"]
    form = _FORM_CHECKS.get(system)
    if form is not None:
        problem = form(code)
        return None if problem is None else f"{path}: {problem}"
    codes = _registered(system)
    if codes is None:
        return f"{path}: {system} is not a code system clinic uses"
    return None if code in codes else f"{path}: {code!r} is not a code clinic uses from {system}"


def _values(node: Any, parts: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, parts)
        return
    if not parts:
        yield node
        return
    if isinstance(node, dict) and parts[0] in node:
        yield from _values(node[parts[0]], parts[1:])


def _binding_problems(resource_type: str, resource: dict[str, Any]) -> list[str]:
    problems = []
    for (bound_type, path), allowed in _REQUIRED.items():
        if bound_type != resource_type:
            continue
        for value in _values(resource, path.split(".")):
            if value not in allowed:
                problems.append(f"{path}: {value!r} is not one of {', '.join(sorted(allowed))}")
    return problems


def _narrative_problems(resource: dict[str, Any]) -> list[str]:
    text = resource.get("text")
    if not isinstance(text, dict):
        return []
    problems = []
    if text.get("status") not in _NARRATIVE_STATUS:
        problems.append(f"text.status: {text.get('status')!r} is not a narrative status")
    try:
        root = ET.fromstring(str(text.get("div", "")))  # noqa: S314 - our own generated markup, not input
    except ET.ParseError as error:
        return [*problems, f"text.div: not well-formed XHTML ({error})"]
    if root.tag != _XHTML:
        problems.append("text.div: the narrative must be an XHTML div")
    return problems
