"""ASAM by edition: each edition's own dimension names, and levels of care checked against its list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from clinic.core.time import utcnow

THIRD = {
    "d1": "acute intoxication and withdrawal potential",
    "d2": "biomedical conditions and complications",
    "d3": "emotional, behavioural or cognitive conditions and complications",
    "d4": "readiness to change",
    "d5": "relapse, continued use or continued problem potential",
    "d6": "recovery or living environment",
}
#: DOMAIN.md, "ASAM 4th edition (2023) dimensions".
FOURTH = {
    "d1": "intoxication, withdrawal and addiction medications",
    "d2": "biomedical conditions",
    "d3": "psychiatric and cognitive conditions",
    "d4": "substance use-related risks",
    "d5": "recovery environment interactions",
    "d6": "person-centred considerations",
}
RATINGS = {"d1": 2, "d2": 1, "d3": 3, "d4": 2, "d5": 3, "d6": 1}


@pytest.fixture
def ward(make_site, make_user, bearer, client) -> dict[str, Any]:
    site = make_site()
    clinician = make_user("clinician", sites=[site])
    headers = bearer(clinician)
    registered = client.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": site.id, "first_name": "Ari", "last_name": "Vale", "date_of_birth": "1979-06-01"},
    )
    assert registered.status_code == 201, registered.get_json()
    return {"headers": headers, "client_id": registered.get_json()["id"]}


def asam(client, ward, edition: str, level: str) -> Any:
    return client.post(
        f"/api/v1/clients/{ward['client_id']}/assessments",
        headers=ward["headers"],
        json={
            "instrument": "ASAM",
            "answers": {**RATINGS, "edition": edition, "level_of_care": level},
            "administered_at": (utcnow() - timedelta(minutes=5)).isoformat(),
        },
    )


def labels_named(labels: dict[str, str], names: dict[str, str]) -> bool:
    return set(labels) == set(names) and all(names[key] in labels[key].lower() for key in names)


def test_the_instrument_carries_each_editions_dimension_names_and_levels(client, ward):
    listed = client.get("/api/v1/instruments", headers=ward["headers"])
    assert listed.status_code == 200
    [definition] = [i for i in listed.get_json() if i["code"] == "ASAM"]
    dimensions = {item["key"]: item for item in definition["items"] if item["key"].startswith("d")}
    assert labels_named({k: v["text_by"]["values"]["3"] for k, v in dimensions.items()}, THIRD)
    assert labels_named({k: v["text_by"]["values"]["4"] for k, v in dimensions.items()}, FOURTH)
    assert {v["text_by"]["modifier"] for v in dimensions.values()} == {"edition"}
    [level] = [item for item in definition["items"] if item["key"] == "level_of_care"]
    by_edition = level["allowed_by"]["values"]
    assert set(by_edition["4"]) - set(by_edition["3"]) == {"1.5", "1.7", "2.7"}
    assert set(by_edition["3"]) <= set(by_edition["4"])


@pytest.mark.parametrize(("edition", "names"), [("3", THIRD), ("4", FOURTH)])
def test_an_assessment_shows_its_own_editions_names(client, ward, edition, names):
    created = asam(client, ward, edition, "2.1")
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["edition"], body["level_of_care"]) == (edition, "2.1")
    assert labels_named(body["item_labels"], names)
    shown = client.get(f"/api/v1/assessments/{body['id']}", headers=ward["headers"]).get_json()
    assert labels_named(shown["item_labels"], names)
    listed = client.get(f"/api/v1/clients/{ward['client_id']}/assessments", headers=ward["headers"]).get_json()
    assert labels_named(listed["items"][0]["item_labels"], names)


@pytest.mark.parametrize("level", ["1.5", "1.7", "2.7"])
def test_a_4th_edition_level_is_refused_under_the_3rd_edition(client, ward, level):
    refused = asam(client, ward, "3", level)
    assert refused.status_code == 422
    assert list(refused.get_json()["errors"]) == ["answers.level_of_care"]
    assert asam(client, ward, "4", level).status_code == 201


def test_levels_of_both_editions_and_unknown_ones(client, ward):
    assert asam(client, ward, "4", "1-OTP").status_code == 201  # kept in the 4th edition's list
    assert asam(client, ward, "3", "3.7-WM").status_code == 201
    unknown = asam(client, ward, "4", "2.9")
    assert unknown.status_code == 422
    assert list(unknown.get_json()["errors"]) == ["answers.level_of_care"]
    wrong_edition = asam(client, ward, "5", "2.1")
    assert wrong_edition.status_code == 422
    assert list(wrong_edition.get_json()["errors"]) == ["answers.edition"]


def test_other_instruments_have_no_item_labels(client, ward):
    created = client.post(
        f"/api/v1/clients/{ward['client_id']}/assessments",
        headers=ward["headers"],
        json={
            "instrument": "GAD-7",
            "answers": {f"q{i}": 1 for i in range(1, 8)},
            "administered_at": (utcnow() - timedelta(minutes=5)).isoformat(),
        },
    ).get_json()
    assert (created["item_labels"], created["edition"]) == ({}, None)
