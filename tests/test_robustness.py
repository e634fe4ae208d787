"""What every endpoint refuses before anything reads the request: JSON nested too deep, text that
hides what it says.

- ``POST /auth/login`` with 1,000 nested objects was a 500 without signing in (RecursionError in
  the text check); it is a 400, on every endpoint.
- A name holding U+202E (right-to-left override) or a zero-width space was stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clinic.auth.models import Role, Site, User
from clinic.extensions import db

LOGIN = "/api/v1/auth/login"


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
