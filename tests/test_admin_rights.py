"""Administrator rights cannot be lost by accident: not one's own, and never the last ones."""

from __future__ import annotations

import pytest

from clinic.auth.models import Role

USERS = "/api/v1/users"


def _patch(client, headers, user_id, body):
    return client.patch(f"{USERS}/{user_id}", json=body, headers=headers)


def _assert_conflict(response, *fields):
    assert response.status_code == 409, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 409
    assert set(body["errors"]) == set(fields)


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"role": "clinician"}, {"role"}),
        ({"role": "intake"}, {"role"}),
        ({"is_active": False}, {"is_active"}),
        ({"role": "clinician", "is_active": False}, {"role", "is_active"}),
    ],
)
def test_an_admin_cannot_take_away_their_own_rights(client, bearer, make_user, make_site, change, fields):
    site = make_site()
    admin = make_user(Role.ADMIN)
    make_user(Role.ADMIN)  # another administrator exists, so only the self rule applies
    headers = bearer(admin)
    body = {**change, "site_ids": [site.id]} if "role" in change else change
    _assert_conflict(_patch(client, headers, admin.id, body), *fields)
    me = client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200  # still signed in: nothing was changed
    assert me.get_json()["user"]["role"] == "admin"
    assert me.get_json()["user"]["is_active"] is True
    assert me.get_json()["user"]["site_ids"] == []


def test_an_admin_may_still_edit_the_rest_of_their_own_account(client, bearer, make_user):
    admin = make_user(Role.ADMIN)
    headers = bearer(admin)
    response = _patch(client, headers, admin.id, {"name": "Renamed Admin", "role": "admin", "is_active": True})
    assert response.status_code == 200
    assert response.get_json()["name"] == "Renamed Admin"
    assert response.get_json()["role"] == "admin"


def test_an_admin_may_demote_and_disable_another_admin(client, bearer, make_user, make_site):
    site = make_site()
    admin, other, third = make_user(Role.ADMIN), make_user(Role.ADMIN), make_user(Role.ADMIN)
    headers = bearer(admin)
    demoted = _patch(client, headers, other.id, {"role": "clinician", "site_ids": [site.id]})
    assert demoted.status_code == 200
    assert demoted.get_json()["role"] == "clinician"
    disabled = _patch(client, headers, third.id, {"is_active": False})
    assert disabled.status_code == 200
    assert disabled.get_json()["is_active"] is False


def test_the_last_active_admin_keeps_their_rights(client, bearer, make_user, make_site):
    site = make_site()
    admin, other = make_user(Role.ADMIN), make_user(Role.ADMIN)
    headers = bearer(admin)
    other_headers = bearer(other)
    assert _patch(client, headers, other.id, {"is_active": False}).status_code == 200
    # The remaining administrator can be neither demoted nor disabled.
    _assert_conflict(_patch(client, headers, admin.id, {"role": "intake", "site_ids": [site.id]}), "role")
    _assert_conflict(_patch(client, headers, admin.id, {"is_active": False}), "is_active")
    # A disabled administrator no longer counts, and no longer acts.
    assert _patch(client, other_headers, admin.id, {"is_active": False}).status_code == 401
    # Changing the disabled administrator takes rights from nobody: allowed.
    demoted = _patch(client, headers, other.id, {"role": "clinician", "site_ids": [site.id]})
    assert demoted.status_code == 200
    assert client.get("/api/v1/auth/me", headers=headers).get_json()["user"]["role"] == "admin"


def test_a_refused_change_of_admin_rights_is_audited(client, bearer, make_user):
    admin = make_user(Role.ADMIN)
    headers = bearer(admin)
    assert _patch(client, headers, admin.id, {"is_active": False}).status_code == 409
    events = client.get(
        f"/api/v1/audit-events?user_id={admin.id}&action=user.update&outcome=denied", headers=headers
    ).get_json()["items"]
    assert [(e["resource_id"], e["details"]) for e in events] == [
        (str(admin.id), {"fields": ["is_active"], "refused": "own-admin-rights"})
    ]
