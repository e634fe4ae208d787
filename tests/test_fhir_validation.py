"""Round trip of the FHIR export: demo clients' records exported, read back and validated twice.

Each client's Bundle (``GET /api/v1/clients/{id}/fhir?consent_id=``) is parsed with the R4B models,
its references must resolve inside it, every resource must carry the Part 2 labels and use codes
from the right systems, and medplum's validator (Node, tests/fhir_validator) must find no error.
The clients are chosen so that every resource type clinic exports appears.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from flask import Flask
from sqlalchemy import event, func, select

from clinic.assessments.models import Assessment, AssessmentStatus
from clinic.auth.models import Site, User
from clinic.clients.models import Client
from clinic.demo.loader import seed
from clinic.extensions import db
from clinic.fhir import labels
from clinic.fhir.mapping import instruments, screens
from clinic.fhir.sources import Scope, resources, walk
from clinic.plans.models import DrugScreen, DrugScreenResult, ScreenResult
from tests.fhir_validator.medplum import Medplum, medplum_or_skip

TODAY = date(2026, 3, 2)
#: Every resource type a client's Bundle may hold (API.md, "FHIR R4 export").
EXPORTED = {
    "Patient",
    "EpisodeOfCare",
    "Consent",
    "CarePlan",
    "Goal",
    "MedicationRequest",
    "Appointment",
    "QuestionnaireResponse",
    "Observation",
}
SURVEY = "http://terminology.hl7.org/CodeSystem/observation-category|survey"
LABORATORY = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"


@pytest.fixture(scope="module")
def medplum() -> Medplum:
    return medplum_or_skip()


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block (as tests/test_query_counts.py counts)."""
    connection: Any = db._app_engines[app][None]  # the test's connection (conftest)
    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", listener)


def _chosen_clients(app: Flask) -> list[int]:
    """Demo clients that together hold every kind of record: the fullest ones, and a missed and an invalid screen."""
    with app.app_context():
        signed = (
            select(Assessment.client_id, func.count().label("n"))
            .where(Assessment.status == AssessmentStatus.SIGNED)
            .group_by(Assessment.client_id)
            .subquery()
        )
        screened = select(DrugScreen.client_id, func.count().label("n")).group_by(DrugScreen.client_id).subquery()
        fullest = db.session.scalars(
            select(Client.id)
            .join(signed, signed.c.client_id == Client.id)
            .join(screened, screened.c.client_id == Client.id)
            .order_by((signed.c.n + screened.c.n).desc(), Client.id)
            .limit(3)
        ).all()
        missed = db.session.scalars(
            select(DrugScreen.client_id).where(DrugScreen.missed.is_(True)).order_by(DrugScreen.id).limit(1)
        ).all()
        invalid = db.session.scalars(
            select(DrugScreen.client_id)
            .join(DrugScreenResult, DrugScreenResult.screen_id == DrugScreen.id)
            .where(DrugScreenResult.result == ScreenResult.INVALID)
            .order_by(DrugScreen.id)
            .limit(1)
        ).all()
    return list(dict.fromkeys([*fullest, *missed, *invalid]))


def _clinician_for(app: Flask, make_user: Callable[..., User], client_id: int) -> User:
    with app.app_context():
        site = db.session.scalars(
            select(Site).join(Client, Client.site_id == Site.id).where(Client.id == client_id)
        ).one()
        db.session.expunge(site)
    return make_user("clinician", sites=[site])


def _disclosure_consent(http: Any, headers: dict[str, str], client_id: int) -> int:
    today = datetime.now(UTC).date()
    created = http.post(
        f"/api/v1/clients/{client_id}/consents",
        headers=headers,
        json={
            "kind": "disclosure",
            "recipient": "Harbor Community Health Center",
            "purpose": "Coordination of care with the client's primary care provider",
            "information_description": "Treatment record: assessments, drug screens, medications, plan, visits",
            "disclosing_party": "The treating program",
            "expires_on": (today + timedelta(days=180)).isoformat(),
            "signed_on": today.isoformat(),
            "signature_name": "The client",
            "revocation_acknowledged": True,
        },
    )
    assert created.status_code == 201, created.get_json()
    return int(created.get_json()["id"])


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _codings(concept: dict[str, Any] | None) -> set[str]:
    return {f"{c['system']}|{c['code']}" for c in (concept or {}).get("coding", [])}


