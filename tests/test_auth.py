"""Sign-in, sessions, CSRF, API tokens, lockout and the password policy, as a user meets them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from clinic.auth.models import ApiToken, User, UserSession
from clinic.auth.passwords import password_problems
from clinic.auth.sessions import digest
from clinic.core.time import utcnow
from clinic.extensions import db
from tests.conftest import PASSWORD

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"


def _login(client, email, password):
    return client.post(LOGIN, json={"email": email, "password": password})


def _cookie(response):
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("clinic_session="))


def test_login_sets_an_httponly_samesite_cookie_and_returns_user_and_csrf(client, make_site, make_user):
    site = make_site()
    user = make_user("clinician", sites=[site], name="Dana Reyes")
    response = _login(client, user.email.upper(), PASSWORD)
    assert response.status_code == 200
    body = response.get_json()
    assert body["user"] == {
        **body["user"],
        "id": user.id,
        "email": user.email,
        "name": "Dana Reyes",
        "role": "clinician",
        "site_ids": [site.id],
        "is_supervisor": False,
        "is_active": True,
    }
    assert len(body["csrf_token"]) >= 32
    cookie = _cookie(response)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # testing runs over plain HTTP; production sets Secure
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get(ME).get_json()["user"]["id"] == user.id


def test_cookie_is_secure_outside_development(app):
    from config import DevelopmentConfig, ProductionConfig, TestingConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert DevelopmentConfig.SESSION_COOKIE_SECURE is False
    assert TestingConfig.SESSION_COOKIE_SECURE is False


def test_failed_logins_are_indistinguishable(app, client, make_user):
    admin = make_user("admin")
    disabled = make_user("admin")
    locked = make_user("admin")
    with app.app_context():
        db.session.execute(update(User).where(User.id == disabled.id).values(is_active=False))
        db.session.execute(
            update(User).where(User.id == locked.id).values(locked_until=utcnow() + timedelta(minutes=5))
        )
        db.session.commit()
    bodies = [
        _login(client, admin.email, "wrong-password-entirely"),
        _login(client, "nobody@example.org", PASSWORD),
        _login(client, disabled.email, PASSWORD),
        _login(client, locked.email, PASSWORD),
    ]
    assert {r.status_code for r in bodies} == {401}
    assert len({r.get_data() for r in bodies}) == 1
    assert bodies[0].headers["Content-Type"] == "application/problem+json"


def test_ten_failures_within_fifteen_minutes_lock_the_account_for_fifteen_minutes(app, client, make_user):
    user = make_user("admin")
    for _ in range(10):
        assert _login(client, user.email, "not-the-password-at-all").status_code == 401
    # Locked now: even the right password is refused, with the same body.
    refused = _login(client, user.email, PASSWORD)
    assert refused.status_code == 401
    with app.app_context():
        locked_until = db.session.get(User, user.id).locked_until
        assert locked_until is not None
        assert timedelta(minutes=14) < locked_until - utcnow() <= timedelta(minutes=15)
        # Fifteen minutes later the lock is over.
        db.session.execute(update(User).where(User.id == user.id).values(locked_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _login(client, user.email, PASSWORD).status_code == 200


def test_failures_spread_beyond_the_window_do_not_lock(app, client, make_user):
    user = make_user("admin")
    for _ in range(9):
        _login(client, user.email, "not-the-password-at-all")
    with app.app_context():
        db.session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_login_window_started_at=utcnow() - timedelta(minutes=16))
        )
        db.session.commit()
    _login(client, user.email, "not-the-password-at-all")  # starts a new window
    assert _login(client, user.email, PASSWORD).status_code == 200


def test_session_id_is_rotated_at_login_and_the_old_one_revoked(app, client, make_user):
    user = make_user("admin")
    first = _cookie(_login(client, user.email, PASSWORD))
    second = _cookie(_login(client, user.email, PASSWORD))
    assert first != second
    old_token = first.split(";")[0].split("=", 1)[1]
    replay = app.test_client()
    replay.set_cookie("clinic_session", old_token)
    assert replay.get(ME).status_code == 401
    assert client.get(ME).status_code == 200


def test_logout_revokes_the_session_server_side(app, login, make_user):
    user = make_user("admin")
    session = login(user)
    token = _cookie_value(session.client)
    assert session.post("/api/v1/auth/logout").status_code == 204
    replay = app.test_client()
    replay.set_cookie("clinic_session", token)
    assert replay.get(ME).status_code == 401


def _cookie_value(client):
    cookie = client.get_cookie("clinic_session")
    assert cookie is not None
    return cookie.value


def test_idle_timeout_ends_the_session(app, login, make_user):
    user = make_user("admin")
    session = login(user)
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id)
            .values(last_seen_at=utcnow() - timedelta(minutes=15, seconds=1))
        )
        db.session.commit()
    assert session.get(ME).status_code == 401


def test_activity_keeps_the_session_alive_until_the_absolute_limit(app, login, make_user):
    user = make_user("admin")
    session = login(user)
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id)
            .values(last_seen_at=utcnow() - timedelta(minutes=14))
        )
        db.session.commit()
    assert session.get(ME).status_code == 200
    with app.app_context():
        row = db.session.scalars(select(UserSession).where(UserSession.user_id == user.id)).one()
        assert utcnow() - row.last_seen_at < timedelta(minutes=1)
        assert timedelta(hours=11, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=12)
        db.session.execute(
            update(UserSession).where(UserSession.id == row.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert session.get(ME).status_code == 401


def test_cookie_requests_that_change_things_need_the_csrf_header(login, make_user, make_site):
    admin = make_user("admin")
    session = login(admin)
    no_header = session.client.post("/api/v1/sites", json={"name": "North", "timezone": "America/Chicago"})
    assert no_header.status_code == 403
    wrong = session.client.post(
        "/api/v1/sites", json={"name": "North", "timezone": "America/Chicago"}, headers={"X-CSRF-Token": "guess"}
    )
    assert wrong.status_code == 403
    assert session.post("/api/v1/sites", json={"name": "North", "timezone": "America/Chicago"}).status_code == 201


def test_bearer_requests_need_no_csrf_header(client, bearer, make_user):
    admin = make_user("admin")
    response = client.post("/api/v1/sites", json={"name": "South", "timezone": "America/Denver"}, headers=bearer(admin))
    assert response.status_code == 201


def test_api_token_lifecycle(app, login, client, make_user):
    user = make_user("admin")
    session = login(user)
    created = session.post("/api/v1/auth/tokens", json={"name": "reporting script", "expires_in_days": 30})
    assert created.status_code == 201
    body = created.get_json()
    token = body["token"]
    assert token.startswith("clinic_")
    assert timedelta(days=29, hours=23) < _parse(body["expires_at"]) - utcnow() <= timedelta(days=30)
    with app.app_context():
        row = db.session.get(ApiToken, body["id"])
        assert row.token_hash == digest(token)
        assert token not in (row.token_hash, row.prefix)
    listed = session.get("/api/v1/auth/tokens").get_json()["items"]
    assert [t["name"] for t in listed] == ["reporting script"]
    assert "token" not in listed[0]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(ME, headers=headers).get_json()["user"]["id"] == user.id
    assert session.delete(f"/api/v1/auth/tokens/{body['id']}").status_code == 204
    assert client.get(ME, headers=headers).status_code == 401
    assert session.get("/api/v1/auth/tokens").get_json()["items"] == []


def _parse(value):
    from datetime import datetime

    return datetime.fromisoformat(value)


def test_expired_and_unknown_tokens_are_refused(app, client, bearer, make_user):
    user = make_user("admin")
    headers = bearer(user)
    with app.app_context():
        db.session.execute(
            update(ApiToken).where(ApiToken.user_id == user.id).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert client.get(ME, headers=headers).status_code == 401
    assert client.get(ME, headers={"Authorization": "Bearer clinic_made-up"}).status_code == 401


def test_cannot_revoke_another_users_token(client, bearer, make_user):
    alice, bob = make_user("admin"), make_user("admin")
    alice_headers = bearer(alice)
    bob_token_id = client.get("/api/v1/auth/tokens", headers=bearer(bob)).get_json()["items"][0]["id"]
    assert client.delete(f"/api/v1/auth/tokens/{bob_token_id}", headers=alice_headers).status_code == 404


def test_disabling_a_user_ends_their_sessions_and_tokens_at_once(client, login, bearer, make_user, make_site):
    site = make_site()
    admin = make_user("admin")
    clinician = make_user("clinician", sites=[site])
    their_session = login(clinician)
    their_token = bearer(clinician)
    assert their_session.get(ME).status_code == 200
    response = client.patch(f"/api/v1/users/{clinician.id}", json={"is_active": False}, headers=bearer(admin))
    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    assert their_session.get(ME).status_code == 401
    assert client.get(ME, headers=their_token).status_code == 401
    # Re-enabling does not bring the old credentials back.
    client.patch(f"/api/v1/users/{clinician.id}", json={"is_active": True}, headers=bearer(admin))
    assert client.get(ME, headers=their_token).status_code == 401


def test_password_change_ends_every_session_and_token(client, login, bearer, make_user):
    user = make_user("admin")
    session = login(user)
    other_session = login(user)
    token = bearer(user)
    response = session.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    )
    assert response.status_code == 204
    assert session.get(ME).status_code == 401
    assert other_session.get(ME).status_code == 401
    assert client.get(ME, headers=token).status_code == 401
    assert _login(client, user.email, PASSWORD).status_code == 401
    assert _login(client, user.email, "a brand new passphrase").status_code == 200


def test_password_change_needs_the_current_password(login, make_user):
    session = login(make_user("admin"))
    response = session.post(
        "/api/v1/auth/password", json={"current_password": "not it at all", "new_password": "a brand new passphrase"}
    )
    assert response.status_code == 422
    assert "current_password" in response.get_json()["errors"]
    assert session.get(ME).status_code == 200


def test_admin_password_reset_ends_the_users_sessions(client, login, bearer, make_user):
    admin, user = make_user("admin"), make_user("admin")
    session = login(user)
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"password": "reset by the administrator"}, headers=bearer(admin)
    )
    assert response.status_code == 200
    assert session.get(ME).status_code == 401


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("tulip garden", True),  # 12 characters, no composition rules
        ("abcdefghijk", False),  # 11 characters
        ("a calm walk along the river and then tea with a friend at sixty.", True),  # 64 characters
        ("correct horse battery staple " * 8, True),  # 232 characters
    ],
)
def test_password_length_rules(password, accepted):
    problems = password_problems(password)
    assert (problems == []) is accepted, problems


def test_common_passwords_are_refused():
    for common in ("qwerty123456", "1q2w3e4r5t6y", "PASSWORD1234", "JustinBieber"):
        problems = password_problems(common)
        assert any("common" in p for p in problems), (common, problems)


def test_password_equal_to_the_email_is_refused():
    assert password_problems("dana.reyes@example.org", email="dana.reyes@example.org")


def test_user_creation_refuses_a_weak_password_naming_the_field(client, bearer, make_user):
    admin = make_user("admin")
    response = client.post(
        "/api/v1/users",
        json={"email": "new@example.org", "name": "New", "role": "admin", "site_ids": [], "password": "short"},
        headers=bearer(admin),
    )
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["password"]


@pytest.fixture
def strict_login_limit(app):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    yield
    app.config["LOGIN_RATE_LIMIT"] = "100000 per minute"


def test_login_is_rate_limited_per_address(client, strict_login_limit):
    address = {"REMOTE_ADDR": "10.1.2.3"}
    statuses = [
        client.post(
            LOGIN, json={"email": "nobody@example.org", "password": "whatever-it-is"}, environ_base=address
        ).status_code
        for _ in range(4)
    ]
    other_address = client.post(
        LOGIN,
        json={"email": "nobody@example.org", "password": "whatever-it-is"},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert statuses == [401, 401, 401, 429]
    assert other_address.status_code == 401


def test_rate_limit_response_is_problem_json(client, strict_login_limit):
    address = {"REMOTE_ADDR": "10.4.5.6"}
    for _ in range(3):
        client.post(LOGIN, json={"email": "nobody@example.org", "password": "x"}, environ_base=address)
    response = client.post(LOGIN, json={"email": "nobody@example.org", "password": "x"}, environ_base=address)
    assert response.status_code == 429
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["status"] == 429
    assert "Retry-After" in response.headers


def test_rate_limits_are_kept_in_redis_when_redis_is_configured():
    import subprocess
    import sys

    code = "from config import DevelopmentConfig as C; print(C.RATELIMIT_STORAGE_URI, C.CELERY_BROKER_URL)"
    env = {"REDIS_URL": "redis://127.0.0.1:6379/3", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"]
    env.pop("REDIS_URL")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["memory://", "filesystem://"]
