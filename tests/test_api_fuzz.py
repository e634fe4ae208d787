"""Property-based fuzzing of the whole OpenAPI spec (schemathesis), in-process, per user.

Every operation of ``/api/v1/openapi.json`` is fuzzed, so an endpoint added later is covered
without touching this file. Each run authenticates with a bearer token as one user of a
two-site setup: an administrator, a clinician of site A or an intake coordinator of site B.
A response must never be a server error and must match the documented schema, content type
and status codes (errors are problem+json, documented through the ``default`` response).

Isolation: conftest runs the test in a transaction rolled back afterwards, and each generated
case runs in a savepoint of its own, rolled back after the case. So every case starts from the
same database, and the operations whose purpose is to end the caller's credentials
(``POST /auth/logout``, ``POST /auth/password``, ``DELETE /auth/tokens/{id}``, an admin's
``PATCH /users/{own id}`` with a new password, role or sites) are fuzzed like any other
without taking the fuzzing user's token away mid-run; none is excluded.

An operation the user's role may not call gets one case (its 403 must conform too) and the
rest are skipped: permissions are enforced before anything else, so they would all be that 403.
The fuzz test is marked ``slow``; the regression tests after it (bugs the fuzzing found) are
fast and run everywhere. ``CLINIC_FUZZ_MAX_EXAMPLES`` deepens a run (default 20 per operation).

Bugs found so far, each pinned by a test below:
- an integer path id beyond what SQLite can bind was a 500 (now 404: ids are 1..2**31-1);
- U+0000 in any string was a 500 on PostgreSQL (stored on SQLite), a lone surrogate a 500 on
  both (now 422 naming the field);
- an instant UTC cannot represent (``0001-01-01T00:00:00+14:00``) was a 500 (now 422);
- a medication dose below 0.0005 was stored as 0.000 and broke the positive-dose constraint, a
  500 (found by the stateful fuzzing, test_api_stateful.py; now 422 naming ``dose``);
- the 409 of an illegal appointment transition put the appointment's status in the problem's
  ``status``, and the 409s' other members were not in the problem schema (now documented).

After them, tests that the spec and the behaviour agree: every problem's extension members are
documented, a body the spec requires cannot be left out, and new records link onwards.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Connection, func, select
from werkzeug.exceptions import HTTPException

from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import PERMISSION_ATTR, has_permission
from clinic.extensions import MAX_ID, db

MAX_EXAMPLES = int(os.environ.get("CLINIC_FUZZ_MAX_EXAMPLES", "20"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance]


@dataclass(frozen=True)
class FuzzUser:
    role: Role
    user: User
    headers: dict[str, str]


@pytest.fixture(params=[Role.ADMIN, Role.CLINICIAN, Role.INTAKE], ids=lambda role: role.value)
def fuzz_user(
    request: pytest.FixtureRequest,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> FuzzUser:
    """Sites A and B, an admin, a clinician at A, an intake coordinator at B; one of them signed in."""
    site_a = make_site(name="Site A")
    site_b = make_site(name="Site B")
    users = {
        Role.ADMIN: make_user(Role.ADMIN, name="Fuzz Admin"),
        Role.CLINICIAN: make_user(Role.CLINICIAN, sites=[site_a], name="Fuzz Clinician"),
        Role.INTAKE: make_user(Role.INTAKE, sites=[site_b], name="Fuzz Intake"),
    }
    user = users[request.param]
    return FuzzUser(role=request.param, user=user, headers=bearer(user))


@pytest.fixture
def api_schema(app: Flask, fuzz_user: FuzzUser, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The spec the app serves, loaded through the app (depends on ``fuzz_user`` to run once per user).

    The clinic fuzzed is a healthy one: its worker has beaten and stays fresh for the whole run, so
    ``/readyz`` is 200 (its 503 without a worker is tested in test_first_week.py).
    """
    from clinic.system.operations import record_heartbeat

    monkeypatch.setitem(app.config, "HEARTBEAT_INTERVAL_SECONDS", 86_400)
    with app.app_context():
        record_heartbeat()
        db.session.commit()
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@contextmanager
def isolated_case(app: Flask) -> Iterator[None]:
    """One case in a savepoint of conftest's connection, rolled back afterwards.

    The request itself runs as in production: in an app context (``g``, session) of its own.
    """
    with app.app_context():
        connection = cast(Connection, db.engine)  # conftest's connection, standing in for the engine
    savepoint = connection.begin_nested()
    try:
        yield
    finally:
        if savepoint.is_active:
            savepoint.rollback()


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_spec(case: schemathesis.Case[Any], app: Flask, fuzz_user: FuzzUser) -> None:
    with isolated_case(app):
        response = case.call(headers=fuzz_user.headers)
    case.validate_response(response, checks=CHECKS)
    if not role_may_call(app, fuzz_user.user, case.operation.method, case.operation.path):
        # Permissions are checked before anything else (enforce_before_request), so every other
        # case would be the same 403; skipping them keeps the run short as the API grows.
        pytest.skip(f"{fuzz_user.role.value} may not call it: one case checked, the rest skipped")