def _check_codes(resource: dict[str, Any], mrn_system: str, clinic_codes: str) -> None:
    """The codes a receiving system relies on come from the systems the mapping table names."""
    kind = resource["resourceType"]
    if kind == "Patient":
        assert any(identifier["system"] == mrn_system for identifier in resource["identifier"]), resource["id"]
    elif kind == "MedicationRequest":
        coding = resource["medicationCodeableConcept"]["coding"]
        assert any(c["system"] == labels.RXNORM for c in coding), resource["id"]
    elif kind == "QuestionnaireResponse":
        assert resource["questionnaire"].startswith(("http://loinc.org/q/", labels.fhir_base() + "/Questionnaire/"))
    elif kind == "Observation":
        category = set().union(*(_codings(c) for c in resource["category"]))
        systems = {c["system"] for c in resource["code"].get("coding", [])}
        if SURVEY in category:
            assert systems <= {labels.LOINC, clinic_codes + "instrument-score"} and systems, resource["id"]
            assert isinstance(resource["valueInteger"], int)
        else:
            assert category == {LABORATORY}, resource["id"]
            assert systems <= {labels.LOINC, clinic_codes + "drug-screen-substance"}, resource["id"]
            value = resource.get("valueCodeableConcept")
            if value is not None:
                assert _codings(value) <= {f"{labels.SNOMED}|10828004", f"{labels.SNOMED}|260385009"}
            else:
                assert resource["dataAbsentReason"]["coding"][0]["code"] in {"error", "not-performed"}


def test_demo_clients_export_as_valid_labelled_fhir(
    app: Flask, make_user: Callable[..., User], bearer: Callable[[User], dict[str, str]], medplum: Medplum
) -> None:
    with app.app_context():
        seed(clients=12, seed=7, today=TODAY)
        db.session.commit()
        mrn_system = labels.mrn_system()
        clinic_codes = labels.fhir_base() + "/CodeSystem/"
    http = app.test_client()
    seen: Counter[str] = Counter()
    chosen = _chosen_clients(app)
    assert len(chosen) >= 3
    for client_id in chosen:
        headers = bearer(_clinician_for(app, make_user, client_id))
        consent_id = _disclosure_consent(http, headers, client_id)
        response = http.get(f"/api/v1/clients/{client_id}/fhir?consent_id={consent_id}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        assert response.mimetype == "application/fhir+json"
        body = response.get_json()

        Bundle.model_validate(body)
        assert body["type"] == "collection"
        entries = [entry["resource"] for entry in body["entry"]]
        present = {f"{r['resourceType']}/{r['id']}" for r in entries}
        assert len(present) == len(entries), "two resources of one type share an id"
        with app.app_context():
            for resource in entries:
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                assert {(label["system"], label["code"]) for label in resource["meta"]["security"]} >= {
                    (label["system"], label["code"]) for label in labels.SECURITY_LABELS
                }, resource["id"]
                dangling = [ref for ref in _references(resource) if ref not in present]
                assert dangling == [], f"{resource['resourceType']}/{resource['id']} refers outside the Bundle"
                _check_codes(resource, mrn_system, clinic_codes)
        patients = [r for r in entries if r["resourceType"] == "Patient"]
        assert [p["id"] for p in patients] == [f"patient-{client_id}"]
        consents = [r for r in entries if r["resourceType"] == "Consent"]
        assert [c["id"] for c in consents] == [f"consent-{consent_id}"]

        report = medplum.validate([body])
        assert report.errors == [], report.errors[:20]
        assert len(report.checked) == len(entries) + 1
        seen.update(r["resourceType"] for r in entries)

    assert set(seen) >= EXPORTED, f"missing from every Bundle: {sorted(EXPORTED - set(seen))}"


def test_instrument_and_screen_sources_read_a_fixed_number_of_statements(app: Flask) -> None:
    with app.app_context():
        seed(clients=12, seed=8, today=TODAY)
        db.session.commit()
        counts = db.session.execute(
            select(DrugScreen.client_id, func.count())
            .group_by(DrugScreen.client_id)
            .order_by(func.count(), DrugScreen.client_id)
        ).all()
    quiet, busy = counts[0][0], counts[-1][0]
    measured = {}
    for client_id in (quiet, busy):
        with app.app_context():
            scope = Scope(client_id=client_id)
            for source in (instruments.ASSESSMENTS, screens.RESULTS_SOURCE, screens.MISSED_SOURCE):
                list(resources(source, scope))  # warm the instrument definitions
            with counting(app) as statements:
                made = [
                    r
                    for source in (instruments.ASSESSMENTS, screens.RESULTS_SOURCE, screens.MISSED_SOURCE)
                    for r in resources(source, scope)
                ]
            measured[client_id] = (len(statements), len(made))
    assert measured[busy][1] > measured[quiet][1], measured
    assert measured[busy][0] == measured[quiet][0] == 3, measured


def test_every_resource_of_the_demo_passes_medplum(app: Flask, medplum: Medplum) -> None:
    """What a bulk export of every site sends (the same walk over the sources), all of it, through medplum."""
    with app.app_context():
        seed(clients=12, seed=9, today=TODAY)
        db.session.commit()
        everything = [resource for _source, resource in walk(Scope())]
    kinds = Counter(resource["resourceType"] for resource in everything)
    # A disclosure consent is in the demo for about one client in eight: it may not be drawn here.
    assert set(kinds) >= EXPORTED - {"Consent"}, kinds
    assert kinds["Observation"] > 100, kinds
    report = medplum.validate(everything)
    assert len(report.checked) == len(everything)
    assert report.errors == [], report.errors[:20]
