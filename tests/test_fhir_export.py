"""A client's record as a FHIR R4 Bundle: the mapping a receiving system reads, the Part 2 labels and
notice, the consent it is disclosed under, the accounting of disclosures, access, statement count."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from flask import Flask
from sqlalchemy import event, func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import User
from clinic.clients.models import Client, Consent, ConsentKind, Disclosure, SexAtBirth
from clinic.core.time import utcnow
from clinic.demo.loader import seed
from clinic.extensions import db
from clinic.fhir import validate
from clinic.fhir.labels import NOTICE, SECURITY_LABELS, labelled
from clinic.fhir.mapping import record
from clinic.plans.models import Medication, MedicationDoseChange, Plan, PlanRevision, PlanStatus
from clinic.scheduling.models import (
    Appointment,
    AppointmentAttendee,
    AppointmentKind,
    AppointmentStatus,
    AttendeeStatus,
)

DEMO_TODAY = date(2026, 3, 2)
CLINICIAN = "clinician1.riverside@demo.example.org"
ADMIN = "admin@demo.example.org"
LABELS = {(label["system"], label["code"]) for label in SECURITY_LABELS}


# --- fixtures ------------------------------------------------------------------------------------


def _user(app: Flask, email: str) -> User:
    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        _ = user.sites
        db.session.expunge(user)
        return user


@pytest.fixture
def demo(app: Flask) -> None:
    with app.app_context():
        seed(clients=12, seed=18, today=DEMO_TODAY)
        db.session.commit()


def _richest_client(app: Flask, clinician: User) -> int:
    """The clinician's client with a medication order, a plan and the most appointments."""
    with app.app_context():
        appointments = (
            select(func.count()).where(Appointment.client_id == Client.id).correlate(Client).scalar_subquery()
        )
        return int(
            db.session.scalars(
                select(Client.id)
                .where(
                    Client.site_id.in_(clinician.site_ids),
                    select(Medication.id).where(Medication.client_id == Client.id).exists(),
                    select(Plan.id).where(Plan.client_id == Client.id).exists(),
                )
                .order_by(appointments.desc(), Client.id)
            ).first()
        )


def _consent(app: Flask, client_id: int, **fields: Any) -> int:
    """A disclosure consent of the client with every 42 CFR 2.31 element (signed ten days ago)."""
    today = utcnow().date()
    values = {
        "kind": ConsentKind.DISCLOSURE,
        "patient_name": "The Client",
        "recipient": "Dr. A. Primary, MD",
        "purpose": "coordination of care",
        "information_description": "medications, plans, appointments, assessments and drug screens",
        "disclosing_party": "Riverside Recovery Center",
        "expires_on": today + timedelta(days=180),
        "signed_on": today - timedelta(days=10),
        "signature_name": "The Client",
        "revocation_acknowledged": True,
        **fields,
    }
    with app.app_context():
        client = db.session.get_one(Client, client_id)
        consent = Consent(client_id=client_id, site_id=client.site_id, **values)
        db.session.add(consent)
        db.session.commit()
        return consent.id


@pytest.fixture
def export(app: Flask, demo: None, bearer: Callable[[User], dict[str, str]]) -> dict[str, Any]:
    clinician = _user(app, CLINICIAN)
    client_id = _richest_client(app, clinician)
    return {
        "clinician": clinician,
        "headers": bearer(clinician),
        "client_id": client_id,
        "consent_id": _consent(app, client_id),
        "http": app.test_client(),
    }


def _get(export: dict[str, Any], client_id: int | None = None, consent: Any = None, **kwargs: Any) -> Any:
    client_id = export["client_id"] if client_id is None else client_id
    consent = export["consent_id"] if consent is None else consent
    query = "" if consent == "" else f"?consent_id={consent}"
    return export["http"].get(
        f"/api/v1/clients/{client_id}/fhir{query}", headers=kwargs.pop("headers", export["headers"]), **kwargs
    )


def _bundle(export: dict[str, Any]) -> dict[str, Any]:
    response = _get(export)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json(force=True)
    return body


def _by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        found.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return found


