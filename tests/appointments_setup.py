"""A small practice to book appointments in, shared by the scheduling and reminder tests.

One site (New York), two clinicians, an intake coordinator, a clinician of another site, an
administrator, and two clients with phone, email and both communication consents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from clinic.auth.models import Site, User

ZONE = "America/New_York"
CLINICIAN_NAME = "Zelda Quartermaine"


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    """An instant relative to now, to the second, in UTC."""
    return (datetime.now(UTC) + timedelta(days=days, hours=hours, minutes=minutes)).replace(microsecond=0)


@dataclass
class Practice:
    http: FlaskClient
    site: Site
    clinician: User
    colleague: User
    intake: User
    outsider: User
    headers: dict[str, str]
    colleague_headers: dict[str, str]
    intake_headers: dict[str, str]
    outsider_headers: dict[str, str]
    admin_headers: dict[str, str]
    ada: dict[str, Any]
    ben: dict[str, Any]
    booked: list[int] = field(default_factory=list)

    def book(self, *, headers: dict[str, str] | None = None, **fields: Any) -> Any:
        """POST /appointments with sensible defaults (Ada, an hour with the clinician)."""
        body: dict[str, Any] = {
            "site_id": self.site.id,
            "kind": "individual_therapy",
            "clinician_id": self.clinician.id,
            "client_id": self.ada["id"],
            "starts_at": at(days=3).isoformat(),
            "duration_minutes": 60,
            **fields,
        }
        body = {k: v for k, v in body.items() if v is not None}
        if isinstance(body.get("starts_at"), datetime):
            body["starts_at"] = body["starts_at"].isoformat()
        return self.http.post("/api/v1/appointments", headers=headers or self.headers, json=body)

    def booked_ok(self, **fields: Any) -> dict[str, Any]:
        response = self.book(**fields)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.http.post(f"/api/v1{path}", headers=headers or self.headers, json=json if json is not None else {})

    def get(self, path: str, headers: dict[str, str] | None = None, **query: Any) -> Any:
        return self.http.get(f"/api/v1{path}", headers=headers or self.headers, query_string=query)

    def patch(self, path: str, json: Any, headers: dict[str, str] | None = None, **query: Any) -> Any:
        return self.http.patch(f"/api/v1{path}", headers=headers or self.headers, json=json, query_string=query)

    def reminders(self, appointment_id: int) -> list[dict[str, Any]]:
        response = self.get(f"/appointments/{appointment_id}/reminders")
        assert response.status_code == 200, response.get_json()
        items: list[dict[str, Any]] = response.get_json()
        return items

    def consent(self, client: dict[str, Any], channel: str) -> dict[str, Any]:
        body = {"kind": "communication", "channel": channel, "granted_on": datetime.now(UTC).date().isoformat(),
                "evidence": "signed form"}
        response = self.post(f"/clients/{client['id']}/consents", body)
        assert response.status_code == 201, response.get_json()
        created: dict[str, Any] = response.get_json()
        return created

    def preferences(self, client: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"channels": ["sms", "email"], "lead_times_minutes": [2880, 120],
                "quiet_hours": {"start": "00:00", "end": "00:00"}, **fields}
        response = self.http.put(
            f"/api/v1/clients/{client['id']}/notification-preferences", headers=self.headers, json=body
        )
        assert response.status_code == 200, response.get_json()
        saved: dict[str, Any] = response.get_json()
        return saved


def register(http: FlaskClient, headers: dict[str, str], site: Site, **fields: Any) -> dict[str, Any]:
    response = http.post("/api/v1/clients", headers=headers, json={"site_id": site.id, **fields})
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def build_practice(
    client: FlaskClient,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> Practice:
    """The practice, for a test module's ``practice`` fixture (from conftest's factories)."""
    site = make_site(timezone=ZONE, display_name="Riverside Health")
    clinician = make_user("clinician", sites=[site], name=CLINICIAN_NAME)
    colleague = make_user("clinician", sites=[site], name="Colleague Clinician")
    intake = make_user("intake", sites=[site])
    outsider = make_user("clinician", sites=[make_site()])
    headers = bearer(clinician)
    ada = register(client, headers, site, first_name="Ada", last_name="Brown", date_of_birth="1980-01-01",
                   phone="+12025550143", email="ada@example.org", primary_clinician_id=clinician.id)
    ben = register(client, headers, site, first_name="Ben", last_name="Okafor", date_of_birth="1975-06-30",
                   phone="+12025550178", email="ben@example.org", preferred_language="es")
    practice = Practice(
        http=client,
        site=site,
        clinician=clinician,
        colleague=colleague,
        intake=intake,
        outsider=outsider,
        headers=headers,
        colleague_headers=bearer(colleague),
        intake_headers=bearer(intake),
        outsider_headers=bearer(outsider),
        admin_headers=bearer(make_user("admin")),
        ada=ada,
        ben=ben,
    )
    for person in (ada, ben):
        practice.consent(person, "sms")
        practice.consent(person, "email")
    return practice
