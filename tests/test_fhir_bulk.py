"""The FHIR bulk export ($export) and the CapabilityStatement, on a small demo clinic.

The worker's task is called directly (as the report runs' tests do); every file is read back over
HTTP and each line parsed with the R4B model of its type.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from clinic.audit.models import AuditEvent, Outcome
from clinic.auth.models import Role, Site, User
from clinic.clients.models import Client
from clinic.core.time import utcnow
from clinic.demo.loader import seed
from clinic.extensions import db
from clinic.fhir import bulk
from clinic.fhir.labels import ACT_CODE, CONFIDENTIALITY, SECURITY_LABELS
from clinic.fhir.models import ExportStatus, FhirExport
from clinic.fhir.tasks import expire_exports, run_export
from clinic.fhir.validate import InvalidResourceError
from tests.test_celery_worker import worker_stack  # noqa: F401 - the fixture, used through fhir_worker

KICK_OFF = "/api/v1/fhir/$export"
ASYNC = {"Prefer": "respond-async"}
LABELS = {(CONFIDENTIALITY, "R"), (ACT_CODE, "42CFRPart2"), (ACT_CODE, "NORDSCLCD")}


@pytest.fixture
def exports_dir(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fhir-exports"
    monkeypatch.setitem(app.config, "FHIR_EXPORT_DIR", str(folder))
    monkeypatch.setitem(app.config, "CELERY_DATA_DIR", str(tmp_path / "broker"))  # the exports' lock files
    return folder


@pytest.fixture
def demo(app: Flask, exports_dir: Path) -> dict[str, Any]:
    """A demo clinic of 16 clients over its sites."""
    with app.app_context():
        seed(clients=16, seed=5, today=utcnow().date())
        db.session.commit()
        by_site: dict[int, set[int]] = {}
        for client_id, site_id in db.session.execute(select(Client.id, Client.site_id)):
            by_site.setdefault(site_id, set()).add(client_id)
    return {"clients_by_site": by_site}


@pytest.fixture
def admin(make_user: Callable[..., User], bearer: Callable[[User], dict[str, str]]) -> dict[str, str]:
    return bearer(make_user(Role.ADMIN))


def kick_off(client: FlaskClient, headers: dict[str, str], **params: str) -> str:
    response = client.post(KICK_OFF, headers={**headers, **ASYNC}, query_string=params)
    assert response.status_code == 202, response.get_data(as_text=True)
    location: str = response.headers["Content-Location"]
    return location


def export_id(location: str) -> str:
    return location.rsplit("/", 1)[1]


def work(app: Flask, location: str) -> str:
    with app.app_context():
        outcome: str = run_export.apply(args=[export_id(location)]).get()
    return outcome


def finished(app: Flask, client: FlaskClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    location = kick_off(client, headers, **params)
    assert work(app, location) == "completed"
    status = client.get(location, headers=headers)
    assert status.status_code == 200, status.get_data(as_text=True)
    body: dict[str, Any] = status.get_json()
    return {"location": location, **body}


def lines_of(client: FlaskClient, headers: dict[str, str], item: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get(item["url"], headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+ndjson"
    assert response.headers["Cache-Control"] == "no-store"
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def resources(
    client: FlaskClient, headers: dict[str, str], manifest: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    return {item["type"]: lines_of(client, headers, item) for item in manifest["output"]}


def patient_of(resource: dict[str, Any]) -> int:
    if resource["resourceType"] == "Patient":
        return int(resource["id"].removeprefix("patient-"))
    found = bulk._PATIENT_REFERENCE.search(json.dumps(resource, separators=(",", ":")).encode())
    assert found is not None, resource
    return int(found.group(1))


def outcome_of(response: Any, status: int, expression: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    outcome: dict[str, Any] = response.get_json()
    get_fhir_model_class("OperationOutcome").model_validate(outcome)
    if expression is not None:
        assert outcome["issue"][0]["expression"] == [expression]
    return outcome


# --- The CapabilityStatement -----------------------------------------------------------------------


def test_metadata_is_a_capability_statement_with_the_export_operation(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/v1/fhir/metadata")  # signed out: the statement describes the server only
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    statement = response.get_json()
    get_fhir_model_class("CapabilityStatement").model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert "application/fhir+ndjson" in statement["format"]
    (rest,) = statement["rest"]
    assert rest["operation"] == [
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
            "documentation": rest["operation"][0]["documentation"],
        }
    ]
    with app.app_context():
        assert [r["type"] for r in rest["resource"]] == bulk.exported_types()
    assert {"Patient", "EpisodeOfCare", "Consent", "CarePlan", "MedicationRequest"} <= {
        r["type"] for r in rest["resource"]
    }
    assert "administrator" in rest["security"]["description"]


# --- Kick-off ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "headers", "status", "expression"),
    [
        pytest.param({}, {}, 400, "Prefer", id="no-prefer"),
        pytest.param({}, {"Prefer": "return=representation"}, 400, "Prefer", id="prefer-not-async"),
        pytest.param({"_type": "Patient,Encounter"}, ASYNC, 400, "_type", id="type-not-exported"),
        pytest.param({"_type": "Patient,,Goal"}, ASYNC, 400, "_type", id="type-empty-entry"),
        pytest.param({"_since": "yesterday"}, ASYNC, 400, "_since", id="since-not-instant"),
        pytest.param({"_since": "2026-01-31"}, ASYNC, 400, "_since", id="since-date-only"),
        pytest.param({"_since": "2026-01-31T10:00:00"}, ASYNC, 400, "_since", id="since-without-zone"),
        pytest.param({"_since": "2026-02-30T10:00:00Z"}, ASYNC, 400, "_since", id="since-no-such-day"),
        pytest.param({"_outputFormat": "text/csv"}, ASYNC, 400, "_outputFormat", id="output-format"),
        pytest.param({"_typeFilter": "Patient?active=true"}, ASYNC, 400, "_typeFilter", id="type-filter"),
        pytest.param({"site_id": "first"}, ASYNC, 400, "site_id", id="site-not-a-number"),
        pytest.param({"site_id": "999999"}, ASYNC, 404, "site_id", id="site-unknown"),
    ],
)
def test_a_kick_off_the_export_cannot_take_is_an_operation_outcome_naming_it(
    app: Flask,
    client: FlaskClient,
    admin: dict[str, str],
    exports_dir: Path,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    expression: str,
) -> None:
    response = client.post(KICK_OFF, headers={**admin, **headers}, query_string=params)
    outcome_of(response, status, expression)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(FhirExport)) == 0


def test_the_worker_is_asked_once_the_export_is_committed_and_not_for_a_refusal(
    app: Flask, client: FlaskClient, admin: dict[str, str], exports_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[str, Any]] = []
    celery_app = app.extensions["celery"]
    monkeypatch.setattr(celery_app, "send_task", lambda name, args=None, **_: queued.append((name, args)))
    location = kick_off(client, admin, _type="Patient")
    assert queued == [("clinic.fhir.tasks.run_export", [export_id(location)])]
    queued.clear()
    outcome_of(client.post(KICK_OFF, headers={**admin, **ASYNC}, query_string={"_since": "soon"}), 400, "_since")
    assert queued == []


def test_lenient_handling_ignores_what_is_not_supported(
    app: Flask, client: FlaskClient, admin: dict[str, str], exports_dir: Path
) -> None:
    response = client.post(
        KICK_OFF,
        headers={**admin, "Prefer": "respond-async, handling=lenient"},
        query_string={"_type": "Patient,Encounter", "_typeFilter": "Patient?active=true"},
    )
    assert response.status_code == 202
    with app.app_context():
        (job,) = db.session.scalars(select(FhirExport))
        assert job.types == ["Patient"]


def test_only_administrators_may_export(
    client: FlaskClient, make_user: Callable[..., User], make_site: Callable[..., Site], bearer: Any
) -> None:
    clinician = make_user(Role.CLINICIAN, sites=[make_site()])
    assert client.post(KICK_OFF, headers={**bearer(clinician), **ASYNC}).status_code == 403
    assert client.post(KICK_OFF, headers=ASYNC).status_code == 401


# --- The export ----------------------------------------------------------------------------------------


def test_an_export_runs_on_the_worker_then_every_line_is_a_labelled_r4_resource(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any]
) -> None:
    location = kick_off(client, admin)
    running = client.get(location, headers=admin)
    assert running.status_code == 202
    assert running.headers["Retry-After"] == "5"
    assert running.headers["X-Progress"] == "accepted, waiting for a worker"
    assert work(app, location) == "completed"

    status = client.get(location, headers=admin)
    assert status.status_code == 200
    manifest = status.get_json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/api/v1/fhir/$export")
    assert manifest["error"] == []
    assert status.expires is not None and status.expires > utcnow()
    with app.app_context():
        exported = bulk.exported_types()
    assert [item["type"] for item in manifest["output"]] == [
        t for t in exported if t in {i["type"] for i in manifest["output"]}
    ]
    assert {"Patient", "EpisodeOfCare", "CarePlan", "Goal", "Appointment"} <= {i["type"] for i in manifest["output"]}

    files = resources(client, admin, manifest)
    every_client = set().union(*demo["clients_by_site"].values())
    assert {patient_of(p) for p in files["Patient"]} == every_client
    for item in manifest["output"]:
        lines = files[item["type"]]
        assert len(lines) == item["count"] > 0
        model = get_fhir_model_class(item["type"])
        for resource in lines:
            assert resource["resourceType"] == item["type"]
            model.model_validate(resource)
            assert {(label["system"], label["code"]) for label in resource["meta"]["security"]} >= LABELS
            assert patient_of(resource) in every_client  # every reference to a patient resolves in the export
        assert len({resource["id"] for resource in lines}) == len(lines)


def test_an_export_of_one_site_holds_only_that_sites_clients(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any]
) -> None:
    site_id, members = max(demo["clients_by_site"].items(), key=lambda item: len(item[1]))
    assert len(demo["clients_by_site"]) > 1 and members
    manifest = finished(app, client, admin, site_id=str(site_id))
    files = resources(client, admin, manifest)
    assert {patient_of(p) for p in files["Patient"]} == members
    assert all(patient_of(r) in members for lines in files.values() for r in lines)


def test_type_and_since_choose_what_is_exported(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any]
) -> None:
    manifest = finished(app, client, admin, _type="Goal,Patient")
    assert [item["type"] for item in manifest["output"]] == ["Patient", "Goal"]

    since = utcnow() + timedelta(seconds=1)
    changed = min(demo["clients_by_site"][min(demo["clients_by_site"])])
    with app.app_context():
        db.session.execute(update(Client).where(Client.id == changed).values(updated_at=since + timedelta(seconds=5)))
        db.session.commit()
    # An offset given unencoded arrives with its "+" turned into a space.
    manifest = finished(app, client, admin, _type="Patient", _since=since.isoformat().replace("+", " "))
    (patients,) = resources(client, admin, manifest).values()
    assert [patient_of(p) for p in patients] == [changed]


def test_every_exported_client_is_in_the_audit_trail_once(
    app: Flask, client: FlaskClient, make_user: Callable[..., User], bearer: Any, demo: dict[str, Any]
) -> None:
    admin_user = make_user(Role.ADMIN)
    headers = bearer(admin_user)
    location = kick_off(client, headers, _type="Patient,Appointment")
    assert work(app, location) == "completed"
    assert work(app, location) == "skipped"  # a second delivery of the task writes nothing
    manifest = client.get(location, headers=headers).get_json()
    for item in manifest["output"]:
        lines_of(client, headers, item)
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("fhir%"))))
    included = [e for e in events if e.action == "fhir.bulk_export"]
    assert sorted(e.client_id for e in included) == sorted(set().union(*demo["clients_by_site"].values()))
    assert {e.user_id for e in events} == {admin_user.id}
    assert all(e.details["export_id"] == export_id(location) for e in included)
    assert [e.action for e in events if e.action != "fhir.bulk_export"] == [
        "fhir_export.request",
        *["fhir_export.download"] * len(manifest["output"]),
    ]


def test_a_worker_that_died_part_way_starts_over(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any], exports_dir: Path
) -> None:
    location = kick_off(client, admin, _type="Patient")
    folder = exports_dir / export_id(location)
    folder.mkdir(parents=True)
    (folder / "half-written.ndjson").write_text('{"resourceType":"Patient"')
    with app.app_context():
        db.session.execute(update(FhirExport).values(status=ExportStatus.RUNNING))
        db.session.commit()
    assert work(app, location) == "completed"
    assert not (folder / "half-written.ndjson").exists()
    manifest = client.get(location, headers=admin).get_json()
    (patients,) = resources(client, admin, manifest).values()
    assert len(patients) == len(set().union(*demo["clients_by_site"].values()))
    with app.app_context():
        events = db.session.scalar(select(func.count()).where(AuditEvent.action == "fhir.bulk_export"))
    assert events == len(patients)


def test_a_resource_that_fails_validation_goes_to_the_error_file(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_check = bulk.check

    def check(resource: dict[str, Any]) -> dict[str, Any]:
        if resource["id"] == "patient-1":
            raise InvalidResourceError("Patient", "patient-1", ["birthDate: not a date"])
        return real_check(resource)

    monkeypatch.setattr(bulk, "check", check)
    manifest = finished(app, client, admin, _type="Patient")
    (patients,) = resources(client, admin, manifest).values()
    assert "patient-1" not in {p["id"] for p in patients}
    (error,) = manifest["error"]
    assert error["type"] == "OperationOutcome" and error["count"] == 1
    (outcome,) = lines_of(client, admin, error)
    get_fhir_model_class("OperationOutcome").model_validate(outcome)
    assert "Patient/patient-1" in outcome["issue"][0]["diagnostics"]
    # It speaks of a client's record: labelled for Part 2 like every resource of the export.
    assert {(label["system"], label["code"]) for label in outcome["meta"]["security"]} == {
        (label["system"], label["code"]) for label in SECURITY_LABELS
    }


# --- Who may see it --------------------------------------------------------------------------------------


def test_only_the_requesting_admin_sees_the_status_and_the_files(
    app: Flask,
    client: FlaskClient,
    admin: dict[str, str],
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    bearer: Any,
    demo: dict[str, Any],
) -> None:
    manifest = finished(app, client, admin, _type="Patient")
    (item,) = manifest["output"]
    other_admin = make_user(Role.ADMIN)
    other = bearer(other_admin)
    outcome_of(client.get(manifest["location"], headers=other), 404)
    outcome_of(client.get(item["url"], headers=other), 404)
    outcome_of(client.delete(manifest["location"], headers=other), 404)
    clinician = bearer(make_user(Role.CLINICIAN, sites=[make_site()]))
    assert client.get(item["url"], headers=clinician).status_code == 403
    assert client.get(item["url"]).status_code == 401  # requiresAccessToken: the API's own authentication
    with app.app_context():
        denied = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access.denied", AuditEvent.resource == "fhir_export")
        ).all()
    assert len(denied) == 3 and {e.user_id for e in denied} == {other_admin.id}
    assert {e.outcome for e in denied} == {Outcome.DENIED}
    assert len(lines_of(client, admin, item)) > 0  # still there for its requester


def test_a_session_signed_in_admin_downloads_with_the_session(
    app: Flask, login: Callable[..., Any], make_user: Callable[..., User], exports_dir: Path, demo: dict[str, Any]
) -> None:
    session = login(make_user(Role.ADMIN))
    response = session.post(KICK_OFF, headers=ASYNC, query_string={"_type": "Consent,Patient"})
    assert response.status_code == 202
    assert work(app, response.headers["Content-Location"]) == "completed"
    manifest = session.get(response.headers["Content-Location"]).get_json()
    download = session.get(manifest["output"][0]["url"])
    assert download.status_code == 200 and download.mimetype == "application/fhir+ndjson"


# --- Expiry and cancellation ---------------------------------------------------------------------------


def test_an_expired_export_is_gone_and_its_files_deleted(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any], exports_dir: Path
) -> None:
    manifest = finished(app, client, admin, _type="Patient")
    folder = exports_dir / export_id(manifest["location"])
    assert any(folder.iterdir())
    with app.app_context():
        db.session.execute(update(FhirExport).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    outcome_of(client.get(manifest["location"], headers=admin), 404)
    outcome_of(client.get(manifest["output"][0]["url"], headers=admin), 404)
    lock = Path(app.config["CELERY_DATA_DIR"]) / f"fhir.export.{export_id(manifest['location'])}.lock"
    assert lock.exists()  # the embedded broker's lock of the export's task
    with app.app_context():
        assert expire_exports.apply().get() == 1
        assert db.session.scalar(select(func.count()).select_from(FhirExport)) == 0
    assert not folder.exists()
    assert not lock.exists()


def test_cancelling_a_pending_export_stops_it(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any], exports_dir: Path
) -> None:
    location = kick_off(client, admin)
    cancelled = client.delete(location, headers=admin)
    assert cancelled.status_code == 202
    outcome_of(client.get(location, headers=admin), 404)
    assert work(app, location) == "skipped"
    assert not (exports_dir / export_id(location)).exists()
    outcome_of(client.delete(location, headers=admin), 404)


def test_cancelling_a_finished_export_deletes_its_files(
    app: Flask, client: FlaskClient, admin: dict[str, str], demo: dict[str, Any], exports_dir: Path
) -> None:
    manifest = finished(app, client, admin, _type="Patient")
    assert client.delete(manifest["location"], headers=admin).status_code == 202
    assert not (exports_dir / export_id(manifest["location"])).exists()
    outcome_of(client.get(manifest["output"][0]["url"], headers=admin), 404)


def test_a_running_export_stops_when_cancelled_and_records_nothing(
    app: Flask,
    client: FlaskClient,
    admin: dict[str, str],
    demo: dict[str, Any],
    exports_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    location = kick_off(client, admin, _type="Patient,Goal")
    folder = exports_dir / export_id(location)
    real_batches = bulk.batches
    read = []

    def batches(*args: Any, **kwargs: Any) -> Any:
        for batch in real_batches(*args, **kwargs):
            read.append(batch)
            if len(read) == 1:  # what a DELETE on the status URL does once its cancellation is committed
                shutil.rmtree(folder)
            yield batch

    monkeypatch.setattr(bulk, "batches", batches)
    monkeypatch.setitem(app.config, "FHIR_EXPORT_BATCH_SIZE", 2)
    assert work(app, location) == "cancelled"
    assert len(read) == 1  # it stopped at the batch it was reading, with nothing more read
    assert not folder.exists()
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(AuditEvent.action == "fhir.bulk_export")) == 0
        assert db.session.scalars(select(FhirExport.files)).one() == []


# --- As deployed ---------------------------------------------------------------------------------------


@pytest.fixture
def fhir_worker(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """tests/test_celery_worker.py's worker on Redis, writing its exports where the app serves them from."""
    folder = tmp_path / "fhir-exports"
    monkeypatch.setenv("FHIR_EXPORT_DIR", str(folder))  # read by the worker process at its start
    stack = request.getfixturevalue("worker_stack")
    stack.app.config["FHIR_EXPORT_DIR"] = str(folder)
    return stack


