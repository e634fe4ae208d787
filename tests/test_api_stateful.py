"""Stateful fuzzing of the API over the spec's links (schemathesis), on PostgreSQL, as two identities.

The state machine starts from operations that need no id (``POST /clients``, ``POST
/appointments``, ``POST /intake-calls``, ...) and follows the OpenAPI links of their answers to
what can be done with the record just made (read it, change it, sign it, cancel it, amend
it, ...), so it tries sequences the stateless fuzzing (test_api_fuzz.py) never reaches: a plan
changed with the ETag of its creation, a cancelled appointment checked in, an amendment
amended again. Every operation of the spec is in the machine, but the three that end the
caller's own credentials (``ENDS_CREDENTIALS``); an operation with an id in its path is reached
through a link only.

It runs once as each of two identities of a two-site clinic: a clinician of site A and an
intake coordinator of site B. Every answer must pass the checks of the stateless fuzzing (no
server error; status code, content type and body as the spec documents them) and
``use_after_free`` and ``ensure_resource_availability`` (a record just created can be read
through the links of its answer, one deleted cannot). Besides, a record one identity reads
must be hidden from the other (404, or 403 where the role may not read such records).
``negative_data_rejection`` and ``positive_data_acceptance`` are left out: they judge inputs by
the schema alone, and clinic refuses on purpose values a schema cannot describe (a whole
number sent as ``5.0``, a date of birth before 1900, a name holding control characters); the
per-endpoint tests cover those rules.

Generated ids rarely name one of the identity's sites or clinicians, and generated dates and
text are rarely plausible, so most creations would be refused and no link followed. Before each
call, ``Steering`` therefore makes most requests ones the identity could have sent; the rest of
each request is generated as usual.

Each scenario runs in a savepoint rolled back at its end, with the id sequences rewound and the
clinic's clock frozen, so every one starts from the same database and a replayed scenario gets
the same answers (Hypothesis requires it). The run is bounded: ``CLINIC_STATEFUL_SCENARIOS``
scenarios of at most ``CLINIC_STATEFUL_STEPS`` steps per identity. It is not part of ``make
test``; ``make fuzz`` runs it (``CLINIC_STATEFUL_FUZZ=1``), and CI runs ``make fuzz`` after
``make test``.
"""

from __future__ import annotations

import os
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, cast

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.stateful.state_machine import normalize_name
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from sqlalchemy import Connection, text

import clinic.core.time
from clinic.auth.models import Role, Site, User
from clinic.extensions import db

SCENARIOS = int(os.environ.get("CLINIC_STATEFUL_SCENARIOS", "300"))
STEPS = int(os.environ.get("CLINIC_STATEFUL_STEPS", "15"))
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
    use_after_free,
    ensure_resource_availability,
]
#: Operations that end the identity's own credentials: the rest of a scenario after one would be
#: 401s. The stateless fuzzing calls them, each case in a savepoint of its own.
ENDS_CREDENTIALS = ("auth.logout", "auth.change_password", "auth.revoke_token")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CLINIC_STATEFUL_FUZZ") != "1", reason="the stateful fuzzing runs in `make fuzz`"),
]


@dataclass(frozen=True)
class Identity:
    """Who the machine runs as, the ids and zone of what they may use, and the other identity's headers."""

    name: str
    headers: dict[str, str]
    site_id: int
    timezone: str
    clinician_ids: tuple[int, ...]
    peer_headers: dict[str, str]
    #: The only kind of appointment the identity may book, if its role limits it.
    booking_kind: str | None = None


