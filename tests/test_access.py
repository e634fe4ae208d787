"""Access control in one place: every route declares a permission, roles map to permissions,
and client data is reached only through the site-scoping helper (out of scope -> 404)."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.exceptions import HTTPException

from clinic import create_app
from clinic.auth.models import Role, User
from clinic.auth.permissions import (
    PERMISSION_ATTR,
    ROLE_PERMISSIONS,
    Permission,
    get_scoped_or_404,
    scoped_select,
    site_scope,
)
from clinic.extensions import db


def test_every_route_declares_its_permission():
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    undeclared = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, PERMISSION_ATTR):
            undeclared.append(f"{rule.rule} ({rule.endpoint})")
    assert undeclared == [], "routes without a permission declaration: " + ", ".join(undeclared)


def test_only_a_few_routes_are_public():
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    public = sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], PERMISSION_ATTR) == frozenset()
    )
    # The SMS webhook checks the provider's signature; a reminder's page checks its signed token; the
    # console's sign-in form and its static files (assets, the icon) are all a signed-out browser gets.
    # The FHIR CapabilityStatement describes the server, as every FHIR server's does, and no client.
    assert public == [
        "/api/docs", "/api/docs/assets/<path:filename>", "/api/v1/auth/login", "/api/v1/fhir/metadata",
        "/api/v1/notify/sms/inbound",
        "/api/v1/openapi.json", "/assets/<path:filename>", "/favicon.ico", "/healthz", "/login", "/login",
        "/r/<token>", "/r/<token>", "/readyz",
    ]


def test_role_permission_map():
    assert Permission.CLINICAL_READ in ROLE_PERMISSIONS[Role.CLINICIAN]
    assert Permission.CLINICAL_READ not in ROLE_PERMISSIONS[Role.INTAKE]
    assert Permission.CLIENTS_READ in ROLE_PERMISSIONS[Role.INTAKE]
    # Administrators manage the program; they see clients only as aggregates in reports.
    assert Permission.CLIENTS_READ not in ROLE_PERMISSIONS[Role.ADMIN]
    assert Permission.CLINICAL_READ not in ROLE_PERMISSIONS[Role.ADMIN]
    assert Permission.USERS_MANAGE not in ROLE_PERMISSIONS[Role.CLINICIAN]
    assert all(Permission.SELF in perms for perms in ROLE_PERMISSIONS.values())


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/users"), ("post", "/api/v1/sites"), ("get", "/api/v1/audit-events"), ("get", "/api/v1/sites")],
)
@pytest.mark.parametrize("role", ["clinician", "intake"])
def test_staff_cannot_use_admin_endpoints(client, bearer, make_user, make_site, method, path, role):
    user = make_user(role, sites=[make_site()])
    response = getattr(client, method)(path, headers=bearer(user), json={})
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"


def test_signed_out_callers_get_401(client):
    for path in ("/api/v1/auth/me", "/api/v1/users", "/api/v1/sites", "/api/v1/audit-events"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


class _ProbeBase(DeclarativeBase):
    metadata = MetaData()


class ClientRecordProbe(_ProbeBase):
    """A stand-in for a client-data table (any table with a site_id)."""

    __tablename__ = "scope_probe"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(50))


@pytest.fixture
def probe_rows(app, make_site):
    home, other = make_site(), make_site()
    with app.app_context():
        _ProbeBase.metadata.create_all(db.session.connection())
        db.session.add_all(
            [
                ClientRecordProbe(id=1, site_id=home.id, note="home"),
                ClientRecordProbe(id=2, site_id=other.id, note="other"),
            ]
        )
        db.session.commit()
    return home, other


def test_scoped_helper_returns_rows_of_the_users_sites_only(app, make_user, probe_rows):
    home, _other = probe_rows
    clinician = make_user("clinician", sites=[home])
    with app.test_request_context():
        user = db.session.get(User, clinician.id)
        assert site_scope(user) == {home.id}
        assert [r.note for r in db.session.scalars(scoped_select(ClientRecordProbe, user))] == ["home"]
        assert get_scoped_or_404(ClientRecordProbe, 1, user).note == "home"
        with pytest.raises(HTTPException) as out_of_scope:
            get_scoped_or_404(ClientRecordProbe, 2, user)
        with pytest.raises(HTTPException) as missing:
            get_scoped_or_404(ClientRecordProbe, 999, user)
    # Out of scope and missing look the same.
    assert out_of_scope.value.code == missing.value.code == 404


def test_admins_see_no_individual_client_records(app, make_user, probe_rows):
    home, other = probe_rows
    admin = make_user("admin", sites=[home, other])
    with app.test_request_context():
        user = db.session.get(User, admin.id)
        assert site_scope(user) == frozenset()
        assert list(db.session.scalars(scoped_select(ClientRecordProbe, user))) == []


def test_a_disabled_user_sees_nothing(app, make_user, probe_rows):
    home, _ = probe_rows
    clinician = make_user("clinician", sites=[home])
    with app.test_request_context():
        user = db.session.get(User, clinician.id)
        user.is_active = False
        assert site_scope(user) == frozenset()
        db.session.rollback()
