"""The administrators' console pages: sites and users, as an administrator sees and changes them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Role, Site, User
from clinic.extensions import db
from tests.conftest import PASSWORD

NEW_PASSWORD = "violet tractor pebble lantern"


def _user(app: Any, user_id: int) -> User:
    with app.app_context():
        row = db.session.get(User, user_id)
        assert row is not None
        _ = row.sites
        db.session.expunge_all()
        return row


def _site(app: Any, name: str) -> Site | None:
    with app.app_context():
        row = db.session.scalars(select(Site).where(Site.name == name)).first()
        if row is not None:
            db.session.expunge(row)
        return row


def _field_error(html: str, field: str) -> str:
    """The message shown beside ``field`` (the console's macros give it the id ``<field>-error``)."""
    found = re.search(rf'id="{field}-error"><span class="visually-hidden">Error:</span> ([^<]*)</p>', html)
    assert found, f"no error beside {field}"
    return found.group(1).strip()


@pytest.fixture
def admin(make_user: Any) -> User:
    user: User = make_user(Role.ADMIN, name="Ada Admin")
    return user


# --- the home page -------------------------------------------------------------------------------


def test_the_admin_home_lists_the_sites_and_the_accounts(login: Any, admin: User, make_site: Any, make_user: Any) -> None:
    site = make_site(name="Brookside Main", display_name="Brookside Health", is_otp=True)
    clinician = make_user(Role.CLINICIAN, sites=[site], name="Cora Clinician", is_supervisor=True)
    response = login(admin).get("/admin")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<h1>Administration</h1>" in html
    assert f'href="/admin/sites/{site.id}">Brookside Main</a>' in html
    assert "Brookside Health" in html and "America/New_York" in html
    assert f'href="/admin/users/{clinician.id}">Cora Clinician</a>' in html
    assert clinician.email in html
    assert 'href="/admin/users/new"' in html and 'href="/admin/sites/new"' in html


def test_the_accounts_are_paged_with_next_as_the_api_pages_them(login: Any, admin: User, make_user: Any) -> None:
    others = [make_user(Role.ADMIN, name=f"Paged Person {n}") for n in range(3)]
    session = login(admin)
    first = session.get("/admin?limit=2").get_data(as_text=True)
    assert "Paged Person 0" in first and "Paged Person 2" not in first  # by id: the admin, then the first other
    next_link = re.search(r'href="([^"]*users_cursor=[^"]*)" rel="next"', first)
    assert next_link
    second = session.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Paged Person 1" in second and "Paged Person 2" in second and "Paged Person 0" not in second
    assert "First page of users" in second
    assert len(others) == 3


def test_a_forged_cursor_is_a_page_saying_what_was_wrong(login: Any, admin: User) -> None:
    response = login(admin).get("/admin?users_cursor=forged")
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    assert "Not a cursor this list returned." in response.get_data(as_text=True)


# --- sites ---------------------------------------------------------------------------------------


def test_an_admin_adds_a_site_with_its_zone_and_rules(app: Any, login: Any, admin: User) -> None:
    session = login(admin)
    form = session.get("/admin/sites/new").get_data(as_text=True)
    assert '<option value="America/Chicago">America/Chicago (Central)</option>' in form
    assert "must not reveal the kind of program" in form
    response = session.post("/admin/sites", data={
        "name": "Northgate Recovery Center", "display_name": "Northgate Health", "timezone": "America/Chicago",
        "is_otp": "true",
    })
    assert response.status_code == 303
    site = _site(app, "Northgate Recovery Center")
    assert site is not None
    assert response.headers["Location"] == f"/admin/sites/{site.id}?done=created"
    assert (site.display_name, site.timezone, site.is_otp, site.requires_supervisor_signature) == (
        "Northgate Health", "America/Chicago", True, False)
    shown = session.get(response.headers["Location"]).get_data(as_text=True)
    assert "The site has been added." in shown


def test_a_site_form_with_mistakes_keeps_what_was_typed(app: Any, login: Any, admin: User) -> None:
    response = login(admin).post("/admin/sites", data={
        "name": "  ", "display_name": "Eastside Health", "timezone": "Mars/Olympus", "requires_supervisor_signature": "true",
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert _field_error(html, "name") == "Enter the site&#39;s name."
    assert _field_error(html, "timezone") == "Not an IANA time zone, e.g. America/New_York."
    assert 'value="Eastside Health"' in html
    assert re.search(r'id="requires_supervisor_signature" name="requires_supervisor_signature" type="checkbox" value="true" checked', html)
    assert _site(app, "Eastside Health") is None


def test_a_site_name_in_use_is_refused_beside_the_name(login: Any, admin: User, make_site: Any) -> None:
    make_site(name="Twin Oaks")
    response = login(admin).post("/admin/sites", data={"name": "twin oaks", "timezone": "America/Denver"})
    assert response.status_code == 409
    assert _field_error(response.get_data(as_text=True), "name") == "Already taken."


def test_an_admin_edits_a_site_and_the_audit_names_what_changed(app: Any, login: Any, admin: User, make_site: Any) -> None:
    site = make_site(name="Westfield", is_otp=True)
    session = login(admin)
    page = session.get(f"/admin/sites/{site.id}").get_data(as_text=True)
    assert '<option value="America/New_York" selected>' in page
    response = session.post(f"/admin/sites/{site.id}", data={
        "name": "Westfield", "display_name": "Westfield Wellness", "timezone": "America/Los_Angeles",
    })  # the OTP box unticked
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/sites/{site.id}?done=saved"
    changed = _site(app, "Westfield")
    assert changed is not None
    assert (changed.display_name, changed.timezone, changed.is_otp) == ("Westfield Wellness", "America/Los_Angeles", False)
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource == "site", AuditEvent.resource_id == str(site.id),
                                     AuditEvent.action == "site.update")
        ).one()
        assert event.details["fields"] == ["display_name", "is_otp", "timezone"]


# --- users ---------------------------------------------------------------------------------------


def test_an_admin_creates_a_clinician_who_can_then_sign_in(
    app: Any, client: Any, login: Any, admin: User, make_site: Any
) -> None:
    first, second = make_site(), make_site()
    session = login(admin)
    form = session.get("/admin/users/new").get_data(as_text=True)
    assert "At least 12 characters" in form
    assert f'value="{first.id}"' in form and f'value="{second.id}"' in form
    response = session.post("/admin/users", data={
        "name": "Nina Newhire", "email": "Nina.Newhire@example.org", "role": "clinician",
        "site_ids": [str(first.id), str(second.id)], "is_supervisor": "true", "password": NEW_PASSWORD,
    })
    assert response.status_code == 303
    user_id = int(re.fullmatch(r"/admin/users/(\d+)\?done=created", response.headers["Location"]).group(1))  # type: ignore[union-attr]
    created = _user(app, user_id)
    assert (created.email, created.role, sorted(created.site_ids), created.is_supervisor, created.is_active) == (
        "nina.newhire@example.org", Role.CLINICIAN, sorted([first.id, second.id]), True, True)
    shown = session.get(response.headers["Location"]).get_data(as_text=True)
    assert "The account has been created." in shown
    assert f'href="/admin/users/{user_id}/working-hours"' in shown
    signed_in = client.post("/api/v1/auth/login", json={"email": "nina.newhire@example.org", "password": NEW_PASSWORD})
    assert signed_in.status_code == 200


def test_a_user_form_with_mistakes_shows_each_beside_its_field_and_keeps_the_rest(
    app: Any, login: Any, admin: User, make_site: Any
) -> None:
    site = make_site()
    response = login(admin).post("/admin/users", data={
        "name": "Kept Name", "email": "not-an-email", "site_ids": [str(site.id)], "is_supervisor": "true",
        "password": NEW_PASSWORD,
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _field_error(html, "email") == "Not a valid email address."
    assert _field_error(html, "role") == "Choose a role."
    assert '<a href="#email">Email address: Not a valid email address.</a>' in html
    assert 'value="Kept Name"' in html and 'value="not-an-email"' in html
    assert re.search(rf'name="site_ids" type="checkbox" value="{site.id}" checked', html)
    assert re.search(r'id="is_supervisor" name="is_supervisor" type="checkbox" value="true" checked', html)
    assert NEW_PASSWORD not in html  # a password is never sent back
    with app.app_context():
        assert db.session.scalar(select(User).where(User.name == "Kept Name")) is None


def test_the_operations_refusals_are_shown_beside_their_fields(login: Any, admin: User, make_user: Any) -> None:
    session = login(admin)
    common = session.post("/admin/users", data={
        "name": "Paula Password", "email": "paula@example.org", "role": "admin", "password": "password1234",
    })
    assert common.status_code == 422
    assert "too common" in _field_error(common.get_data(as_text=True), "password")
    no_site = session.post("/admin/users", data={
        "name": "Sam Siteless", "email": "sam@example.org", "role": "intake", "password": NEW_PASSWORD,
    })
    assert no_site.status_code == 422
    assert _field_error(no_site.get_data(as_text=True), "site_ids") == "At least one site is required for this role."
    taken = make_user(Role.ADMIN, email="taken@example.org")
    duplicate = session.post("/admin/users", data={
        "name": "Dup", "email": taken.email, "role": "admin", "password": NEW_PASSWORD,
    })
    assert duplicate.status_code == 409
    assert _field_error(duplicate.get_data(as_text=True), "email") == "Already taken."


def test_an_admin_changes_a_users_role_sites_and_supervision(
    app: Any, login: Any, admin: User, make_site: Any, make_user: Any
) -> None:
    first, second = make_site(), make_site()
    target = make_user(Role.CLINICIAN, sites=[first], name="Rolf Role")
    session = login(admin)
    page = session.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert "<h1>Rolf Role</h1>" in page
    assert re.search(r'name="role" type="radio" value="clinician" checked', page)
    response = session.post(f"/admin/users/{target.id}", data={
        "name": "Rolf Role", "email": target.email, "role": "intake", "site_ids": [str(second.id)],
        "is_supervisor": "true",
    })
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/users/{target.id}?done=saved"
    changed = _user(app, target.id)
    assert (changed.role, changed.site_ids, changed.is_supervisor) == (Role.INTAKE, [second.id], True)
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.resource == "user", AuditEvent.resource_id == str(target.id),
                                     AuditEvent.action == "user.update")
        ).one()
        assert event.details["fields"] == ["is_supervisor", "role", "site_ids"]


def test_an_edit_with_mistakes_keeps_what_was_typed(login: Any, admin: User, make_site: Any, make_user: Any) -> None:
    site = make_site()
    target = make_user(Role.CLINICIAN, sites=[site])
    response = login(admin).post(f"/admin/users/{target.id}", data={
        "name": "", "email": "renamed@example.org", "role": "clinician",
    })  # every site unticked
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _field_error(html, "name") == "Enter their full name."
    assert 'value="renamed@example.org"' in html


def test_disabling_an_account_ends_its_sessions_and_enabling_restores_sign_in(
    app: Any, login: Any, admin: User, make_site: Any, make_user: Any
) -> None:
    target = make_user(Role.INTAKE, sites=[make_site()], name="Dana Disabled")
    theirs = login(target)
    session = login(admin)
    page = session.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert 'data-confirm="Disable Dana Disabled&#39;s account?' in page
    response = session.post(f"/admin/users/{target.id}/active", data={"is_active": "false"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/users/{target.id}?done=disabled"
    assert _user(app, target.id).is_active is False
    assert theirs.get("/api/v1/auth/me").status_code == 401
    shown = session.get(response.headers["Location"]).get_data(as_text=True)
    assert "The account has been disabled." in shown and "Enable account" in shown
    assert session.post(f"/admin/users/{target.id}/active", data={"is_active": "true"}).status_code == 303
    assert _user(app, target.id).is_active is True
    login(target)  # signs in again with the same password


def test_resetting_a_password_ends_their_sessions_and_the_new_one_works(
    app: Any, client: Any, login: Any, admin: User, make_site: Any, make_user: Any
) -> None:
    target = make_user(Role.CLINICIAN, sites=[make_site()], name="Rita Reset")
    theirs = login(target)
    session = login(admin)
    refused = session.post(f"/admin/users/{target.id}/password", data={"password": "password1234"})
    assert refused.status_code == 422
    assert "too common" in _field_error(refused.get_data(as_text=True), "password")
    assert theirs.get("/api/v1/auth/me").status_code == 200  # nothing changed
    empty = session.post(f"/admin/users/{target.id}/password", data={"password": ""})
    assert empty.status_code == 422
    assert _field_error(empty.get_data(as_text=True), "password") == "Enter a new password."
    response = session.post(f"/admin/users/{target.id}/password", data={"password": NEW_PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/users/{target.id}?done=password"
    assert theirs.get("/api/v1/auth/me").status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": target.email, "password": PASSWORD}).status_code == 401
    login(target, NEW_PASSWORD)


def test_an_admin_cannot_take_their_own_rights_and_the_page_says_why(
    app: Any, login: Any, admin: User, make_site: Any
) -> None:
    site = make_site()
    session = login(admin)
    demoted = session.post(f"/admin/users/{admin.id}", data={
        "name": admin.name, "email": admin.email, "role": "clinician", "site_ids": [str(site.id)],
    })
    assert demoted.status_code == 409
    html = demoted.get_data(as_text=True)
    assert demoted.mimetype == "text/html" and "There is a problem" in html
    assert "You cannot take away your own administrator rights; another administrator can." in html
    assert _field_error(html, "role") == "Not for your own account."
    assert re.search(r'name="role" type="radio" value="clinician" checked', html)  # what was chosen is kept
    disabled = session.post(f"/admin/users/{admin.id}/active", data={"is_active": "false"})
    assert disabled.status_code == 409
    assert "The account was not changed" in disabled.get_data(as_text=True)
    assert "You cannot take away your own administrator rights" in disabled.get_data(as_text=True)
    still = _user(app, admin.id)
    assert (still.role, still.is_active) == (Role.ADMIN, True)
    assert session.get("/admin").status_code == 200  # still signed in, still an administrator


def test_an_unknown_account_or_site_is_the_not_found_page(login: Any, admin: User) -> None:
    session = login(admin)
    for path in ("/admin/users/999999", "/admin/sites/999999"):
        response = session.get(path)
        assert response.status_code == 404
        assert "Page not found" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.INTAKE])
def test_staff_who_are_not_administrators_get_the_forbidden_page(
    app: Any, login: Any, make_site: Any, make_user: Any, role: Role
) -> None:
    site = make_site()
    session = login(make_user(role, sites=[site]))
    for path in ("/admin", "/admin/users/new", f"/admin/sites/{site.id}", f"/admin/users/{session.user.id}"):
        response = session.get(path)
        assert response.status_code == 403, path
        assert "You cannot do this" in response.get_data(as_text=True)
    created = session.post("/admin/users", data={
        "name": "Sneaky", "email": "sneaky@example.org", "role": "admin", "password": NEW_PASSWORD,
    })
    assert created.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "sneaky@example.org")) is None


def test_signed_out_the_admin_pages_ask_for_a_sign_in(client: Any) -> None:
    response = client.get("/admin", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=%2Fadmin"


# --- junk and CSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize("junk", ["\u00b2", "9" * 5000, "0", "abc", "2147483647"], ids=["superscript", "huge", "zero", "text", "unknown"])
def test_a_site_that_is_not_a_number_is_said_beside_the_sites(app: Any, login: Any, admin: User, junk: str) -> None:
    response = login(admin).post("/admin/users", data={
        "name": "Odd Sites", "email": "odd.sites@example.org", "role": "clinician", "site_ids": [junk],
        "password": NEW_PASSWORD,
    })
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "site_ids")
    with app.app_context():
        assert db.session.scalar(select(User).where(User.name == "Odd Sites")) is None


def test_admin_forms_without_the_csrf_token_are_refused_and_change_nothing(
    app: Any, login: Any, admin: User, make_user: Any
) -> None:
    session = login(admin)
    other = make_user(Role.ADMIN, name="Still Active")
    created = session.client.post("/admin/users", data={
        "name": "Never Made", "email": "never.made@example.org", "role": "intake", "password": NEW_PASSWORD,
    }, headers={"Accept": "text/html"})
    assert created.status_code == 403 and created.mimetype == "text/html"
    disabled = session.client.post(f"/admin/users/{other.id}/active", data={"is_active": "false"})
    assert disabled.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(User).where(User.name == "Never Made")) is None
    assert _user(app, other.id).is_active