@pytest.fixture(params=["clinician-of-site-a", "intake-of-site-b"])
def identity(
    request: pytest.FixtureRequest,
    backend: str,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> Identity:
    """Sites A and B, a clinician of each, an intake coordinator of B and an admin; one of two signed in."""
    if backend != "postgresql":
        pytest.skip("the stateful fuzzing runs on PostgreSQL")
    site_a = make_site(name="Site A", timezone="America/New_York")
    site_b = make_site(name="Site B", timezone="America/Chicago")
    clinician_a = make_user(Role.CLINICIAN, sites=[site_a], name="Clinician A")
    clinician_b = make_user(Role.CLINICIAN, sites=[site_b], name="Clinician B")
    intake_b = make_user(Role.INTAKE, sites=[site_b], name="Intake B")
    make_user(Role.ADMIN, name="Admin")
    as_clinician_a, as_intake_b = bearer(clinician_a), bearer(intake_b)
    if request.param == "clinician-of-site-a":
        return Identity(request.param, as_clinician_a, site_a.id, site_a.timezone, (clinician_a.id,), as_intake_b)
    return Identity(
        request.param, as_intake_b, site_b.id, site_b.timezone, (clinician_b.id,), as_clinician_a, "intake_assessment"
    )


class Steering:
    """Makes a generated request, most of the time, one the identity could have sent.

    Ids of sites and clinicians become the identity's; dates and instants become plausible
    (a birth date in the last 75 years, other dates in the last two months, instants within a
    week of the clinic's frozen clock); phone numbers, e-mail addresses and substance names become
    well-formed; a booking is of one client, or of a group with seats, of a kind the identity may
    book, and not a series; an
    assessment of an unknown instrument becomes a PHQ-9 with valid answers; and text loses the
    control, format and surrogate characters every endpoint refuses. One request in ten is left
    as generated. The choice is a hash of the generated value, so a scenario replays (and
    shrinks) the same.
    """

    SITE_FIELDS: ClassVar[frozenset[str]] = frozenset({"site_id"})
    CLINICIAN_FIELDS: ClassVar[frozenset[str]] = frozenset({"clinician_id", "primary_clinician_id", "prescriber_id"})
    PHONE_FIELDS: ClassVar[frozenset[str]] = frozenset({"phone", "callback_phone"})
    SUBSTANCE_FIELDS: ClassVar[frozenset[str]] = frozenset({"substances", "target_substances"})
    SUBSTANCES: ClassVar[tuple[str, ...]] = ("fentanyl", "heroin", "methamphetamine", "cocaine", "alcohol")
    PHQ9: ClassVar[dict[str, int]] = {f"q{i}": 1 for i in range(1, 9)} | {"q9": 0}

    def __init__(self, identity: Identity, now: datetime) -> None:
        self.identity = identity
        self.now = now

    def steer(self, case: Any) -> None:
        if _roll("request", (case.body, case.query)) % 10 == 0:
            return  # one request in ten goes out as generated
        if isinstance(case.body, dict):
            case.body = {name: self.value(name, value) for name, value in case.body.items()}
            if "instrument" in case.body and "answers" in case.body:
                case.body.update(instrument="PHQ-9", answers=self.PHQ9)
            if "kind" in case.body and "starts_at" in case.body:
                self.booking(case.body)
        if case.query:
            case.query = {name: self.value(name, value) for name, value in case.query.items()}

    def booking(self, body: dict[str, Any]) -> None:
        """An appointment of one client, or a group session with seats, an hour or less, not repeated."""
        body.pop("recurrence", None)  # a generated string is never an RFC 5545 rule
        body["kind"] = self.identity.booking_kind or body["kind"]
        body["duration_minutes"] = 15 + _roll("duration_minutes", body.get("duration_minutes")) % 4 * 15
        if body["kind"] == "group_therapy":
            body.pop("client_id", None)
            body["capacity"] = 8
        else:
            body.pop("client_ids", None)
            body.pop("capacity", None)

    def value(self, name: str, value: Any) -> Any:
        roll = _roll(name, value)
        if name in self.SITE_FIELDS:
            return self.identity.site_id
        if name in self.CLINICIAN_FIELDS:
            return self.identity.clinician_ids[roll % len(self.identity.clinician_ids)]
        if name == "date_of_birth":
            return (date(1950, 1, 1) + timedelta(days=roll % 27_000)).isoformat()
        if name.endswith("_on") and isinstance(value, str):
            return (self.now.date() - timedelta(days=roll % 60)).isoformat()
        if name.endswith("_at") and isinstance(value, str):
            shift = timedelta(minutes=roll % (60 * 24 * 14)) - timedelta(days=7)
            return (self.now + shift).replace(second=0, microsecond=0).isoformat()
        if name in self.PHONE_FIELDS and isinstance(value, str):
            return f"+1202555{roll % 10_000:04d}"
        if name == "email" and isinstance(value, str):
            return f"client{roll % 10_000}@example.org"
        if name == "timezone" and isinstance(value, str):
            return self.identity.timezone
        if name.endswith("_url") and isinstance(value, str):
            return f"https://video.example.org/{roll % 10_000}"
        if name in self.SUBSTANCE_FIELDS and isinstance(value, list):
            return [self.SUBSTANCES[(roll + i) % len(self.SUBSTANCES)] for i in range(min(len(value), 3))]
        return _printable(value)


def _roll(name: str, value: Any) -> int:
    """A number that depends on the generated ``value`` and not on the ids in it.

    Ids come from earlier answers (links) and from database sequences, which a rolled-back
    savepoint does not rewind: a replayed scenario must make the same choices with other ids.
    """
    return zlib.crc32(f"{name}={_without_ints(value)!r}".encode())


def _without_ints(value: Any) -> Any:
    if isinstance(value, bool | str | float) or value is None:
        return value
    if isinstance(value, int):
        return 0
    if isinstance(value, list | tuple):
        return [_without_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_ints(item) for key, item in value.items()}
    return type(value).__name__


def _printable(value: Any) -> Any:
    """``value`` without the characters no text may hold (Unicode categories Cc, Cf and Cs).

    A whole float (``316.0``), which JSON Schema counts as an integer, is sent as one: clinic
    refuses it where it wants an id or a count.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        return "".join(c for c in value if unicodedata.category(c) not in {"Cc", "Cf", "Cs"})
    if isinstance(value, list):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    return value


def _sequence_rewinder(connection: Connection) -> Callable[[], None]:
    """Puts every id sequence back where it is now, as a rolled-back savepoint does not.

    A generated id (Hypothesis likes small numbers) must name the same row, or none, each time
    a scenario is replayed; otherwise Hypothesis sees the same choices lead elsewhere.
    """
    positions = connection.execute(
        text("SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences")
    ).all()

    def rewind() -> None:
        for name, last_value in positions:
            connection.execute(
                text("SELECT setval(:name, :value, :called)"),
                {"name": name, "value": last_value or 1, "called": last_value is not None},
            )

    return rewind


def _starting_without_ids(machine: type[Any]) -> type[Any]:
    """``machine``, whose scenarios start only from operations with no id in their path.

    One with an id (``POST /clients/{client_id}/episodes``) is reached through a link; started
    with a generated id it would be a 404 every time (the stateless fuzzing covers those).
    """
    with_ids = {label for label in machine._root_labels if "{" in label}
    rules = {normalize_name(f"RANDOM -> {label}") for label in with_ids}
    assert rules <= machine.root_rules, "schemathesis names its starting rules differently now"
    return type(
        machine.__name__,
        (machine,),
        {
            **dict.fromkeys(rules),  # no longer a rule
            "root_rules": machine.root_rules - rules,
            "_root_labels": machine._root_labels - with_ids,
        },
    )


@pytest.fixture
def workflow(app: Flask, identity: Identity, monkeypatch: pytest.MonkeyPatch) -> type[Any]:
    """The spec's state machine, calling the app in-process as ``identity``; it records what it did in ``.seen``."""
    from clinic.system.operations import record_heartbeat

    # A healthy clinic (its worker has beaten), whose clock stands still for the run.
    monkeypatch.setitem(app.config, "HEARTBEAT_INTERVAL_SECONDS", 86_400)
    now = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(clinic.core.time, "datetime", _frozen_at(now))
    with app.app_context():
        record_heartbeat()
        db.session.commit()
        connection = cast(Connection, db.engine)  # conftest's connection, standing in for the engine
    rewind_sequences = _sequence_rewinder(connection)
    api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app).exclude(operation_id=list(ENDS_CREDENTIALS))
    # Only the spec's links: those schemathesis infers from lists start from empty lists here.
    api.config.phases.stateful.inference.algorithms = []
    steering = Steering(identity, now)
    seen: Counter[tuple[str, int, bool]] = Counter()

    class ClinicWorkflow(_starting_without_ids(api.as_state_machine())):  # type: ignore[misc]
        def setup(self) -> None:
            self.savepoint = connection.begin_nested()
            rewind_sequences()

        def teardown(self) -> None:
            if self.savepoint.is_active:
                self.savepoint.rollback()

        def before_call(self, case: Any) -> None:
            steering.steer(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": identity.headers}

        def step(self, input: Any) -> Any:
            output = super().step(input)
            seen[(output.case.operation.label, output.response.status_code, input.transition is not None)] += 1
            return output

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, recorder=self.recorder)
            if case.method == "GET" and case.path_parameters and 200 <= response.status_code < 300:
                peer = case.call(headers=identity.peer_headers)
                assert peer.status_code in (403, 404), (
                    f"{case.method} {case.formatted_path}: {identity.name} read it, and so did the other "
                    f"identity ({peer.status_code})"
                )

    ClinicWorkflow.seen = seen
    return ClinicWorkflow


def _frozen_at(now: datetime) -> type[datetime]:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now.astimezone(tz) if tz is not None else now.replace(tzinfo=None)

    return Frozen


def test_sequences_of_operations_conform_to_the_spec(workflow: Any, identity: Identity) -> None:
    workflow.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    seen: Counter[tuple[str, int, bool]] = workflow.seen
    answered = Counter((label, status) for (label, status, _linked), n in seen.items() for _ in range(n))
    print(f"{identity.name}: {sum(seen.values())} requests; operation and status (requests)")
    for (label, status), count in sorted(answered.items()):
        print(f"  {label} {status} ({count})")
    # The run is only worth its time if records get made and the links of their answers followed.
    followed = {label for (label, status, linked) in seen if linked and 200 <= status < 300}
    assert len(followed) >= 5, f"links were followed to too few operations: {sorted(followed)}"
