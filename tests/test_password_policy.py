"""The password policy (NIST SP 800-63B), as an administrator creating an account and a user
changing their own password meet it: every rule refuses with a 422 naming the field."""

from __future__ import annotations

import pytest

from clinic.auth.models import Role
from tests.conftest import PASSWORD

EMAIL = "dana.reyes@example.org"
NAME = "Dana Reyes"

#: (password, words of the expected message): each rule, with the five passwords the review found accepted.
REFUSED = [
    pytest.param(" " * 12, "only spaces", id="twelve-spaces"),
    pytest.param("\t \u3000 \t \u3000 \t \u3000 ", "only spaces", id="mixed-whitespace"),
    pytest.param("elevenchars", "at least 12", id="too-short"),
    pytest.param("aaaaaaaaaaaa", "one character repeated", id="aaaaaaaaaaaa"),
    pytest.param("abcabcabcabc", "short string repeated", id="abcabcabcabc"),
    pytest.param("hunter2hunter2", "short string repeated", id="word-twice"),
    pytest.param("123456789012", "consecutive characters", id="123456789012"),
    pytest.param("zyxwvutsrqpo", "consecutive characters", id="run-down"),
    pytest.param("clinicclinic", "application's name", id="clinicclinic"),
    pytest.param("CLINIC Clinic", "application's name", id="product-any-case"),
    pytest.param("Clinic2024!!", "application's name", id="product-plus-digits"),
    pytest.param(EMAIL.upper(), "your email address", id="email"),
    pytest.param("Dana.Reyes!2024", "your email address", id="email-local-part"),
    pytest.param("Reyes Dana 1990", "your name", id="name"),
    pytest.param("qwerty123456", "too common", id="shipped-common-list"),
    pytest.param("iseedeadpeople", "too common", id="larger-breached-list"),
    pytest.param("iloveyou1234", "too easy to guess", id="iloveyou1234"),
    pytest.param("Password2024!", "too easy to guess", id="common-word-and-year"),
    pytest.param("asdfghjkl;'zxcv", "too easy to guess", id="keyboard-walk"),
    pytest.param(("correct horse battery staple " * 9)[:257], "at most 256", id="too-long"),
]

ACCEPTED = [
    pytest.param("tulip garden", id="twelve-lowercase-characters"),
    pytest.param("the clinic password I will remember", id="product-name-inside-a-phrase"),
    pytest.param("correct horse battery staple " * 8, id="long-phrase-repeated"),
    pytest.param("Dana keeps seven blue teapots", id="own-name-inside-a-phrase"),
]


def _create(client, headers, password):
    return client.post(
        "/api/v1/users",
        json={"email": EMAIL, "name": NAME, "role": "admin", "site_ids": [], "password": password},
        headers=headers,
    )


def _assert_refused(response, field, words):
    assert response.status_code == 422, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    errors = response.get_json()["errors"]
    assert list(errors) == [field]
    assert any(words in message for message in errors[field]), errors


@pytest.mark.parametrize(("password", "words"), REFUSED)
def test_user_creation_refuses(client, bearer, make_user, password, words):
    headers = bearer(make_user(Role.ADMIN))
    _assert_refused(_create(client, headers, password), "password", words)
    # Nothing was written: the same account can be created with an acceptable password.
    assert _create(client, headers, PASSWORD).status_code == 201


@pytest.mark.parametrize(("password", "words"), REFUSED)
def test_password_change_refuses(client, login, make_user, password, words):
    session = login(make_user(Role.ADMIN, email=EMAIL, name=NAME))
    response = session.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": password})
    _assert_refused(response, "new_password", words)
    # The password and the session are unchanged.
    assert session.get("/api/v1/auth/me").status_code == 200
    assert session.client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).status_code == 200


@pytest.mark.parametrize(("password", "words"), REFUSED[:4])
def test_password_reset_by_an_admin_refuses(client, bearer, make_user, password, words):
    headers = bearer(make_user(Role.ADMIN))
    user = make_user(Role.ADMIN, email=EMAIL, name=NAME)
    response = client.patch(f"/api/v1/users/{user.id}", json={"password": password}, headers=headers)
    _assert_refused(response, "password", words)


@pytest.mark.parametrize("password", ACCEPTED)
def test_acceptable_passwords_are_taken(client, bearer, login, make_user, password):
    headers = bearer(make_user(Role.ADMIN))
    assert _create(client, headers, password).status_code == 201
    session = login(make_user(Role.ADMIN, name=NAME))
    changed = session.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": password})
    assert changed.status_code == 204


def test_the_name_rule_follows_the_accounts_own_name_and_email(client, bearer, make_user):
    # What is refused for Dana is an ordinary password for someone else.
    headers = bearer(make_user(Role.ADMIN))
    other = {"email": "sam.okafor@example.org", "name": "Sam Okafor", "role": "admin", "site_ids": []}
    response = client.post("/api/v1/users", json={**other, "password": "Dana.Reyes!2024"}, headers=headers)
    assert response.status_code == 201