@pytest.mark.slow
def test_a_real_worker_on_redis_runs_the_export(fhir_worker: Any) -> None:
    from clinic.auth import operations as auth_ops
    from tests.test_celery_worker import _wait_until

    app = fhir_worker.app
    with app.test_request_context():
        seed(clients=6, seed=2, today=utcnow().date())
        admin_user = auth_ops.create_user(
            role=Role.ADMIN,
            email="bulk.admin@example.org",
            name="Bulk Admin",
            password="a-long-and-uncommon-passphrase",
            site_ids=[],
            audit=False,
        )
        db.session.flush()
        _row, token = auth_ops.create_token(admin_user, name="bulk", expires_in_days=1)
        db.session.commit()
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    location = kick_off(client, headers, _type="Patient,EpisodeOfCare")

    def manifest() -> Any:
        status = client.get(location, headers=headers)
        assert status.status_code in (200, 202), status.get_data(as_text=True)
        return status.get_json() if status.status_code == 200 else None

    done = _wait_until(manifest, seconds=60, interval=0.5)
    assert done is not None, f"the export did not finish:\n{fhir_worker.log()}"
    files = resources(client, headers, done)
    assert len(files["Patient"]) == 6
    assert "clinic.fhir.tasks.run_export" in fhir_worker.log()