def _disclosures(app: Flask, client_id: int) -> list[Disclosure]:
    with app.app_context():
        rows = db.session.scalars(select(Disclosure).where(Disclosure.client_id == client_id)).all()
        db.session.expunge_all()
        return list(rows)


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    connection: Any = db._app_engines[app][None]  # the test's connection (conftest)
    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", listener)


# --- the Bundle ----------------------------------------------------------------------------------


def test_the_bundle_is_a_labelled_collection_with_the_notice(app: Flask, export: dict[str, Any]) -> None:
    response = _get(export)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/fhir+json"
    assert response.headers["Cache-Control"] == "no-store"
    bundle = response.get_json(force=True)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert datetime.fromisoformat(bundle["timestamp"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert {(label["system"], label["code"]) for label in bundle["meta"]["security"]} == LABELS
    assert [extension["valueString"] for extension in bundle["meta"]["extension"]] == [NOTICE]
    get_fhir_model_class("Bundle").model_validate(bundle)
    types = _by_type(bundle)
    assert {"Patient", "EpisodeOfCare", "Consent", "CarePlan", "Goal", "MedicationRequest", "Appointment"} <= set(types)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    with app.app_context():
        for entry in bundle["entry"]:
            resource = entry["resource"]
            labels = {(label["system"], label["code"]) for label in resource["meta"]["security"]}
            assert labels >= LABELS, resource["id"]
            assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")
            assert validate.check(resource) is resource
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    ids = [(entry["resource"]["resourceType"], entry["resource"]["id"]) for entry in bundle["entry"]]
    assert len(ids) == len(set(ids)), "an id repeats within its type"


def test_every_reference_resolves_inside_the_bundle(export: dict[str, Any]) -> None:
    bundle = _bundle(export)
    full_urls = {entry["fullUrl"] for entry in bundle["entry"]}
    base = next(iter(full_urls)).rsplit("/", 2)[0]

    def references(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "reference" and isinstance(value, str):
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for item in node:
                yield from references(item)

    found = [ref for entry in bundle["entry"] for ref in references(entry["resource"])]
    assert found, "the resources refer to one another"
    assert [ref for ref in found if f"{base}/{ref}" not in full_urls] == []


def test_the_patient_as_a_receiving_system_reads_it(app: Flask, export: dict[str, Any]) -> None:
    (patient,) = _by_type(_bundle(export))["Patient"]
    with app.app_context():
        client = db.session.get_one(Client, export["client_id"])
        assert patient["id"] == f"patient-{client.id}"
        (mrn,) = patient["identifier"]
        assert mrn["value"] == client.mrn
        assert mrn["system"].startswith("http") and mrn["system"].endswith("/sid/mrn")
        assert mrn["type"]["coding"][0]["code"] == "MR"
        assert patient["name"][0] == {"use": "official", "family": client.last_name, "given": [client.first_name]}
        assert patient["birthDate"] == client.date_of_birth.isoformat()
        expected = {"female": "female", "male": "male", "intersex": "other", "unknown": "unknown", None: "unknown"}
        assert patient["gender"] == expected[client.sex_at_birth.value if client.sex_at_birth else None]
        assert patient["communication"][0]["language"]["coding"][0] == {
            "system": "urn:ietf:bcp:47",
            "code": client.preferred_language,
        }
    assert patient["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]


@pytest.mark.parametrize(
    ("sex_at_birth", "gender", "birth_sex"),
    [
        (SexAtBirth.FEMALE, "female", "F"),
        (SexAtBirth.MALE, "male", "M"),
        (SexAtBirth.UNKNOWN, "unknown", "UNK"),
        (None, "unknown", "UNK"),
        # US Core's birth sex has no code for intersex, and intersex is not unknown: no extension.
        (SexAtBirth.INTERSEX, "other", None),
    ],
)
def test_sex_at_birth_as_gender_and_us_core_birth_sex(
    app: Flask, sex_at_birth: SexAtBirth | None, gender: str, birth_sex: str | None
) -> None:
    person = Client(
        id=7,
        mrn="40411195",
        first_name="Ana",
        last_name="Diaz",
        date_of_birth=date(1990, 5, 1),
        sex_at_birth=sex_at_birth,
        preferred_language="es",
    )
    with app.test_request_context():
        patient = validate.check(record.patient(person))
    assert patient["gender"] == gender
    sent = [e["valueCode"] for e in patient.get("extension", []) if e["url"].endswith("/us-core-birthsex")]
    assert sent == ([birth_sex] if birth_sex else [])


def test_medication_orders_carry_rxnorm_codes_and_their_counted_dose_history(
    app: Flask, export: dict[str, Any]
) -> None:
    requests = _by_type(_bundle(export))["MedicationRequest"]
    with app.app_context():
        orders = db.session.scalars(select(Medication).where(Medication.client_id == export["client_id"])).all()
        assert {request["id"] for request in requests} == {f"medication-{order.id}" for order in orders}
        for request in requests:
            order = next(o for o in orders if request["id"] == f"medication-{o.id}")
            coding = request["medicationCodeableConcept"]["coding"][0]
            assert coding["system"] == "http://www.nlm.nih.gov/research/umls/rxnorm"
            assert (
                coding["code"]
                == {
                    "methadone": "6813",
                    "buprenorphine": "1819",
                    "buprenorphine_naloxone": "352364",
                    "naltrexone_oral": "1483744",
                    "naltrexone_xr": "637213",
                }[order.medication.value]
            )
            assert (
                request["intent"] == "order" and request["subject"]["reference"] == f"Patient/patient-{order.client_id}"
            )
            counted = db.session.scalars(
                select(MedicationDoseChange)
                .where(
                    MedicationDoseChange.medication_id == order.id, MedicationDoseChange.entered_in_error_at.is_(None)
                )
                .order_by(MedicationDoseChange.effective_on, MedicationDoseChange.id)
            ).all()
            doses = [dosage["doseAndRate"][0]["doseQuantity"]["value"] for dosage in request["dosageInstruction"]]
            assert [Decimal(str(dose)) for dose in doses] == [change.dose for change in counted]
            assert [d["sequence"] for d in request["dosageInstruction"]] == list(range(1, len(counted) + 1))
            starts = [d["timing"]["repeat"]["boundsPeriod"]["start"] for d in request["dosageInstruction"]]
            assert starts == [change.effective_on.isoformat() for change in counted]


def test_a_dose_entered_in_error_is_never_sent(app: Flask, export: dict[str, Any]) -> None:
    with app.app_context():
        order = db.session.scalars(select(Medication).where(Medication.client_id == export["client_id"])).first()
        assert order is not None
        wrong = MedicationDoseChange(
            medication_id=order.id,
            effective_on=order.start_on,
            dose=Decimal("999"),
            unit="mg",
            frequency="daily",
            phase=order.phase,
            changed_at=utcnow(),
            entered_in_error_at=utcnow(),
            entered_in_error_reason="typed the wrong dose",
        )
        db.session.add(wrong)
        db.session.commit()
        order_id = order.id
    (request,) = [r for r in _by_type(_bundle(export))["MedicationRequest"] if r["id"] == f"medication-{order_id}"]
    assert 999 not in [d["doseAndRate"][0]["doseQuantity"]["value"] for d in request["dosageInstruction"]]
    assert "999" not in str(request)


def test_the_plan_tree_as_careplan_and_goals(app: Flask, export: dict[str, Any]) -> None:
    types = _by_type(_bundle(export))
    goals = {goal["id"]: goal for goal in types["Goal"]}
    with app.app_context():
        plans = db.session.scalars(select(Plan).where(Plan.client_id == export["client_id"])).all()
        assert {plan["id"] for plan in types["CarePlan"]} == {f"careplan-{plan.id}" for plan in plans}
        for plan in plans:
            (care_plan,) = [c for c in types["CarePlan"] if c["id"] == f"careplan-{plan.id}"]
            assert care_plan["intent"] == "plan"
            assert (
                care_plan["status"] == {"draft": "draft", "active": "active", "closed": "completed"}[plan.status.value]
            )
            assert care_plan["category"][0]["coding"][0]["code"] == "assess-plan"
            assert care_plan["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
            problems = plan.content
            assert [a["display"] for a in care_plan["addresses"]] == [p["description"] for p in problems]
            nodes = [
                (goal, objective)
                for problem in problems
                for goal in problem["goals"]
                for objective in [None, *goal["objectives"]]
            ]
            expected_goals = [f"Goal/goal-{plan.id}-{(objective or goal)['id']}" for goal, objective in nodes]
            assert [g["reference"] for g in care_plan["goal"]] == expected_goals
            for goal, _objective in nodes:
                resource = goals[f"goal-{plan.id}-{goal['id']}"]
                assert resource["description"]["text"] == goal["description"]
                if goal.get("client_words"):
                    assert goal["client_words"] in resource["note"][0]["text"]
            interventions = [
                intervention
                for problem in problems
                for goal in problem["goals"]
                for objective in goal["objectives"]
                for intervention in objective["interventions"]
            ]
            assert len(care_plan["activity"]) == len(interventions)
            for activity, intervention in zip(care_plan["activity"], interventions, strict=True):
                codes = {(c["system"].rsplit("/", 1)[-1], c["code"]) for c in activity["detail"]["code"]["coding"]}
                assert ("intervention-kind", intervention["kind"]) in codes
                if intervention["kind"] == "cbt":
                    assert ("sct", "228557008") in codes
                assert activity["detail"]["description"] == intervention["description"]
                if plan.status is PlanStatus.CLOSED:
                    assert activity["detail"]["status"] in {"completed", "stopped", "cancelled"}


def test_an_edited_active_plan_is_sent_as_signed(app: Flask, export: dict[str, Any]) -> None:
    """A revision still awaiting signatures is not the plan in force: the signed one is sent."""
    with app.app_context():
        plan = db.session.scalars(select(Plan).where(Plan.client_id == export["client_id"])).first()
        assert plan is not None
        signed = [dict(problem, description="Signed problem") for problem in plan.content]
        db.session.add(
            PlanRevision(
                plan_id=plan.id, number=plan.revision + 1, content=signed, status=PlanStatus.ACTIVE, reason="signed"
            )
        )
        plan.revision += 2
        plan.active_revision = plan.revision - 1
        plan.status = PlanStatus.DRAFT
        plan.content = [dict(problem, description="Unsigned edit") for problem in plan.content]
        db.session.commit()
        plan_id = plan.id
    (care_plan,) = [c for c in _by_type(_bundle(export))["CarePlan"] if c["id"] == f"careplan-{plan_id}"]
    assert care_plan["status"] == "active"
    assert {a["display"] for a in care_plan["addresses"]} == {"Signed problem"}
    assert "Unsigned edit" not in str(care_plan)


def test_appointments_and_a_group_seat_name_only_this_client(app: Flask, export: dict[str, Any]) -> None:
    with app.app_context():
        client = db.session.get_one(Client, export["client_id"])
        other = db.session.scalars(
            select(Client).where(Client.site_id == client.site_id, Client.id != client.id)
        ).first()
        assert other is not None
        starts = datetime(2026, 12, 24, 15, tzinfo=UTC)
        session = Appointment(
            site_id=client.site_id,
            kind=AppointmentKind.GROUP_THERAPY,
            is_group=True,
            clinician_id=export["clinician"].id,
            starts_at=starts,
            ends_at=starts + timedelta(minutes=90),
            timezone="America/New_York",
            capacity=8,
            status=AppointmentStatus.SCHEDULED,
        )
        db.session.add(session)
        db.session.flush()
        for who, status in ((client, AttendeeStatus.ATTENDED), (other, AttendeeStatus.REGISTERED)):
            db.session.add(
                AppointmentAttendee(appointment_id=session.id, client_id=who.id, site_id=client.site_id, status=status)
            )
        db.session.commit()
        seat_id = db.session.scalars(
            select(AppointmentAttendee.id).where(AppointmentAttendee.client_id == client.id)
        ).one()
        individual = db.session.scalars(
            select(Appointment).where(Appointment.client_id == client.id).order_by(Appointment.id)
        ).all()
        expected_status = {
            "scheduled": "booked",
            "confirmed": "booked",
            "checked_in": "checked-in",
            "completed": "fulfilled",
            "cancelled_by_client": "cancelled",
            "cancelled_by_clinic": "cancelled",
            "no_show": "noshow",
        }
        wanted = {f"appointment-{a.id}": (expected_status[a.status.value], a.starts_at) for a in individual}
        other_id = other.id
    appointments = {a["id"]: a for a in _by_type(_bundle(export))["Appointment"]}
    seat = appointments.pop(f"appointment-attendee-{seat_id}")
    assert seat["status"] == "fulfilled"
    assert seat["start"] == starts.isoformat()
    assert f"patient-{other_id}" not in str(seat)
    assert {p["actor"].get("reference") for p in seat["participant"]} == {
        f"Patient/patient-{export['client_id']}",
        None,
    }
    assert set(appointments) == set(wanted)
    for resource_id, (status, starts_at) in wanted.items():
        assert appointments[resource_id]["status"] == status
        assert datetime.fromisoformat(appointments[resource_id]["start"]) == starts_at


def test_the_client_declines_only_the_appointments_they_cancelled(app: Flask, export: dict[str, Any]) -> None:
    """A no-show or a cancellation by the clinic is not the client declining: a receiver must not read it so."""
    with app.app_context():
        client = db.session.get_one(Client, export["client_id"])
        made = {}
        for day, status in enumerate(
            (AppointmentStatus.CANCELLED_BY_CLIENT, AppointmentStatus.CANCELLED_BY_CLINIC, AppointmentStatus.NO_SHOW)
        ):
            starts = datetime(2026, 12, 1 + day, 15, tzinfo=UTC)
            appointment = Appointment(
                site_id=client.site_id,
                client_id=client.id,
                kind=AppointmentKind.INDIVIDUAL_THERAPY,
                clinician_id=export["clinician"].id,
                starts_at=starts,
                ends_at=starts + timedelta(minutes=50),
                timezone="America/New_York",
                status=status,
                cancel_reason="unwell" if status is AppointmentStatus.CANCELLED_BY_CLIENT else None,
            )
            db.session.add(appointment)
            db.session.flush()
            made[status] = f"appointment-{appointment.id}"
        db.session.commit()
    appointments = {a["id"]: a for a in _by_type(_bundle(export))["Appointment"]}

    def client_says(status: AppointmentStatus) -> tuple[str, str]:
        resource = appointments[made[status]]
        (seat,) = [p for p in resource["participant"] if p["actor"].get("reference", "").startswith("Patient/")]
        return resource["status"], seat["status"]

    assert client_says(AppointmentStatus.CANCELLED_BY_CLIENT) == ("cancelled", "declined")
    assert appointments[made[AppointmentStatus.CANCELLED_BY_CLIENT]]["cancelationReason"] == {"text": "unwell"}
    assert client_says(AppointmentStatus.CANCELLED_BY_CLINIC) == ("cancelled", "accepted")
    assert client_says(AppointmentStatus.NO_SHOW) == ("noshow", "accepted")


def test_the_consent_disclosed_under_is_sent_and_no_other(app: Flask, export: dict[str, Any]) -> None:
    other_consent = _consent(app, export["client_id"], recipient="County Drug Court")
    (consent,) = _by_type(_bundle(export))["Consent"]
    assert consent["id"] == f"consent-{export['consent_id']}"
    assert "County Drug Court" not in str(_bundle(export)) and other_consent != export["consent_id"]
    assert consent["status"] == "active"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert {c["coding"][0]["code"] for c in consent["category"]} == {"59284-0", "IDSCL"}
    assert consent["policyRule"]["coding"][0]["code"] == "42CFRPart2"
    assert consent["policy"][0]["uri"].endswith("section-2.31")
    provision = consent["provision"]
    assert provision["type"] == "permit"
    assert provision["actor"][0]["reference"]["display"] == "Dr. A. Primary, MD"
    assert provision["actor"][0]["role"]["coding"][0]["code"] == "IRCP"
    assert provision["period"]["end"] == (utcnow().date() + timedelta(days=180)).isoformat()
    assert "coordination of care" in consent["text"]["div"]


def test_episodes_of_care(app: Flask, export: dict[str, Any]) -> None:
    from clinic.clients.models import Episode

    episodes = _by_type(_bundle(export))["EpisodeOfCare"]
    with app.app_context():
        rows = db.session.scalars(select(Episode).where(Episode.client_id == export["client_id"])).all()
        assert {e["id"] for e in episodes} == {f"episode-{row.id}" for row in rows}
        for row in rows:
            (episode,) = [e for e in episodes if e["id"] == f"episode-{row.id}"]
            assert episode["status"] == ("active" if row.discharged_on is None else "finished")
            assert episode["period"]["start"] == row.admitted_on.isoformat()
            assert episode["period"].get("end") == (row.discharged_on.isoformat() if row.discharged_on else None)
            assert row.level_of_care in episode["type"][0]["text"]


# --- the consent, the accounting, the audit trail ------------------------------------------------


def test_a_successful_export_is_entered_in_the_accounting_and_audited(app: Flask, export: dict[str, Any]) -> None:
    before = utcnow()
    bundle = _bundle(export)
    (disclosure,) = _disclosures(app, export["client_id"])
    assert disclosure.consent_id == export["consent_id"]
    assert disclosure.recipient == "Dr. A. Primary, MD"
    assert disclosure.purpose == "coordination of care"
    assert disclosure.disclosed_at >= before - timedelta(seconds=1)
    assert disclosure.recorded_by_id == export["clinician"].id  # who disclosed
    for kind in {entry["resource"]["resourceType"] for entry in bundle["entry"]}:
        assert kind in disclosure.description
    accounting = (
        export["http"]
        .get(f"/api/v1/clients/{export['client_id']}/disclosures", headers=export["headers"])
        .get_json()["items"]
    )
    assert [
        (item["consent_id"], item["recorded_by_id"], item["recipient"], item["purpose"]) for item in accounting
    ] == [(export["consent_id"], export["clinician"].id, "Dr. A. Primary, MD", "coordination of care")]
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.client_id == export["client_id"], AuditEvent.action == "client.export")
        ).all()
        (event_,) = events
        assert event_.user_id == export["clinician"].id
        assert event_.details["consent_id"] == export["consent_id"]
        assert event_.details["disclosure_id"] == disclosure.id
        assert event_.details["resources"]["Patient"] == 1


@pytest.mark.parametrize("problem", ["expired", "revoked", "not yet signed", "communication", "other client's"])
def test_a_consent_that_does_not_cover_the_export_is_refused(app: Flask, export: dict[str, Any], problem: str) -> None:
    today = utcnow().date()
    if problem == "other client's":
        with app.app_context():
            other = db.session.scalars(
                select(Client.id).where(
                    Client.site_id.in_(export["clinician"].site_ids), Client.id != export["client_id"]
                )
            ).first()
        consent_id = _consent(app, other)
    elif problem == "communication":
        with app.app_context():
            client = db.session.get_one(Client, export["client_id"])
            row = Consent(
                client_id=client.id,
                site_id=client.site_id,
                kind=ConsentKind.COMMUNICATION,
                channel="sms",
                granted_on=today,
                evidence="form",
            )
            db.session.add(row)
            db.session.commit()
            consent_id = row.id
    else:
        fields = {
            "expired": {"expires_on": today - timedelta(days=1), "signed_on": today - timedelta(days=200)},
            "revoked": {"revoked_at": utcnow() - timedelta(hours=1)},
            "not yet signed": {"signed_on": today + timedelta(days=3)},
        }[problem]
        consent_id = _consent(app, export["client_id"], **fields)
    response = _get(export, consent=consent_id)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert "entry" not in response.get_json()
    assert _disclosures(app, export["client_id"]) == []
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(AuditEvent.client_id == export["client_id"], AuditEvent.outcome == "denied")
        ).all()
        assert [(e.action, e.details["consent_id"]) for e in denied] == [("disclosure.create", consent_id)]
        assert not db.session.scalars(select(AuditEvent).where(AuditEvent.action == "client.export")).all()


@pytest.mark.parametrize("consent", ["", "abc", "0", "2147483648"])
def test_a_missing_or_malformed_consent_id_is_named(app: Flask, export: dict[str, Any], consent: str) -> None:
    response = _get(export, consent=consent)
    assert response.status_code == 422
    assert "consent_id" in response.get_json()["errors"]
    assert _disclosures(app, export["client_id"]) == []


def test_an_unknown_consent_is_refused(app: Flask, export: dict[str, Any]) -> None:
    response = _get(export, consent=987654)
    assert response.status_code == 403
    assert _disclosures(app, export["client_id"]) == []


# --- access --------------------------------------------------------------------------------------


def test_a_client_outside_the_clinicians_sites_is_not_found(
    app: Flask, export: dict[str, Any], bearer: Callable[[User], dict[str, str]], make_site: Any, make_user: Any
) -> None:
    outsider = make_user("clinician", sites=[make_site()])
    response = _get(export, headers=bearer(outsider))
    assert response.status_code == 404
    assert _disclosures(app, export["client_id"]) == []


@pytest.mark.parametrize("role", ["intake", "admin"])
def test_only_clinicians_export(
    app: Flask, export: dict[str, Any], bearer: Callable[[User], dict[str, str]], make_user: Any, role: str
) -> None:
    site_ids = export["clinician"].site_ids
    with app.app_context():
        from clinic.auth.models import Site

        sites = db.session.scalars(select(Site).where(Site.id.in_(site_ids))).all()
        db.session.expunge_all()
    response = _get(export, headers=bearer(make_user(role, sites=sites)))
    assert response.status_code == 403
    assert _disclosures(app, export["client_id"]) == []


def test_the_export_is_in_the_openapi_document(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/clients/{client_id}/fhir"]["get"]
    assert "application/fhir+json" in operation["responses"]["200"]["content"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["consent_id"]


# --- statements ----------------------------------------------------------------------------------


def test_the_statement_count_does_not_grow_with_the_record(
    app: Flask, export: dict[str, Any], bearer: Callable[[User], dict[str, str]]
) -> None:
    with app.app_context():
        appointments = (
            select(func.count()).where(Appointment.client_id == Client.id).correlate(Client).scalar_subquery()
        )
        small = db.session.scalars(
            select(Client.id).where(Client.site_id.in_(export["clinician"].site_ids)).order_by(appointments, Client.id)
        ).first()
    assert small is not None and small != export["client_id"]
    small_consent = _consent(app, small)
    _get(export)  # warm caches (token lookups, instrument definitions)
    measured = {}
    for client_id, consent_id in ((small, small_consent), (export["client_id"], export["consent_id"])):
        with counting(app) as statements:
            response = _get(export, client_id=client_id, consent=consent_id)
        assert response.status_code == 200
        measured[client_id] = (len(statements), len(response.get_json(force=True)["entry"]))
    (few_statements, few_entries), (many_statements, many_entries) = measured[small], measured[export["client_id"]]
    assert many_entries > few_entries + 20
    assert many_statements == few_statements, measured


# --- the checker ---------------------------------------------------------------------------------


def test_the_checker_refuses_what_the_models_let_through(app: Flask) -> None:
    with app.app_context():
        good = labelled({"resourceType": "Patient", "id": "patient-1", "gender": "female"})
        assert validate.check(good) is good
        bad = {
            **labelled({"resourceType": "Patient", "id": "patient-1"}),
            "gender": "f",
            "maritalStatus": {"coding": [{"system": "http://loinc.org", "code": "44261-5"}]},
            "generalPractitioner": [{"reference": "https://elsewhere.example/Practitioner/1"}],
            "text": {"status": "generated", "div": "<p>not a div</p>"},
        }
        bad["meta"] = {"security": bad["meta"]["security"][:2]}
        with pytest.raises(validate.InvalidResourceError) as refused:
            validate.check(bad)
        problems = " | ".join(refused.value.problems)
        for expected in ("NORDSCLCD", "gender", "check digit", "relative reference", "XHTML div"):
            assert expected in problems
        with pytest.raises(validate.InvalidResourceError, match="not a code clinic uses"):
            validate.check(
                labelled(
                    {
                        "resourceType": "Patient",
                        "id": "p",
                        "maritalStatus": {
                            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "123"}]
                        },
                    }
                )
            )
        with pytest.raises(validate.InvalidResourceError, match="Extra inputs"):
            validate.check(labelled({"resourceType": "Patient", "id": "p", "sex": "female"}))
        with pytest.raises(validate.InvalidResourceError, match="SNOMED"):
            validate.check(
                labelled(
                    {
                        "resourceType": "Patient",
                        "id": "p",
                        "maritalStatus": {"coding": [{"system": "http://snomed.info/sct", "code": "228557007"}]},
                    }
                )
            )
