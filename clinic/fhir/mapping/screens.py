"""FHIR mapping: each drug-screen result as a laboratory Observation; a missed screen as a cancelled one.

A result is coded with the LOINC test of its substance by a screen (immunoassay) method, from the
CDC Opioid Prescribing Support IG's value set "All urine drug screening tests" (LOINC 2.74):
:data:`SUBSTANCES`. Xylazine, whose LOINC tests are confirmatory only, has a code of clinic's own
(``drug-screen-substance``); a substance a program named itself is sent with its name as the
code's text. The value is SNOMED CT Positive or Negative; an invalid result has no value but a
``dataAbsentReason`` (error) saying the specimen gave no valid result.

A missed screen (no sample, no results) is one Observation of the panel, ``status`` ``cancelled``
with ``dataAbsentReason`` not-performed: programs count a missed screen, so a receiving clinician
should see it. A screen marked entered in error stays in the export with ``status``
``entered-in-error`` (and the reason in a note), so a system that received the result before
learns it was wrong.

Ids: ``drug-screen-<screen id>-<substance>`` for a result (stable when the screen's results are
corrected, which replaces its result rows) and ``drug-screen-<screen id>`` for a missed screen.
docs/fhir.md gives the mapping.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Select, select

from clinic.fhir.labels import LOINC, SNOMED, US_CORE, clinic_system, labelled, reference
from clinic.fhir.mapping.instruments import OBSERVATION_CATEGORY, instant
from clinic.fhir.sources import Scope, Source, register
from clinic.fhir.validate import register_clinic_codes, register_codes
from clinic.plans.models import DrugScreen, DrugScreenResult, ScreenResult

DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

#: A lower-case substance as clinic records it -> the LOINC "[Presence] in Urine by Screen method" test.
SUBSTANCES: Final[dict[str, tuple[str, str]]] = {
    "fentanyl": ("59673-4", "fentaNYL [Presence] in Urine by Screen method"),
    "norfentanyl": ("95797-7", "Norfentanyl [Presence] in Urine by Screen method"),
    "opiates": ("19295-5", "Opiates [Presence] in Urine by Screen method"),
    "opiate": ("19295-5", "Opiates [Presence] in Urine by Screen method"),
    "heroin": ("19321-9", "6-Monoacetylmorphine (6-MAM) [Presence] in Urine by Screen method"),
    "6-mam": ("19321-9", "6-Monoacetylmorphine (6-MAM) [Presence] in Urine by Screen method"),
    "morphine": ("19597-4", "Morphine [Presence] in Urine by Screen method"),
    "codeine": ("19411-8", "Codeine [Presence] in Urine by Screen method"),
    "oxycodone": ("19642-8", "oxyCODONE [Presence] in Urine by Screen method"),
    "oxymorphone": ("19646-9", "oxyMORphone [Presence] in Urine by Screen method"),
    "hydrocodone": ("19482-9", "HYDROcodone [Presence] in Urine by Screen method"),
    "hydromorphone": ("19486-0", "HYDROmorphone [Presence] in Urine by Screen method"),
    "methadone": ("19550-3", "Methadone [Presence] in Urine by Screen method"),
    "eddp": (
        "93495-0",
        "2-Ethylidene-1,5-Dimethyl-3,3-Diphenylpyrrolidine (EDDP) [Presence] in Urine by Screen method",
    ),
    "buprenorphine": ("93494-3", "Buprenorphine [Presence] in Urine by Screen method"),
    "norbuprenorphine": ("82371-6", "Norbuprenorphine [Presence] in Urine by Screen method"),
    "tramadol": ("19710-3", "traMADol [Presence] in Urine by Screen method"),
    "meperidine": ("19532-1", "Meperidine [Presence] in Urine by Screen method"),
    "tapentadol": ("72485-6", "Tapentadol [Presence] in Urine by Screen method"),
    "naltrexone": ("19609-7", "Naltrexone [Presence] in Urine by Screen method"),
    "cocaine": ("19359-9", "Cocaine [Presence] in Urine by Screen method"),
    "benzoylecgonine": ("14314-9", "Benzoylecgonine [Presence] in Urine by Screen method"),
    "methamphetamine": ("19554-5", "Methamphetamine [Presence] in Urine by Screen method"),
    "amphetamine": ("19343-3", "Amphetamine [Presence] in Urine by Screen method"),
    "amphetamines": ("19261-7", "Amphetamines [Presence] in Urine by Screen method"),
    "mdma": ("19568-5", "Methylenedioxymethamphetamine [Presence] in Urine by Screen method"),
    "benzodiazepines": ("14316-4", "Benzodiazepines [Presence] in Urine by Screen method"),
    "barbiturates": ("19270-8", "Barbiturates [Presence] in Urine by Screen method"),
    "cannabinoids": ("18282-4", "Cannabinoids [Presence] in Urine by Screen method"),
    "thc": ("18282-4", "Cannabinoids [Presence] in Urine by Screen method"),
    "pcp": ("19659-2", "Phencyclidine [Presence] in Urine by Screen method"),
    "phencyclidine": ("19659-2", "Phencyclidine [Presence] in Urine by Screen method"),
    "alcohol": ("42242-8", "Ethanol [Presence] in Urine by Screen method"),
    "ethanol": ("42242-8", "Ethanol [Presence] in Urine by Screen method"),
    "etg": ("58375-7", "Ethyl glucuronide [Presence] in Urine by Screen method"),
}

#: Substances of clinic's standard panel that LOINC has no screen-method test for: clinic's own codes.
CLINIC_SUBSTANCES: Final[dict[str, str]] = {"xylazine": "Xylazine [Presence] in Urine by screen (test strip)"}

#: A missed screen: the panel that was not collected.
PANEL: Final = ("69739-1", "Drugs of abuse panel - Urine by Screen method")

RESULTS: Final[dict[ScreenResult, tuple[str, str]]] = {
    ScreenResult.POSITIVE: ("10828004", "Positive"),
    ScreenResult.NEGATIVE: ("260385009", "Negative"),
}

register_codes(OBSERVATION_CATEGORY, {"laboratory": "Laboratory"})
register_codes(DATA_ABSENT_REASON, {"error": "Error", "not-performed": "Not Performed"})
register_clinic_codes("drug-screen-substance", CLINIC_SUBSTANCES)

#: How the sample was collected, as a note (FHIR has no element for an observed collection).
OBSERVED: Final = "Collection observed by staff."
UNOBSERVED: Final = "Collection not observed."


def result_id(screen_id: int, substance: str) -> str:
    """A result's id: its screen and substance, stable when the screen's results are corrected.

    Substance names are lower-case letters, digits, ``-`` and ``_``; an id has no ``_``, so it
    becomes ``.`` (which no substance name has).
    """
    return f"drug-screen-{screen_id}-{substance.replace('_', '.')}"


def select_results(scope: Scope) -> Select[*tuple[Any, ...]]:
    """Every result of the screens in the scope (missed screens have none), with its screen."""
    return (
        select(DrugScreenResult, DrugScreen)
        .join(DrugScreen, DrugScreen.id == DrugScreenResult.screen_id)
        .where(scope.where(client=DrugScreen.client_id, site=DrugScreen.site_id, changed=[DrugScreen.updated_at]))
        .order_by(DrugScreenResult.id)
    )


def select_missed(scope: Scope) -> Select[Any]:
    """Every screen in the scope the client did not give."""
    return (
        select(DrugScreen)
        .where(
            DrugScreen.missed.is_(True),
            scope.where(client=DrugScreen.client_id, site=DrugScreen.site_id, changed=[DrugScreen.updated_at]),
        )
        .order_by(DrugScreen.id)
    )


def substance_code(substance: str) -> dict[str, Any]:
    """The substance's test as a CodeableConcept: LOINC where it has a screen test, else clinic's or words."""
    if substance in SUBSTANCES:
        code, display = SUBSTANCES[substance]
        return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": f"{substance} (urine screen)"}
    if substance in CLINIC_SUBSTANCES:
        coding = {
            "system": clinic_system("drug-screen-substance"),
            "code": substance,
            "display": CLINIC_SUBSTANCES[substance],
        }
        return {"coding": [coding], "text": f"{substance} (urine screen)"}
    return {"text": f"{substance} (urine screen)"}


def _screen_fields(screen: DrugScreen) -> dict[str, Any]:
    """What every Observation of a screen shares: category, subject, time, collection, correction."""
    notes = [] if screen.missed else [OBSERVED if screen.observed else UNOBSERVED]
    if screen.entered_in_error_at is not None:
        notes.append(f"Entered in error: {screen.entered_in_error_reason or 'no reason given'}.")
    return {
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
        "subject": reference("Patient", f"patient-{screen.client_id}"),
        "effectiveDateTime": instant(screen.collected_at),
        "issued": instant(screen.created_at),
        **({"note": [{"text": note} for note in notes]} if notes else {}),
    }


def result_observation(row: Any) -> list[dict[str, Any]]:
    """One substance's result in one screen."""
    result: DrugScreenResult = row[0]
    screen: DrugScreen = row[1]
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": result_id(screen.id, result.substance),
        "meta": {"lastUpdated": instant(screen.updated_at), "profile": [US_CORE + "us-core-observation-lab"]},
        "status": "entered-in-error" if screen.entered_in_error_at is not None else "final",
        "code": substance_code(result.substance),
        **_screen_fields(screen),
    }
    if result.result in RESULTS:
        code, display = RESULTS[result.result]
        observation["valueCodeableConcept"] = {
            "coding": [{"system": SNOMED, "code": code, "display": display}],
            "text": display,
        }
    else:
        observation["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT_REASON, "code": "error", "display": "Error"}],
            "text": "Invalid result: the specimen gave no valid result for this substance.",
        }
    return [labelled(observation)]


def missed_observation(screen: DrugScreen) -> list[dict[str, Any]]:
    """A scheduled screen the client did not give: the panel, cancelled, not performed."""
    code, display = PANEL
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"drug-screen-{screen.id}",
        "meta": {"lastUpdated": instant(screen.updated_at)},
        "status": "entered-in-error" if screen.entered_in_error_at is not None else "cancelled",
        "code": {
            "coding": [{"system": LOINC, "code": code, "display": display}],
            "text": "Scheduled urine drug screen, missed",
        },
        **_screen_fields(screen),
        "dataAbsentReason": {
            "coding": [{"system": DATA_ABSENT_REASON, "code": "not-performed", "display": "Not Performed"}],
            "text": "Missed: the client did not give the scheduled sample.",
        },
    }
    return [labelled(observation)]


RESULTS_SOURCE = register(
    Source(
        name="drug screen results",
        produces=("Observation",),
        select=select_results,
        to_fhir=result_observation,
    )
)
MISSED_SOURCE = register(
    Source(
        name="missed drug screens",
        produces=("Observation",),
        select=select_missed,
        to_fhir=missed_observation,
    )
)
