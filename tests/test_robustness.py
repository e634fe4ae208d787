"""What every endpoint refuses before anything reads the request: oversized bodies, JSON nested too
deep, text that hides what it says; and instants no past event can have.

- ``POST /auth/login`` with 1,000 nested objects was a 500 without signing in (RecursionError in
  the text check); it is a 400, on every endpoint.
- A 105 MB body to ``/auth/login`` was read and parsed, and the sign-in limit did not count it:
  a body over ``MAX_CONTENT_LENGTH`` is a 413 before it is read, and the limit counts it.
- A name holding U+202E (right-to-left override) or a zero-width space was stored; an assessment
  administered in year 1 was accepted.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.auth.models import Role, Site, User
from clinic.extensions import db

LOGIN = "/api/v1/auth/login"
MIB = 1024 * 1024


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


@pytest.fixture
def admin_headers(make_user: Callable[..., User], bearer: Callable[[User], dict[str, str]]) -> dict[str, str]:
    return bearer(make_user(Role.ADMIN))


def _site_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Site)) or 0)


# --- JSON nested too deep -----------------------------------------------------------------------


def _nested_objects(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def _nested_lists(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_nested_objects(1000), id="1000-objects"),
        pytest.param(_nested_lists(200_000), id="200000-lists"),
        pytest.param(_nested_objects(33), id="33-objects"),
        pytest.param('{"email": "a@example.org", "password": "x", "extra": ' + _nested_lists(32) + "}", id="33-mixed"),
    ],
)
def test_json_nested_deeper_than_32_levels_is_400_without_signing_in(client: FlaskClient, raw: str) -> None:
    # 1,000 nested objects were a 500 (RecursionError in the text check).
    body = _problem(client.post(LOGIN, data=raw, content_type="application/json"), 400)
    assert "32" in body["detail"]


def test_json_nested_32_levels_deep_is_examined_as_usual(client: FlaskClient) -> None:
    body = _problem(client.post(LOGIN, data=_nested_objects(32), content_type="application/json"), 422)
    assert "a" in body["errors"]  # the schema's answer: an unknown field


def test_deep_json_is_400_on_a_signed_in_endpoint_and_creates_nothing(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    before = _site_count(app)
    raw = '{"name": "Deep", "timezone": "UTC", "x": ' + _nested_objects(1000) + "}"
    _problem(client.post("/api/v1/sites", data=raw, headers={**admin_headers, "Content-Type": "application/json"}), 400)
    assert _site_count(app) == before


# --- request size -------------------------------------------------------------------------------


class WatchedStream(io.RawIOBase):
    """A request body of ``size`` bytes that records how much of it anyone read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # the test client measures the body by seeking to its end and back

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.size + offset if whence == io.SEEK_END else offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        buffer[:count] = b" " * count
        self.position += count
        self.bytes_read += count
        return count


def _post_login_body(client: FlaskClient, stream: WatchedStream, address: str, **kwargs: Any) -> Any:
    return client.post(
        LOGIN,
        input_stream=stream,
        content_type="application/json",
        environ_base={"REMOTE_ADDR": address},
        **kwargs,
    )


def test_an_oversized_sign_in_body_is_413_and_never_read(client: FlaskClient) -> None:
    # A 105 MB body was read, parsed (the worker grew by 630 MB) and checked against the password.
    stream = WatchedStream(105 * MIB)
    body = _problem(_post_login_body(client, stream, "10.20.0.1"), 413)
    assert str(MIB) in body["detail"]
    assert stream.bytes_read == 0


def test_a_body_without_a_length_is_cut_off_at_the_limit(client: FlaskClient) -> None:
    # Chunked: no Content-Length, the server marks the input terminated; reading stops at the limit.
    stream = WatchedStream(20 * MIB)
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    response = _post_login_body(client, stream, "10.20.0.2", environ_overrides=chunked)
    _problem(response, 413)
    assert stream.bytes_read <= MIB + 64 * 1024


def test_a_body_at_the_limit_is_accepted(client: FlaskClient) -> None:
    padding = " " * (MIB - 60)
    raw = '{"email": "nobody@example.org", "password": "wrong-password"}' + padding
    raw = raw[:MIB]
    response = client.post(LOGIN, data=raw, content_type="application/json", environ_base={"REMOTE_ADDR": "10.20.0.3"})
    _problem(response, 401)