def role_may_call(app: Flask, user: User, method: str, path_template: str) -> bool:
    """Whether ``user``'s role holds every permission the operation's view declares."""
    key = (user.role, method.upper(), path_template)
    if key not in _MAY_CALL:
        try:
            path = re.sub(r"{[^}]+}", "1", path_template)
            endpoint, _ = app.url_map.bind("localhost").match(path, method=method.upper())
        except HTTPException:
            _MAY_CALL[key] = True  # cannot tell: fuzz it in full
        else:
            declared = getattr(app.view_functions[endpoint], PERMISSION_ATTR, None)
            _MAY_CALL[key] = declared is not None and all(has_permission(user, p) for p in declared)
    return _MAY_CALL[key]


_MAY_CALL: dict[tuple[Role, str, str], bool] = {}


# --- regressions: bugs the fuzzing found -------------------------------------------------------


@pytest.fixture
def admin_headers(make_user: Callable[..., User], bearer: Callable[[User], dict[str, str]]) -> dict[str, str]:
    return bearer(make_user(Role.ADMIN))


def test_each_case_is_rolled_back_so_none_ends_the_next_ones_credentials(
    app: Flask, client: FlaskClient, make_user: Callable[..., User], bearer: Callable[[User], dict[str, str]]
) -> None:
    headers = bearer(make_user(Role.ADMIN))
    (token,) = client.get("/api/v1/auth/tokens", headers=headers).get_json()["items"]
    with isolated_case(app):
        assert client.delete(f"/api/v1/auth/tokens/{token['id']}", headers=headers).status_code == 204
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    "ident",
    [
        pytest.param("0", id="zero"),
        pytest.param(str(MAX_ID + 1), id="max-plus-one"),
        pytest.param("4525019887177623404544", id="beyond-int64"),
        pytest.param("9" * 5000, id="5000-digits"),
    ],
)
def test_a_path_id_no_row_can_have_is_404(client: FlaskClient, admin_headers: dict[str, str], ident: str) -> None:
    # 4525019887177623404544 was a 500 on SQLite: Python int too large to convert to SQLite INTEGER.
    # A 404 whatever the method's siblings (werkzeug alone made PATCH /users/0 a 405).
    for method, path in [("DELETE", "/api/v1/auth/tokens/"), ("GET", "/api/v1/sites/"), ("PATCH", "/api/v1/users/")]:
        response = client.open(
            path + ident, method=method, headers=admin_headers, json={} if method == "PATCH" else None
        )
        _problem(response, 404)


def test_integer_path_ids_are_documented_with_their_range(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    path_params = [
        param
        for item in spec["paths"].values()
        for param in item.get("parameters", [])
        if param["in"] == "path" and param["schema"].get("type") == "integer"
    ]
    assert path_params
    for param in path_params:
        assert param["schema"]["minimum"] == 1 and param["schema"]["maximum"] == MAX_ID, param


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        pytest.param('{"name": "Site\\u0000A", "timezone": "UTC"}', "name", id="nul"),
        pytest.param('{"name": "Site \\ud800", "timezone": "UTC"}', "name", id="lone-surrogate"),
        pytest.param('{"name": "Site B", "timezone": "UTC", "dis\\u0000play": "x"}', "dis\\u0000play", id="nul-in-key"),
    ],
)
def test_text_the_database_cannot_store_is_422(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], raw_body: str, field: str
) -> None:
    # Both were a 500 on PostgreSQL (NUL: "cannot contain NUL (0x00) bytes"; a lone surrogate
    # cannot be encoded as UTF-8 on either backend); SQLite stored the NUL.
    headers = {**admin_headers, "Content-Type": "application/json"}
    with app.app_context():
        sites_before = db.session.scalar(select(func.count()).select_from(Site))
    body = _problem(client.post("/api/v1/sites", data=raw_body, headers=headers), 422)
    assert field in body["errors"], body
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Site)) == sites_before


