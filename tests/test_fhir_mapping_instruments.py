"""FHIR mapping of instruments and drug screens: what a receiving system reads, checked by both validators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from clinic.fhir.mapping import instruments, screens
from clinic.fhir.sources import Scope, Source, resources
from clinic.fhir.validate import check
from tests.fhir_validator.medplum import Medplum, medplum_or_skip

NOW = datetime.now(UTC).replace(microsecond=0)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
PART2 = ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "42CFRPart2")

PHQ9 = {"q1": 2, "q2": 1, "q3": 1, "q4": 1, "q5": 0, "q6": 1, "q7": 1, "q8": 0, "q9": 1}
GAD7 = {"q1": 3, "q2": 3, "q3": 2, "q4": 2, "q5": 1, "q6": 1, "q7": 3}
COWS = {
    "pulse": 2,
    "sweating": 1,
    "restlessness": 3,
    "pupil_size": 1,
    "bone_joint_aches": 2,
    "runny_nose": 1,
    "gi_upset": 2,
    "tremor": 1,
    "yawning": 1,
    "anxiety": 2,
    "gooseflesh": 0,
}


@pytest.fixture(scope="module")
def medplum() -> Medplum:
    return medplum_or_skip()


@pytest.fixture
def ward(make_site, make_user, bearer, client):
    site = make_site(is_otp=True)
    clinician = make_user("clinician", sites=[site])
    headers = bearer(clinician)
    person = client.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": site.id, "first_name": "Rosa", "last_name": "Diaz", "date_of_birth": "1984-03-02"},
    ).get_json()
    return {"site": site, "clinician": clinician, "headers": headers, "client": person}


def assess(client, ward, instrument: str, answers: dict[str, Any], *, sign: bool = True, ago: int = 60) -> dict:
    created = client.post(
        f"/api/v1/clients/{ward['client']['id']}/assessments",
        headers=ward["headers"],
        json={
            "instrument": instrument,
            "answers": answers,
            "administered_at": (NOW - timedelta(minutes=ago)).isoformat(),
        },
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    if sign:
        signed = client.post(f"/api/v1/assessments/{body['id']}/sign", headers=ward["headers"])
        assert signed.status_code == 200, signed.get_json()
        body = signed.get_json()
    return body


def screen(client, ward, *, days_ago: int, results: dict[str, str] | None = None, **extra: Any) -> dict:
    body = {"collected_at": (NOW - timedelta(days=days_ago)).isoformat(), "results": results or {}, **extra}
    response = client.post(f"/api/v1/clients/{ward['client']['id']}/drug-screens", headers=ward["headers"], json=body)
    assert response.status_code in {200, 201}, response.get_json()
    return response.get_json()


def export(app: Flask, source: Source, scope: Scope) -> list[dict[str, Any]]:
    """The source's resources in the scope, each passed by clinic's own check on the way out."""
    with app.app_context():
        return list(resources(source, scope))


def by_id(found: list[dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in found if r["resourceType"] == resource_type}


def assert_valid_everywhere(app: Flask, medplum: Medplum, found: list[dict[str, Any]]) -> None:
    with app.app_context():
        for resource in found:
            check(resource)
    report = medplum.validate(found)
    assert len(report.checked) == len(found)
    assert report.errors == []


# --- instruments --------------------------------------------------------------------------------


def test_phq9_with_item_9_is_a_loinc_response_and_a_flagged_total(app, client, ward, medplum):
    phq = assess(client, ward, "PHQ-9", PHQ9)
    found = export(app, instruments.ASSESSMENTS, Scope(client_id=ward["client"]["id"]))
    assert [r["resourceType"] for r in found] == ["QuestionnaireResponse", "Observation"]
    response, total = found
    assert response["id"] == total["id"] == f"assessment-{phq['id']}"

    assert response["questionnaire"] == "http://loinc.org/q/44249-1"
    assert response["status"] == "completed"
    assert response["subject"] == {"reference": f"Patient/patient-{ward['client']['id']}"}
    items = {item["linkId"]: item for item in response["item"]}
    assert len(items) == 9
    item9 = items["/44260-8"]
    assert item9["text"].startswith("Over the last 2 weeks: Thoughts that you would be better off dead")
    assert item9["answer"] == [{"valueCoding": {"system": LOINC, "code": "LA6569-3", "display": "Several days"}}]
    assert items["/44250-9"]["answer"][0]["valueCoding"]["code"] == "LA6570-1"

    assert total["code"]["coding"] == [
        {
            "system": LOINC,
            "code": "44261-6",
            "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
        }
    ]
    assert total["category"][0]["coding"][0]["code"] == "survey"
    assert (total["status"], total["valueInteger"]) == ("final", 8)
    assert total["interpretation"] == [{"text": "Mild"}]
    assert total["derivedFrom"] == [{"reference": f"QuestionnaireResponse/assessment-{phq['id']}"}]
    assert "item 9" in total["note"][0]["text"]
    assert total["effectiveDateTime"].endswith("Z")
    for resource in found:
        labels = {(label["system"], label["code"]) for label in resource["meta"]["security"]}
        assert PART2 in labels
    assert_valid_everywhere(app, medplum, found)


def test_gad7_total_has_its_loinc_code_and_band(app, client, ward, medplum):
    assess(client, ward, "GAD-7", GAD7)
    response, total = export(app, instruments.ASSESSMENTS, Scope(client_id=ward["client"]["id"]))
    assert response["questionnaire"] == "http://loinc.org/q/69737-5"
    assert [item["linkId"] for item in response["item"]][:2] == ["/69725-0", "/68509-9"]
    assert total["code"]["coding"][0]["code"] == "70274-6"
    assert (total["valueInteger"], total["interpretation"]) == (15, [{"text": "Severe"}])
    assert "note" not in total
    assert_valid_everywhere(app, medplum, [response, total])


#: The answers LOINC's GAD-7 form (69737-5) offers each item, by points: item 2 (68509-9) has its own list.
GAD7_FORM_ANSWERS = {
    "/69725-0": ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"),
    "/68509-9": ("LA6568-5", "LA6569-3", "LA18938-3", "LA6571-9"),
    "/69733-4": ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"),
    "/69734-2": ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"),
    "/69735-9": ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"),
    "/69689-8": ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"),
    "/69736-7": ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"),
}


@pytest.mark.parametrize("points", [0, 1, 2, 3])
def test_gad7_answers_are_those_loincs_form_offers_each_item(app, client, ward, points):
    assess(client, ward, "GAD-7", {f"q{n}": points for n in range(1, 8)})
    response, _total = export(app, instruments.ASSESSMENTS, Scope(client_id=ward["client"]["id"]))
    sent = {item["linkId"]: item["answer"][0]["valueCoding"] for item in response["item"]}
    assert {link: coding["code"] for link, coding in sent.items()} == {
        link: answers[points] for link, answers in GAD7_FORM_ANSWERS.items()
    }
    if points == 2:
        assert sent["/68509-9"]["display"] == "More days than not"
        assert sent["/69733-4"]["display"] == "More than half the days"


def test_cows_has_no_loinc_code_and_uses_clinics_own(app, client, ward, medplum):
    assess(client, ward, "COWS", COWS)
    response, total = export(app, instruments.ASSESSMENTS, Scope(client_id=ward["client"]["id"]))
    with app.app_context():
        base = app.config.get("FHIR_BASE_URL") or (app.config["PUBLIC_BASE_URL"].rstrip("/") + "/api/v1/fhir")
    assert response["questionnaire"] == f"{base}/Questionnaire/cows|1"
    pulse = next(item for item in response["item"] if item["linkId"] == "pulse")
    assert pulse == {"linkId": "pulse", "text": pulse["text"], "answer": [{"valueInteger": 2}]}
    assert total["code"]["coding"] == [
        {
            "system": f"{base}/CodeSystem/instrument-score",
            "code": "COWS",
            "display": "Clinical Opiate Withdrawal Scale (COWS) total score",
        }
    ]
    assert (total["valueInteger"], total["interpretation"]) == (16, [{"text": "Moderate"}])
    assert_valid_everywhere(app, medplum, [response, total])


def test_drafts_are_left_out_and_an_amendment_replaces_its_original(app, client, ward, medplum):
    assess(client, ward, "GAD-7", GAD7, sign=False)
    original = assess(client, ward, "PHQ-9", PHQ9, ago=120)
    amended = client.post(
        f"/api/v1/assessments/{original['id']}/amend",
        headers=ward["headers"],
        json={"answers": {**PHQ9, "q9": 0}, "reason": "item 9 was misread"},
    ).get_json()
    scope = Scope(client_id=ward["client"]["id"])
    # While the amendment is a draft, the signed original is the record.
    before = export(app, instruments.ASSESSMENTS, scope)
    assert [(r["resourceType"], r["status"], r["meta"]["versionId"]) for r in before] == [
        ("QuestionnaireResponse", "completed", "1"),
        ("Observation", "final", "1"),
    ]
    client.post(f"/api/v1/assessments/{amended['id']}/sign", headers=ward["headers"])
    response, total = export(app, instruments.ASSESSMENTS, scope)
    assert response["id"] == total["id"] == f"assessment-{original['id']}"
    assert (response["status"], total["status"], total["meta"]["versionId"]) == ("amended", "amended", "2")
    assert response["identifier"]["value"] == str(amended["id"])
    assert total["valueInteger"] == 7
    assert [note["text"] for note in total["note"]] == ["Amended (revision 2): item 9 was misread"]
    # An amendment of the amendment is still the same resource.
    again = client.post(
        f"/api/v1/assessments/{amended['id']}/amend",
        headers=ward["headers"],
        json={"answers": {**PHQ9, "q9": 0, "q1": 0}, "reason": "item 1 too"},
    ).get_json()
    client.post(f"/api/v1/assessments/{again['id']}/sign", headers=ward["headers"])
    found = export(app, instruments.ASSESSMENTS, scope)
    assert [(r["id"], r["meta"]["versionId"]) for r in found] == [(f"assessment-{original['id']}", "3")] * 2
    assert_valid_everywhere(app, medplum, found)


def test_asam_is_a_response_without_a_total(app, client, ward, medplum):
    answers = {"d1": 2, "d2": 1, "d3": 3, "d4": 1, "d5": 2, "d6": 0, "edition": "3", "level_of_care": "1-OTP"}
    assess(client, ward, "ASAM", answers)
    found = export(app, instruments.ASSESSMENTS, Scope(client_id=ward["client"]["id"]))
    assert [r["resourceType"] for r in found] == ["QuestionnaireResponse"]
    items = {item["linkId"]: item for item in found[0]["item"]}
    level = items["level_of_care"]["answer"][0]["valueCoding"]
    assert (level["code"], level["display"]) == ("1-OTP", "Opioid treatment program (OTP)")
    assert level["system"].endswith("/CodeSystem/asam-level-of-care")
    assert items["d3"]["answer"] == [{"valueInteger": 3}]
    assert_valid_everywhere(app, medplum, found)


def test_instruments_are_selected_by_site_and_since(app, client, ward, make_site, make_user, bearer):
    assess(client, ward, "GAD-7", GAD7)
    elsewhere = make_site()
    other = make_user("clinician", sites=[elsewhere])
    person = client.post(
        "/api/v1/clients",
        headers=bearer(other),
        json={"site_id": elsewhere.id, "first_name": "Ian", "last_name": "Moss", "date_of_birth": "1990-05-05"},
    ).get_json()
    assess(client, {"client": person, "headers": bearer(other)}, "PHQ-9", PHQ9)
    here = export(app, instruments.ASSESSMENTS, Scope(site_id=ward["site"].id))
    assert {r["subject"]["reference"] for r in here} == {f"Patient/patient-{ward['client']['id']}"}
    assert export(app, instruments.ASSESSMENTS, Scope(site_id=ward["site"].id, since=NOW + timedelta(hours=1))) == []
    assert len(export(app, instruments.ASSESSMENTS, Scope(since=NOW - timedelta(hours=1)))) == 4


# --- drug screens -------------------------------------------------------------------------------


def test_screen_results_are_laboratory_observations_by_loinc_and_snomed(app, client, ward, medplum):
    taken = screen(
        client,
        ward,
        days_ago=3,
        results={"fentanyl": "positive", "buprenorphine": "negative", "opiates": "invalid", "xylazine": "negative"},
        observed=True,
    )
    skipped = screen(client, ward, days_ago=1, missed=True)
    scope = Scope(client_id=ward["client"]["id"])
    results = by_id(export(app, screens.RESULTS_SOURCE, scope), "Observation")
    assert set(results) == {
        f"drug-screen-{taken['id']}-{s}" for s in ("fentanyl", "buprenorphine", "opiates", "xylazine")
    }

    fentanyl = results[f"drug-screen-{taken['id']}-fentanyl"]
    assert fentanyl["code"]["coding"][0]["code"] == "59673-4"
    assert fentanyl["category"][0]["coding"][0]["code"] == "laboratory"
    assert fentanyl["status"] == "final"
    assert fentanyl["valueCodeableConcept"]["coding"] == [{"system": SNOMED, "code": "10828004", "display": "Positive"}]
    assert fentanyl["effectiveDateTime"] == (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert fentanyl["note"] == [{"text": "Collection observed by staff."}]

    buprenorphine = results[f"drug-screen-{taken['id']}-buprenorphine"]
    assert buprenorphine["code"]["coding"][0]["code"] == "93494-3"
    assert buprenorphine["valueCodeableConcept"]["coding"][0]["code"] == "260385009"

    invalid = results[f"drug-screen-{taken['id']}-opiates"]
    assert "valueCodeableConcept" not in invalid
    assert invalid["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert invalid["code"]["coding"][0]["code"] == "19295-5"

    xylazine = results[f"drug-screen-{taken['id']}-xylazine"]
    assert xylazine["code"]["coding"][0]["system"].endswith("/CodeSystem/drug-screen-substance")

    (missed,) = export(app, screens.MISSED_SOURCE, scope)
    assert missed["id"] == f"drug-screen-{skipped['id']}"
    assert (missed["status"], missed["dataAbsentReason"]["coding"][0]["code"]) == ("cancelled", "not-performed")
    assert missed["code"]["coding"][0]["code"] == "69739-1"
    assert "valueCodeableConcept" not in missed
    assert_valid_everywhere(app, medplum, [*results.values(), missed])


def test_a_substance_without_a_loinc_test_keeps_its_name(app, client, ward, medplum):
    taken = screen(client, ward, days_ago=2, results={"kratom": "positive"})
    (found,) = export(app, screens.RESULTS_SOURCE, Scope(client_id=ward["client"]["id"]))
    assert found["id"] == f"drug-screen-{taken['id']}-kratom"
    assert found["code"] == {"text": "kratom (urine screen)"}
    assert found["note"] == [{"text": "Collection not observed."}]
    assert_valid_everywhere(app, medplum, [found])


def test_a_screen_entered_in_error_is_sent_as_entered_in_error(app, client, ward, medplum):
    taken = screen(client, ward, days_ago=4, results={"fentanyl": "positive"})
    marked = client.post(
        f"/api/v1/drug-screens/{taken['id']}/entered-in-error",
        headers=ward["headers"],
        json={"reason": "another client's sample"},
    )
    assert marked.status_code == 200, marked.get_json()
    (found,) = export(app, screens.RESULTS_SOURCE, Scope(client_id=ward["client"]["id"]))
    assert found["status"] == "entered-in-error"
    assert found["note"][-1] == {"text": "Entered in error: another client's sample."}
    assert_valid_everywhere(app, medplum, [found])


def test_a_corrected_screen_keeps_its_result_ids(app, client, ward):
    taken = screen(client, ward, days_ago=5, results={"fentanyl": "positive", "cocaine": "negative"})
    first = {r["id"] for r in export(app, screens.RESULTS_SOURCE, Scope(client_id=ward["client"]["id"]))}
    corrected = client.patch(
        f"/api/v1/drug-screens/{taken['id']}",
        headers=ward["headers"],
        json={"results": {"fentanyl": "negative", "cocaine": "negative"}},
    )
    assert corrected.status_code == 200, corrected.get_json()
    after = export(app, screens.RESULTS_SOURCE, Scope(client_id=ward["client"]["id"]))
    assert {r["id"] for r in after} == first
    fentanyl = next(r for r in after if r["id"].endswith("-fentanyl"))
    assert fentanyl["valueCodeableConcept"]["text"] == "Negative"