def test_the_size_limit_is_a_setting(app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 32
    try:
        response = client.post(
            "/api/v1/sites", json={"name": "A site with a long enough name", "timezone": "UTC"}, headers=admin_headers
        )
    finally:
        app.config["MAX_CONTENT_LENGTH"] = MIB
    _problem(response, 413)


@pytest.fixture
def strict_login_limit(app: Flask) -> Iterator[None]:
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    yield
    app.config["LOGIN_RATE_LIMIT"] = "100000 per minute"


def test_oversized_sign_ins_count_against_the_rate_limit(client: FlaskClient, strict_login_limit: None) -> None:
    address = "10.30.0.1"
    for _ in range(3):
        stream = WatchedStream(2 * MIB)
        _problem(_post_login_body(client, stream, address), 413)
    # The limit is spent: even a small, valid attempt is refused now, and its body is not read either.
    response = client.post(
        LOGIN,
        json={"email": "nobody@example.org", "password": "a-long-and-uncommon-passphrase"},
        environ_base={"REMOTE_ADDR": address},
    )
    _problem(response, 429)
    assert "Retry-After" in response.headers
    stream = WatchedStream(100)
    _problem(_post_login_body(client, stream, address), 429)
    assert stream.bytes_read == 0


def test_malformed_and_deep_sign_ins_count_too(client: FlaskClient, strict_login_limit: None) -> None:
    address = "10.30.0.2"
    _problem(client.post(LOGIN, data="{", content_type="application/json", environ_base={"REMOTE_ADDR": address}), 400)
    deep = _nested_objects(1000)
    _problem(client.post(LOGIN, data=deep, content_type="application/json", environ_base={"REMOTE_ADDR": address}), 400)
    _problem(client.post(LOGIN, json={"email": "a\u202e@example.org"}, environ_base={"REMOTE_ADDR": address}), 422)
    response = client.post(
        LOGIN, json={"email": "nobody@example.org", "password": "x"}, environ_base={"REMOTE_ADDR": address}
    )
    _problem(response, 429)


def test_the_sign_in_limit_leaves_other_endpoints_alone(
    client: FlaskClient, strict_login_limit: None, admin_headers: dict[str, str]
) -> None:
    address = {"REMOTE_ADDR": "10.30.0.3"}
    for _ in range(5):
        assert client.get("/api/v1/auth/me", headers=admin_headers, environ_base=address).status_code == 200


# --- text that hides what it says ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        pytest.param("Ana \u202eztiroM", "bidirectional", id="right-to-left-override"),
        pytest.param("Ana\u2066 Moritz", "bidirectional", id="left-to-right-isolate"),
        pytest.param("Ana\u200f", "bidirectional", id="right-to-left-mark"),
        pytest.param("An\u200ba", "zero-width", id="zero-width-space"),
        pytest.param("An\u200da", "zero-width", id="zero-width-joiner"),
        pytest.param("\ufeffAna", "zero-width", id="byte-order-mark"),
        pytest.param("An\u2060a", "zero-width", id="word-joiner"),
        pytest.param("Ana\x07", "control", id="bell"),
        pytest.param("Ana\x1b[31m", "control", id="escape"),
        pytest.param("Ana\x85", "control", id="c1-next-line"),
    ],
)
def test_a_name_hiding_what_it_says_is_422_naming_the_field(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], name: str, kind: str
) -> None:
    before = _site_count(app)
    body = _problem(client.post("/api/v1/sites", json={"name": name, "timezone": "UTC"}, headers=admin_headers), 422)
    assert list(body["errors"]) == ["name"]
    assert kind in body["errors"]["name"][0]
    assert _site_count(app) == before


