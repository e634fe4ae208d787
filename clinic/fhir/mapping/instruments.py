"""FHIR mapping: each signed assessment as a QuestionnaireResponse and its total as an Observation.

What is exported is what a clinician reads as the record: signed assessments not superseded by a
signed amendment. Drafts (an unsigned assessment or an amendment still in draft) are left out. An
amended assessment is exported as its newest signed version, under the id of the version it
amends (``assessment-<id of the first version>``), ``status`` ``amended`` and ``meta.versionId``
its revision: a receiving system that holds the first version replaces it, as FHIR versions a
resource. The versions it supersedes are not exported again. docs/fhir.md gives the codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Select, func, select
from sqlalchemy.orm import aliased

from clinic.assessments.definitions import Instrument, Item, get_instrument, instruments
from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.fhir.labels import LOINC, US_CORE, clinic_system, fhir_base, labelled, reference
from clinic.fhir.sources import Scope, Source, register
from clinic.fhir.validate import register_clinic_codes, register_codes

OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"

#: LOINC answer list LL358-3 (PHQ-9 and GAD-7 items): the points of each answer, as LOINC codes them.
FREQUENCY: Final[dict[int, tuple[str, str]]] = {
    0: ("LA6568-5", "Not at all"),
    1: ("LA6569-3", "Several days"),
    2: ("LA6570-1", "More than half the days"),
    3: ("LA6571-9", "Nearly every day"),
}
#: The answers of GAD-7 item 2 (LOINC 68509-9, a term LOINC shares with the PHQ-4): in LOINC's GAD-7
#: form its 2 points are LA18938-3 "More days than not", not LL358-3's "More than half the days".
FREQUENCY_68509_9: Final[dict[int, tuple[str, str]]] = {**FREQUENCY, 2: ("LA18938-3", "More days than not")}


@dataclass(frozen=True)
class Codes:
    """How one instrument is coded: its total's code, and its LOINC form where clinic follows one."""

    #: The total score's (system, code, display).
    total: tuple[str, str, str]
    #: The LOINC panel whose form (``http://loinc.org/q/<panel>``) the response follows, or None:
    #: clinic's own Questionnaire (``<FHIR base>/Questionnaire/<instrument>``).
    panel: str | None = None
    #: With a panel: each item's LOINC code, the form's ``linkId`` (``/44250-9``).
    items: dict[str, str] = field(default_factory=dict)
    #: With a panel: the LOINC answer of each item's points.
    answers: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: With a panel: an item whose LOINC form offers other answers than ``answers`` (item key -> answers).
    item_answers: dict[str, dict[int, tuple[str, str]]] = field(default_factory=dict)

    def answer(self, key: str, points: int) -> tuple[str, str]:
        """The LOINC answer (code, display) of ``points`` on item ``key``, as the item's form offers it."""
        return self.item_answers.get(key, self.answers)[points]


def _clinic_total(code: str, display: str) -> tuple[str, str, str]:
    return ("instrument-score", code, display)