def test_text_checks_cover_login_and_query_parameters(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    body = _problem(client.post("/api/v1/auth/login", json={"email": "a\x00@example.org", "password": "x"}), 422)
    assert set(body["errors"]) == {"email"}
    body = _problem(client.post("/api/v1/auth/login", json={"email": "a@example.org", "password": "\ud800"}), 422)
    assert set(body["errors"]) == {"password"}
    body = _problem(client.get("/api/v1/audit-events?action=a%00b", headers=admin_headers), 422)
    assert set(body["errors"]) == {"action"}


def test_text_checks_come_after_authentication(client: FlaskClient) -> None:
    _problem(client.get("/api/v1/audit-events?action=a%00b"), 401)


def test_invalid_utf8_is_still_a_400(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    raw = b'{"name": "Site \xed\xa0\x80", "timezone": "UTC"}'  # an encoded surrogate: not UTF-8
    response = client.post("/api/v1/sites", data=raw, headers={**admin_headers, "Content-Type": "application/json"})
    _problem(response, 400)


def test_ordinary_unicode_text_is_accepted(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    response = client.post("/api/v1/sites", json={"name": "Clínica Ñandú 🌵", "timezone": "UTC"}, headers=admin_headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == "Clínica Ñandú 🌵"


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_instant_utc_cannot_represent_is_422(
    client: FlaskClient, admin_headers: dict[str, str], instant: str
) -> None:
    # Was a 500: OverflowError converting to UTC when binding the query parameter.
    for name in ("from", "to"):
        response = client.get("/api/v1/audit-events", query_string={name: instant}, headers=admin_headers)
        body = _problem(response, 422)
        assert set(body["errors"]) == {name}, body


def test_instants_at_the_edges_of_utc_still_work(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    query = {"from": "0001-01-01T00:00:00-01:00", "to": "9999-12-31T23:59:59+01:00"}
    response = client.get("/api/v1/audit-events", query_string=query, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert json.loads(response.get_data())["items"] is not None


@pytest.mark.parametrize("dose", [2.7726470769916575e-179, 0.0004])
def test_a_dose_that_rounds_to_nothing_is_422(spec: Any, ward: Ward, dose: float) -> None:
    # Found by the stateful fuzzing: doses are kept to three decimals, so 2.77e-179 was stored as
    # 0.000 and broke the positive-dose constraint (500, on PostgreSQL and SQLite alike).
    plan = checked_call(spec, "POST", "/clients/{client_id}/plans", ward.headers,
                        path_parameters={"client_id": ward.client_id}, body={}, expect=201)
    order = {"medication": "naltrexone_oral", "unit": "mg", "frequency": "daily", "phase": "maintenance",
             "prescriber_id": ward.clinician.id, "start_on": "2026-10-29"}
    path = {"plan_id": plan.json()["id"]}
    refused = checked_call(spec, "POST", "/plans/{plan_id}/medications", ward.headers, path_parameters=path,
                           body={**order, "dose": dose}, expect=422)
    assert set(refused.json()["errors"]) == {"dose"}
    made = checked_call(spec, "POST", "/plans/{plan_id}/medications", ward.headers, path_parameters=path,
                        body={**order, "dose": 0.001}, expect=201)
    assert made.json()["dose"] == 0.001
    changed = checked_call(spec, "PATCH", "/medications/{medication_id}", ward.headers,
                           path_parameters={"medication_id": made.json()["id"]}, body={"dose": dose}, expect=422)
    assert set(changed.json()["errors"]) == {"dose"}
    listed = checked_call(spec, "GET", "/clients/{client_id}/medications", ward.headers,
                          path_parameters={"client_id": ward.client_id}, expect=200)
    assert [m["dose"] for m in listed.json()["items"]] == [0.001]


# --- the spec says what every answer looks like ------------------------------------------------


@pytest.fixture
def spec(app: Flask) -> Any:
    """The served spec, to check single requests with the fuzzing's own checks."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def checked_call(
    spec: Any, method: str, path: str, headers: dict[str, str], *, expect: int | None = None, **case: Any
) -> Any:
    """Send one request through the spec's operation; its answer must pass every check of the fuzzing."""
    operation = spec["/api/v1" + path][method]
    made = operation.Case(headers=headers, **case)
    response = made.call()
    made.validate_response(response, checks=CHECKS)
    assert expect is None or response.status_code == expect, (method, path, response.status_code, response.text)
    return response


@dataclass(frozen=True)
class Ward:
    site: Site
    clinician: User
    headers: dict[str, str]
    intake_headers: dict[str, str]
    client_id: int


@pytest.fixture
def ward(
    spec: Any,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> Ward:
    site = make_site()
    clinician = make_user(Role.CLINICIAN, sites=[site])
    headers = bearer(clinician)
    body = {"site_id": site.id, "first_name": "Ada", "last_name": "Brown", "date_of_birth": "1980-01-01"}
    created = checked_call(spec, "POST", "/clients", headers, body=body)
    assert created.status_code == 201, created.text
    return Ward(site, clinician, headers, bearer(make_user(Role.INTAKE, sites=[site])), created.json()["id"])


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def test_problems_with_extension_members_match_the_spec(spec: Any, ward: Ward) -> None:
    # The problem schema forbade every member but the standard five, so these 409s (and the
    # 412) broke the spec; some were documented with no content at all, so nothing was checked.
    def refused(status: int, method: str, path: str, member: str, **case: Any) -> Any:
        response = checked_call(spec, method, path, case.pop("headers", ward.headers), **case)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == ["application/problem+json"]
        assert response.json()["status"] == status and member in response.json(), response.json()
        return response.json()[member]

    client = {"site_id": ward.site.id, "first_name": "Ada", "last_name": "Brown", "date_of_birth": "1980-01-01"}
    (candidate,) = refused(409, "POST", "/clients", "candidates", body=client)
    assert candidate["id"] == ward.client_id and candidate["date_of_birth"] == "1980-01-01"

    episodes = {"path_parameters": {"client_id": ward.client_id}, "body": {"admitted_on": "2026-01-05", "level_of_care": "1"}}
    checked_call(spec, "POST", "/clients/{client_id}/episodes", ward.headers, **episodes, expect=201)
    refused(409, "POST", "/clients/{client_id}/episodes", "open_episode_id", **episodes)

    plan = checked_call(spec, "POST", "/clients/{client_id}/plans", ward.headers,
                        path_parameters={"client_id": ward.client_id}, body={})
    assert plan.status_code == 201, plan.text
    refused(412, "PATCH", "/plans/{plan_id}", "current_etag", path_parameters={"plan_id": plan.json()["id"]},
            headers={**ward.headers, "If-Match": '"plan-0-v0"'}, body={})

    booking = {"site_id": ward.site.id, "kind": "individual_therapy", "clinician_id": ward.clinician.id,
               "client_id": ward.client_id, "starts_at": _in_days(3), "duration_minutes": 60}
    booked = checked_call(spec, "POST", "/appointments", ward.headers, body=booking)
    assert booked.status_code == 201, booked.text
    (clash,) = refused(409, "POST", "/appointments", "clashes", body=booking)
    assert clash["appointment_id"] == booked.json()["id"]
    cancel = {"path_parameters": {"appointment_id": booked.json()["id"]}, "body": {"by": "clinic"}}
    checked_call(spec, "POST", "/appointments/{appointment_id}/cancel", ward.headers, **cancel, expect=200)
    # Was a 500-free schema violation: the appointment's status replaced the problem's `status` (409).
    assert refused(409, "POST", "/appointments/{appointment_id}/cancel", "allowed", **cancel) == []

    call = {"site_id": ward.site.id, "direction": "inbound", "occurred_at": _in_days(-1), "caller_name": "Sam Ortiz",
            "caller_relation": "self", "callback_phone": "(212) 555-0134", "referral_source": "a friend",
            "reason": "wants to start treatment", "substances": [], "risk_flags": [], "outcome": "info_only"}
    made = checked_call(spec, "POST", "/intake-calls", ward.intake_headers, body=call)
    assert made.status_code == 201, made.text
    convert = {"path_parameters": {"call_id": made.json()["id"]},
               "body": {"first_name": "Sam", "last_name": "Ortiz", "date_of_birth": "1990-02-03"}}
    converted = checked_call(spec, "POST", "/intake-calls/{call_id}/convert", ward.intake_headers, **convert)
    assert converted.status_code == 201, converted.text
    assert refused(409, "POST", "/intake-calls/{call_id}/convert", "client_id", headers=ward.intake_headers,
                   **convert) == converted.json()["id"]

    answers = {f"q{i}": 1 for i in range(1, 9)} | {"q9": 0}
    assessment = checked_call(spec, "POST", "/clients/{client_id}/assessments", ward.headers,
                              path_parameters={"client_id": ward.client_id},
                              body={"instrument": "PHQ-9", "answers": answers, "administered_at": _in_days(0)})
    assert assessment.status_code == 201, assessment.text
    signed = {"path_parameters": {"assessment_id": assessment.json()["id"]}}
    checked_call(spec, "POST", "/assessments/{assessment_id}/sign", ward.headers, **signed, expect=200)
    amend = {**signed, "body": {"answers": answers, "reason": "misheard"}}
    amendment = checked_call(spec, "POST", "/assessments/{assessment_id}/amend", ward.headers, **amend)
    assert amendment.status_code == 201, amendment.text
    assert refused(409, "POST", "/assessments/{assessment_id}/amend", "amendment_id", **amend) == amendment.json()["id"]


def test_every_extension_member_a_problem_carries_is_documented() -> None:
    # Each `extra={...}` given to abort_problem/APIError/problem_response adds members to a problem:
    # each must be a documented member of the problem schema, and none may replace a standard one.
    from clinic.core.schemas import ProblemSchema

    standard = {"type", "title", "status", "detail", "errors"}
    documented = set(ProblemSchema().fields) - standard
    found: dict[str, str] = {}
    for source in Path("clinic").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
                for key in node.value.keys:
                    assert isinstance(key, ast.Constant), f"{source}:{node.value.lineno}: name extension members literally"
                    found[str(key.value)] = f"{source}:{key.lineno}"
    assert found, "no extension members found: has abort_problem's keyword changed?"
    assert not {name: where for name, where in found.items() if name in standard}, "a standard member is replaced"
    assert not {name: where for name, where in found.items() if name not in documented}, "undocumented members"


def _operations_with_a_body(spec_document: dict[str, Any]) -> list[tuple[str, str, bool]]:
    return [
        (method.upper(), path, bool(operation["requestBody"].get("required")))
        for path, item in spec_document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        and "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


def test_a_required_body_cannot_be_left_out(
    app: Flask, client: FlaskClient, make_site: Callable[..., Site], make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> None:
    # A missing body was read as {}: POST /clients/{id}/plans without one made an empty plan,
    # and a PATCH without one answered 200. The spec says which bodies are required.
    site = make_site()
    users = [make_user(Role.ADMIN), make_user(Role.CLINICIAN, sites=[site]), make_user(Role.INTAKE, sites=[site])]
    headers = {user.role: bearer(user) for user in users}
    operations = _operations_with_a_body(client.get("/api/v1/openapi.json").get_json())
    assert len(operations) > 30
    for method, path, required in operations:
        user = next((u for u in users if role_may_call(app, u, method, path)), users[0])
        url = re.sub(r"{[^}]+}", "1", path)
        for kwargs in ({}, {"data": '{"a": 1}', "content_type": "text/plain"}, {"content_type": "application/json"}):
            response = client.open(url, method=method, headers=headers[user.role], **kwargs)
            missing = response.status_code == 422 and "_schema" in response.get_json().get("errors", {})
            assert missing == required, (method, path, kwargs, response.status_code, response.get_json())


def test_a_plan_needs_a_body(spec: Any, ward: Ward) -> None:
    plans = {"path_parameters": {"client_id": ward.client_id}}
    response = checked_call(spec, "POST", "/clients/{client_id}/plans", ward.headers, **plans)
    body = _problem_of(response, 422)
    assert body["errors"] == {"_schema": ["Missing JSON body."]}
    listed = checked_call(spec, "GET", "/clients/{client_id}/plans", ward.headers, **plans)
    assert listed.json()["items"] == []


def _problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == ["application/problem+json"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_the_spec_links_a_new_record_to_what_can_be_done_with_it(spec: Any, client: FlaskClient) -> None:
    # The stateful fuzzing (test_api_stateful.py, `make fuzz`) follows these links; building its
    # state machine fails on a link to an operation or a parameter that does not exist.
    spec.as_state_machine()
    document = client.get("/api/v1/openapi.json").get_json()
    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    ]
    assert len(operation_ids) == len(set(operation_ids))

    def targets(path: str, method: str, status: str) -> dict[str, dict[str, str]]:
        links = document["paths"]["/api/v1" + path][method]["responses"][status]["links"]
        return {link["operationId"]: link.get("parameters", {}) for link in links.values()}

    created_client = targets("/clients", "post", "201")
    assert created_client["clients.get_client"] == {"client_id": "$response.body#/id"}
    assert {"clients.update_client", "plans.create_plan", "assessments.create_assessment"} <= set(created_client)
    created_plan = targets("/clients/{client_id}/plans", "post", "201")
    assert created_plan["plans.get_plan"] == {"plan_id": "$response.body#/id"}
    assert created_plan["plans.update_plan"]["header.If-Match"] == "$response.header.ETag"
    booked = targets("/appointments", "post", "201")
    assert booked["scheduling.get_appointment"] == {"appointment_id": "$response.body#/id"}
    assert {"scheduling.cancel_appointment", "scheduling.check_in", "scheduling.complete"} <= set(booked)