def test_a_client_named_with_a_right_to_left_override_is_refused(
    app: Flask,
    client: FlaskClient,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> None:
    site = make_site()
    headers = bearer(make_user(Role.INTAKE, sites=[site]))
    body = {"site_id": site.id, "first_name": "Ada", "last_name": "Brown\u202e", "date_of_birth": "1980-01-01"}
    problem = _problem(client.post("/api/v1/clients", json=body, headers=headers), 422)
    assert list(problem["errors"]) == ["last_name"]


def test_refused_characters_in_keys_queries_and_nested_fields_are_named(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    body = _problem(
        client.post("/api/v1/sites", json={"name": "Site", "timezone": "UTC", "na\u202eme": "x"}, headers=admin_headers),
        422,
    )
    assert list(body["errors"]) == ["na\\u202eme"]  # the name of the field, shown without its trick
    body = _problem(client.get("/api/v1/audit-events", query_string={"action": "a\u200bb"}, headers=admin_headers), 422)
    assert list(body["errors"]) == ["action"]
    # A line break belongs in multi-line text, never in a query parameter.
    body = _problem(client.get("/api/v1/audit-events", query_string={"action": "a\nb"}, headers=admin_headers), 422)
    assert list(body["errors"]) == ["action"]


def test_multi_line_text_keeps_its_line_breaks_and_tabs(
    client: FlaskClient,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> None:
    site = make_site()
    headers = bearer(make_user(Role.INTAKE, sites=[site]))
    notes = "Called twice.\r\nPrefers mornings:\tbefore 10."
    body = {
        "site_id": site.id,
        "direction": "inbound",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "caller_name": "Sam Ortiz",
        "caller_relation": "self",
        "callback_phone": "(212) 555-0134",
        "referral_source": "emergency department",
        "reason": "wants to start buprenorphine",
        "outcome": "assessment_scheduled",
        "notes": notes,
    }
    response = client.post("/api/v1/intake-calls", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["notes"] == notes


def test_ordinary_text_in_other_scripts_is_accepted(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    for name in ("Clínica Ñandú 🌵", "مركز الشفاء", "עין כרם", "東京クリニック"):
        response = client.post("/api/v1/sites", json={"name": name, "timezone": "UTC"}, headers=admin_headers)
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["name"] == name


def test_a_password_may_hold_any_character_that_can_be_stored(client: FlaskClient) -> None:
    # A password is hashed and never shown, so nothing in it can mislead a reader (NIST SP 800-63B
    # asks to accept every character); a passphrase of emoji joined by U+200D still signs in.
    response = client.post(LOGIN, json={"email": "nobody@example.org", "password": "👩\u200d👩\u200d👧 family\u202e"})
    _problem(response, 401)


# --- instants of past events --------------------------------------------------------------------


@pytest.fixture
def assessed(
    client: FlaskClient,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    bearer: Callable[[User], dict[str, str]],
) -> dict[str, Any]:
    site = make_site()
    clinician = make_user(Role.CLINICIAN, sites=[site])
    headers = bearer(clinician)
    registered = client.post(
        "/api/v1/clients",
        headers=headers,
        json={"site_id": site.id, "first_name": "Ada", "last_name": "Brown", "date_of_birth": "1980-01-01"},
    )
    assert registered.status_code == 201, registered.get_json()
    return {"url": f"/api/v1/clients/{registered.get_json()['id']}/assessments", "headers": headers}


PHQ9 = {f"q{i}": 1 for i in range(1, 9)} | {"q9": 0}


@pytest.mark.parametrize(
    "administered_at",
    [
        "0001-01-01T00:00:00+00:00",
        "1899-12-31T23:59:59+00:00",
        (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "9999-12-31T00:00:00+00:00",
    ],
)
def test_an_implausible_administered_at_is_422_naming_it(
    client: FlaskClient, assessed: dict[str, Any], administered_at: str
) -> None:
    # Year 1 was accepted and stored.
    response = client.post(
        assessed["url"],
        json={"instrument": "PHQ-9", "answers": PHQ9, "administered_at": administered_at},
        headers=assessed["headers"],
    )
    assert list(_problem(response, 422)["errors"]) == ["administered_at"]


def test_a_plausible_administered_at_is_accepted_and_kept_so_on_edit(
    client: FlaskClient, assessed: dict[str, Any]
) -> None:
    when = datetime(1990, 5, 17, 14, 0, tzinfo=UTC).isoformat()
    created = client.post(
        assessed["url"],
        json={"instrument": "PHQ-9", "answers": PHQ9, "administered_at": when},
        headers=assessed["headers"],
    )
    assert created.status_code == 201, created.get_json()
    url = f"/api/v1/assessments/{created.get_json()['id']}"
    response = client.patch(url, json={"administered_at": "0001-01-01T00:00:00Z"}, headers=assessed["headers"])
    assert list(_problem(response, 422)["errors"]) == ["administered_at"]