#: Every instrument clinic scores (clinic/assessments/instruments). ASAM has no total: its
#: response is exported without an Observation.
CODES: Final[dict[str, Codes]] = {
    "PHQ-9": Codes(
        total=(LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
        panel="44249-1",
        items={
            "q1": "44250-9",
            "q2": "44255-8",
            "q3": "44259-0",
            "q4": "44254-1",
            "q5": "44251-7",
            "q6": "44258-2",
            "q7": "44252-5",
            "q8": "44253-3",
            "q9": "44260-8",
        },
        answers=FREQUENCY,
    ),
    "GAD-7": Codes(
        total=(LOINC, "70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
        panel="69737-5",
        items={
            "q1": "69725-0",
            "q2": "68509-9",
            "q3": "69733-4",
            "q4": "69734-2",
            "q5": "69735-9",
            "q6": "69689-8",
            "q7": "69736-7",
        },
        answers=FREQUENCY,
        item_answers={"q2": FREQUENCY_68509_9},
    ),
    "AUDIT-C": Codes(total=(LOINC, "75626-2", "Total score [AUDIT-C]")),
    "DAST-10": Codes(total=(LOINC, "82667-7", "Total score [DAST-10]")),
    "COWS": Codes(total=_clinic_total("COWS", "Clinical Opiate Withdrawal Scale (COWS) total score")),
    "SOWS": Codes(total=_clinic_total("SOWS", "Subjective Opiate Withdrawal Scale (SOWS) total score")),
    "DSM5-OUD": Codes(total=_clinic_total("DSM5-OUD", "DSM-5 opioid use disorder criteria met (count)")),
}


register_codes(OBSERVATION_CATEGORY, {"survey": "Survey"})
register_clinic_codes(
    "instrument-score",
    {codes.total[1]: codes.total[2] for codes in CODES.values() if codes.total[0] != LOINC},
)


def choice_system(instrument: str, key: str) -> str:
    """The name of the clinic code system of one choice item's answers, such as ``asam-level-of-care``."""
    return f"{instrument.lower()}-{key.replace('_', '-')}"


def _register_choices() -> None:
    """Every answer of every choice item (ASAM's edition and level of care, AUDIT-C's sex), with its words."""
    for definition in instruments().values():
        for item in (*definition.modifiers, *definition.items):
            if item.type != "choice":
                continue
            values = {str(value) for value in item.allowed or ()}
            for allowed in (item.allowed_by or {}).get("values", {}).values():
                values.update(str(value) for value in allowed)
            words = dict(item.labels or {})
            for labels in (item.labels_by or {}).get("values", {}).values():
                for value, label in labels.items():
                    words.setdefault(value, label)
            codes = {value: words.get(value, value) for value in sorted(values)}
            register_clinic_codes(choice_system(definition.code, item.key), codes)


_register_choices()


def instant(moment: datetime) -> str:
    """A FHIR ``instant``/``dateTime``: UTC, with its zone."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def resource_id(first_version_id: int) -> str:
    """The id of an assessment's response and total, shared by all its versions."""
    return f"assessment-{first_version_id}"


def select_assessments(scope: Scope) -> Select[*tuple[Any, ...]]:
    """The current signed version of each assessment in the scope, with the id of its first version.

    The first version is found by walking amendments down from each amended original (a recursive
    CTE over the few assessments ever amended), so the statement count does not depend on the rows.
    """
    place = Scope(client_id=scope.client_id, site_id=scope.site_id)
    amended = (
        select(Assessment.id.label("id"), Assessment.id.label("first_id"))
        .where(
            Assessment.amends_id.is_(None),
            Assessment.superseded_by_id.is_not(None),
            place.where(client=Assessment.client_id, site=Assessment.site_id),
        )
        .cte("assessment_versions", recursive=True)
    )
    later = aliased(Assessment)
    versions = amended.union_all(select(later.id, amended.c.first_id).where(later.amends_id == amended.c.id))
    return (
        select(Assessment, func.coalesce(versions.c.first_id, Assessment.id).label("first_id"))
        .outerjoin(versions, versions.c.id == Assessment.id)
        .where(
            Assessment.status == AssessmentStatus.SIGNED,
            Assessment.superseded_by_id.is_(None),
            scope.where(client=Assessment.client_id, site=Assessment.site_id, changed=[Assessment.updated_at]),
        )
        .order_by(Assessment.id)
    )


def assessment_resources(row: Any) -> list[dict[str, Any]]:
    """A QuestionnaireResponse, and an Observation of the total when the instrument has one."""
    assessment: Assessment = row[0]
    first_id: int = row[1]
    definition = get_instrument(assessment.instrument)
    if definition is None:  # pragma: no cover - every stored assessment names a shipped instrument
        return []
    response = questionnaire_response(assessment, definition, first_id)
    resources = [response]
    if assessment.total_score is not None and assessment.instrument in CODES:
        resources.append(total_observation(assessment, definition, first_id))
    return [labelled(resource) for resource in resources]


def _meta(assessment: Assessment, profile: str) -> dict[str, Any]:
    return {
        "versionId": str(assessment.revision),
        "lastUpdated": instant(assessment.updated_at),
        "profile": [US_CORE + profile],
    }


def _slug(code: str) -> str:
    return code.lower()


def questionnaire_url(assessment: Assessment, definition: Instrument) -> str:
    """The form the answers follow: LOINC's where clinic follows it, else clinic's own, by version."""
    codes = CODES.get(definition.code)
    if codes is not None and codes.panel is not None:
        return f"http://loinc.org/q/{codes.panel}"
    return f"{fhir_base()}/Questionnaire/{_slug(definition.code)}|{assessment.version}"


def questionnaire_response(assessment: Assessment, definition: Instrument, first_id: int) -> dict[str, Any]:
    answers = assessment.answers
    items = [
        _response_item(definition, item, answers)
        for item in (*definition.modifiers, *definition.items)
        if item.key in answers and answers[item.key] is not None
    ]
    finished = assessment.signed_at or assessment.administered_at
    return {
        "resourceType": "QuestionnaireResponse",
        "id": resource_id(first_id),
        "meta": _meta(assessment, "us-core-questionnaireresponse"),
        "identifier": {"system": f"{fhir_base()}/sid/assessment", "value": str(assessment.id)},
        "questionnaire": questionnaire_url(assessment, definition),
        "status": "amended" if assessment.revision > 1 else "completed",
        "subject": reference("Patient", f"patient-{assessment.client_id}"),
        "authored": instant(finished),
        "item": items,
    }


def _response_item(definition: Instrument, item: Item, answers: dict[str, Any]) -> dict[str, Any]:
    codes = CODES.get(definition.code)
    value = answers[item.key]
    link_id = item.key
    answer: dict[str, Any]
    if codes is not None and item.key in codes.items:
        link_id = "/" + codes.items[item.key]
        code, display = codes.answer(item.key, int(value))
        answer = {"valueCoding": {"system": LOINC, "code": code, "display": display}}
    elif item.type == "boolean":
        answer = {"valueBoolean": bool(value)}
    elif item.type == "integer":
        answer = {"valueInteger": int(value)}
    else:
        coding = {"system": clinic_system(choice_system(definition.code, item.key)), "code": str(value)}
        words = item.option_labels(answers).get(str(value))
        if words:
            coding["display"] = words
        answer = {"valueCoding": coding}
    return {"linkId": link_id, "text": item.text_for(answers), "answer": [answer]}


def total_observation(assessment: Assessment, definition: Instrument, first_id: int) -> dict[str, Any]:
    system, code, display = CODES[definition.code].total
    if system != LOINC:
        system = clinic_system(system)
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id(first_id),
        "meta": _meta(assessment, "us-core-observation-screening-assessment"),
        "status": "amended" if assessment.revision > 1 else "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": reference("Patient", f"patient-{assessment.client_id}"),
        "effectiveDateTime": instant(assessment.administered_at),
        "valueInteger": assessment.total_score,
        "derivedFrom": [reference("QuestionnaireResponse", resource_id(first_id))],
    }
    if assessment.signed_at is not None:
        observation["issued"] = instant(assessment.signed_at)
    if assessment.severity:
        observation["interpretation"] = [{"text": severity_words(assessment.severity)}]
    notes = [flag_words(definition, flag) for flag in assessment.flags or ()]
    if assessment.amends_id is not None and assessment.amendment_reason:
        notes.append(f"Amended (revision {assessment.revision}): {assessment.amendment_reason}")
    if notes:
        observation["note"] = [{"text": note} for note in notes]
    return observation


def severity_words(severity: str) -> str:
    """A severity band as words: ``moderately_severe`` -> ``Moderately severe``."""
    return severity.replace("_", " ").capitalize()


def flag_words(definition: Instrument, flag: str) -> str:
    """What a flag means, in the words the instrument's definition gives its alert where it has one."""
    for rule in definition.flags:
        if rule.alert_title and any(rule.flag.format(item=key) == flag for key in rule.items):
            return rule.alert_title
    return "Flag: " + flag.replace("_", " ")


ASSESSMENTS = register(
    Source(
        name="assessments",
        produces=("QuestionnaireResponse", "Observation"),
        select=select_assessments,
        to_fhir=assessment_resources,
    )
)
