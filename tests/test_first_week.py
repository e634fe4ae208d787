"""What a clinic's first week with clinic found: each test is something a new user noticed."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def clinician_with_client(make_site, make_user, bearer, client) -> dict[str, Any]:
    site = make_site()
    clinician = make_user("clinician", sites=[site], name="Dr. Okafor")
    headers = bearer(clinician)
    person = client.post(
        "/api/v1/clients",
        headers=headers,
        json={
            "site_id": site.id,
            "first_name": "Rosa",
            "last_name": "Quintero",
            "date_of_birth": "1988-07-14",
            "primary_clinician_id": clinician.id,
        },
    )
    assert person.status_code == 201, person.get_json()
    return {"site": site, "clinician": clinician, "headers": headers, "client": person.get_json()}


# --- plans: the revision diff ---------------------------------------------------------------


def test_a_diff_shows_a_change_of_the_review_interval_alone(client, clinician_with_client):
    """Moving only the review interval is a revision whose diff says so (it used to be empty)."""
    ctx = clinician_with_client
    created = client.post(
        f"/api/v1/clients/{ctx['client']['id']}/plans",
        headers=ctx["headers"],
        json={"problems": [{"description": "Opioid use disorder", "goals": []}], "review_interval_days": 30},
    )
    assert created.status_code == 201, created.get_json()
    url = f"/api/v1/plans/{created.get_json()['id']}"
    edited = client.patch(
        url, headers={**ctx["headers"], "If-Match": created.headers["ETag"]}, json={"review_interval_days": 60}
    )
    assert edited.status_code == 200, edited.get_json()

    response = client.get(f"{url}/diff?from=1&to=2", headers=ctx["headers"])

    assert response.status_code == 200, response.get_json()
    changes = response.get_json()["changes"]
    assert [(c["change"], c["level"], c["field"], c["before"], c["after"]) for c in changes] == [
        ("changed", "plan", "review_interval_days", 30, 60)
    ]
    assert changes[0]["description"] == "Changed review_interval_days of Plan: 30 -> 60"
    # Read backwards, the same change the other way round.
    back = client.get(f"{url}/diff?from=2&to=1", headers=ctx["headers"]).get_json()["changes"]
    assert [(c["field"], c["before"], c["after"]) for c in back] == [("review_interval_days", 60, 30)]
