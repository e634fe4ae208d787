"""What every console page shares: where sign-in and the site switcher send the browser, the error
pages htmx is told to show, the API's errors kept as problem+json, CSRF on the frame's own forms,
and GET pages that change nothing."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from clinic.audit.models import AuditEvent
from clinic.clients.models import Client
from clinic.console import _CONSOLE_BLUEPRINTS, SITE_COOKIE, as_id, as_number
from clinic.console.errors import safe_next
from clinic.extensions import db
from tests.appointments_setup import Practice, at, build_practice, register
from tests.conftest import PASSWORD

HTMX = {"HX-Request": "true"}
HTML = {"Accept": "text/html,application/xhtml+xml"}

#: Addresses that lead off the site (or could, once a browser has tidied them).
ELSEWHERE = [
    "//evil.example", "/\\evil.example", "\\\\evil.example", "https://evil.example/", "http:evil.example",
    "/%2F%2Fevil.example", "/%2f/evil.example", "/%5Cevil.example", "/\t/evil.example", "/\n/evil.example",
    "/%09/evil.example", "/\r\n/evil.example", " //evil.example", "javascript:alert(1)", "evil.example",
]


@pytest.fixture
def practice(client: Any, make_site: Any, make_user: Any, bearer: Any) -> Practice:
    return build_practice(client, make_site, make_user, bearer)


def _sign_in_form(http: Any, query: str = "") -> str:
    """GET /login: the page, with its double-submit token cookie set on ``http``."""
    response = http.get("/login" + query)
    assert response.status_code == 200
    html: str = response.get_data(as_text=True)
    return html


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


# --- where the browser is sent ------------------------------------------------------------------


@pytest.mark.parametrize("target", ELSEWHERE)
def test_next_never_leads_off_the_site(target: str) -> None:
    assert safe_next(target) is None


def test_next_keeps_a_path_and_its_query_but_never_search_terms() -> None:
    assert safe_next("/today") == "/today"
    assert safe_next("/schedule?date=2026-03-04&view=week") == "/schedule?date=2026-03-04&view=week"
    assert safe_next("/clients?q=Smith&status=active") == "/clients?status=active"
    assert safe_next("/clients?q=555-0134") == "/clients"


@pytest.mark.parametrize("target", ELSEWHERE[:10])
def test_signing_in_with_a_next_elsewhere_goes_home(app: Flask, practice: Practice, target: str) -> None:
    http = app.test_client()
    html = _sign_in_form(http, "?" + "next=" + target.replace("%", "%25").replace("&", "%26"))
    assert "evil.example" not in html  # the form does not carry it on
    response = http.post("/login", data={"csrf_token": _token(html), "email": practice.clinician.email,
                                         "password": PASSWORD, "next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == "/today"


def test_signing_in_without_the_forms_token_signs_nobody_in(app: Flask, practice: Practice) -> None:
    http = app.test_client()
    html = _sign_in_form(http)
    credentials = {"email": practice.clinician.email, "password": PASSWORD}
    for token in (None, "", "forged-" + _token(html)):
        data = credentials if token is None else {**credentials, "csrf_token": token}
        response = http.post("/login", data=data)
        assert response.status_code == 400
        assert "The sign-in form had expired" in response.get_data(as_text=True)
        assert app.config["AUTH_COOKIE_NAME"] not in response.headers.get("Set-Cookie", "").split("=")[0]
    assert http.get("/account").status_code == 303  # still signed out
    with app.app_context():
        assert db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("%login%"))).all() == []


def test_signing_in_returns_to_the_page_asked_for(app: Flask, practice: Practice) -> None:
    http = app.test_client()
    html = _sign_in_form(http, "?next=%2Fschedule%3Fview%3Dweek")
    response = http.post("/login", data={"csrf_token": _token(html), "email": practice.clinician.email,
                                         "password": PASSWORD, "next": "/schedule?view=week"})
    assert response.headers["Location"] == "/schedule?view=week"
    # Signed in already, /login sends to next the same way (and elsewhere never).
    assert http.get("/login?next=%2Fintake").headers["Location"] == "/intake"
    assert http.get("/login?next=%2F%2Fevil.example").headers["Location"] == "/today"


def test_signed_out_search_terms_stay_out_of_the_sign_in_address(client: Any) -> None:
    response = client.get("/clients?q=Smith&status=active", headers=HTML)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=%2Fclients%3Fstatus%3Dactive"
    assert "Smith" not in response.headers["Location"]


def test_signed_out_htmx_returns_to_the_page_it_updates_not_the_fragment(client: Any) -> None:
    response = client.get("/clients/search?q=Smith", headers={
        **HTMX, "HX-Current-URL": "http://localhost/schedule?view=week&q=Smith"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=%2Fschedule%3Fview%3Dweek"
    posted = client.post("/today/appointments/1/check-in", headers={**HTMX, "HX-Current-URL": "http://localhost/today"})
    assert posted.status_code == 204 and posted.headers["HX-Redirect"] == "/login?next=%2Ftoday"
    foreign = client.get("/today", headers={**HTMX, "HX-Current-URL": "https://evil.example/today"})
    assert foreign.headers["HX-Redirect"] == "/login"


def test_the_site_switcher_returns_to_the_page_without_search_terms(
    practice: Practice, make_site: Any, make_user: Any, login: Any
) -> None:
    second = make_site()
    both = login(make_user("intake", sites=[practice.site, second]))
    response = both.post("/account/site", data={"site_id": str(second.id)},
                         headers={"Referer": "http://localhost/clients?q=Brown&status=active"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/clients?status=active"
    assert f"{SITE_COOKIE}={second.id}" in response.headers["Set-Cookie"]
    for referrer in ("https://evil.example/today", "http://localhost//evil.example", "http://localhost/\t/evil.example"):
        elsewhere = both.post("/account/site", data={"site_id": str(second.id)}, headers={"Referer": referrer})
        assert elsewhere.headers["Location"] == "/intake", referrer
    # The switcher in the top bar names the page it is on (its path: no filters, no search terms).
    page = both.get("/clients?q=Brown", headers=HTML).get_data(as_text=True)
    assert '<input type="hidden" name="next" value="/clients">' in page
    named = both.post("/account/site", data={"site_id": str(second.id), "next": "/schedule?view=week&q=Brown"})
    assert named.headers["Location"] == "/schedule?view=week"
    for target in ELSEWHERE:
        elsewhere = both.post("/account/site", data={"site_id": str(second.id), "next": target})
        assert elsewhere.headers["Location"] == "/intake", target


def test_the_site_switcher_takes_only_the_users_own_sites(practice: Practice, make_site: Any, login: Any) -> None:
    other = make_site()
    session = login(practice.clinician)
    foreign = session.post("/account/site", data={"site_id": str(other.id)}, headers=HTML)
    assert foreign.status_code == 404
    assert "Set-Cookie" not in foreign.headers or SITE_COOKIE not in foreign.headers["Set-Cookie"]
    for junk in ("", "abc", "\u00b2", "9" * 5000, "-1"):
        refused = session.post("/account/site", data={"site_id": junk}, headers=HTML)
        assert refused.status_code in (404, 422), junk


@pytest.mark.parametrize("cookie", ["\u00b2", "9" * 3000, "-4", "abc", "0"])
def test_a_site_cookie_that_names_no_site_of_the_user_is_ignored(practice: Practice, login: Any, cookie: str) -> None:
    session = login(practice.clinician)
    session.client.set_cookie(SITE_COOKIE, cookie)
    response = session.get("/today")
    assert response.status_code == 200
    assert practice.site.name in response.get_data(as_text=True)


def test_ids_and_numbers_typed_are_read_as_ascii_digits_only() -> None:
    assert as_id("12") == 12 and as_id(" 7 ") == 7
    assert as_id("\u00b2") is None and as_id("\u0663") is None  # isdigit() is true for both; int() refuses one
    assert as_id("9" * 5000) is None and as_id(str(2**31)) is None and as_id("0") is None and as_id("-3") is None
    assert as_number("60") == 60 and as_number("\u00b2") == "\u00b2" and as_number("9" * 5000) == "9" * 5000


# --- error pages and htmx -----------------------------------------------------------------------


def test_htmx_is_sent_to_the_not_found_page_instead_of_nothing_happening(practice: Practice, login: Any) -> None:
    booked = practice.booked_ok(starts_at=at(days=2))
    outsider = login(practice.outsider)
    page = outsider.get(f"/appointments/{booked['id']}?q=Brown", headers={**HTMX, **HTML})
    assert page.status_code == 404
    assert page.headers["HX-Redirect"] == f"/appointments/{booked['id']}"  # a full load shows the page
    assert "Page not found" in page.get_data(as_text=True)
    posted = outsider.post(f"/today/appointments/{booked['id']}/check-in", headers=HTMX)
    assert posted.status_code == 404 and posted.headers["HX-Refresh"] == "true"
    plain = outsider.get(f"/appointments/{booked['id']}", headers=HTML)
    assert plain.status_code == 404 and "HX-Redirect" not in plain.headers and "HX-Refresh" not in plain.headers


def test_htmx_is_sent_to_the_forbidden_page(practice: Practice, login: Any) -> None:
    desk = login(practice.intake)
    page = desk.get(f"/clients/{practice.ada['id']}/episodes", headers=HTMX)
    assert page.status_code == 403 and page.headers["HX-Redirect"] == f"/clients/{practice.ada['id']}/episodes"
    forgotten = desk.client.post(f"/appointments/{practice.booked_ok()['id']}/confirm", headers=HTMX)
    assert forgotten.status_code == 403 and forgotten.headers["HX-Refresh"] == "true"  # a fresh token comes with it


def test_api_paths_answer_problem_json_even_to_a_browser(practice: Practice, login: Any, client: Any) -> None:
    session = login(practice.clinician)
    foreign = register(client, practice.outsider_headers, practice.outsider.sites[0], first_name="Fay",
                       last_name="Faraway", date_of_birth="1990-02-02")
    answers = [
        client.get("/api/v1/clients", headers=HTML),  # signed out
        session.get(f"/api/v1/clients/{foreign['id']}", headers=HTML),  # outside the scope
        session.get("/api/v1/no-such-thing", headers=HTML),
        session.client.post("/api/v1/clients", headers=HTML, json={}),  # no CSRF token
        session.client.put("/api/v1/clients", headers=HTML),  # no such method
        login(practice.intake).get(f"/api/v1/clients/{practice.ada['id']}/episodes", headers=HTML),  # no right
    ]
    assert [answer.status_code for answer in answers] == [401, 404, 404, 403, 405, 403]
    for answer in answers:
        assert answer.mimetype == "application/problem+json"
        assert "HX-Redirect" not in answer.headers
    # Outside /api/, the browser gets the page.
    missing = session.get("/no-such-page", headers=HTML)
    assert missing.status_code == 404 and missing.mimetype == "text/html"


# --- CSRF and GET -------------------------------------------------------------------------------


def test_the_frames_forms_without_the_csrf_token_are_refused_and_change_nothing(
    app: Flask, practice: Practice, make_site: Any, make_user: Any, login: Any
) -> None:
    second = make_site()
    session = login(make_user("clinician", sites=[practice.site, second]))
    switched = session.client.post("/account/site", data={"site_id": str(second.id)}, headers=HTML)
    assert switched.status_code == 403
    assert "The form was out of date" in switched.get_data(as_text=True)
    assert SITE_COOKIE not in switched.headers.get("Set-Cookie", "")
    out = session.client.post("/logout", headers=HTML)
    assert out.status_code == 403
    assert session.get("/account").status_code == 200  # still signed in
    changed = session.client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "violet tractor pebble lantern",
        "confirm_password": "violet tractor pebble lantern"}, headers=HTML)
    assert changed.status_code == 403
    assert session.get("/account").status_code == 200  # the password change would have ended the session
    with app.app_context():
        denied = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
        assert {event.details["path"] for event in denied} >= {"/account/site", "/logout", "/account/password"}


#: Tables a GET may write: the audit trail, the session's last activity, a token's last use.
_WRITTEN_BY_ANY_REQUEST = {"audit_events", "user_sessions", "api_tokens", "worker_heartbeats"}


def _fingerprint(app: Flask) -> dict[str, str]:
    """A digest of every row of every table a page could change."""
    digests = {}
    with app.app_context():
        for name, table in sorted(db.metadata.tables.items()):
            if name in _WRITTEN_BY_ANY_REQUEST:
                continue
            rows = db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
            digests[name] = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
        db.session.execute(text("SELECT 1"))
    return digests


def test_no_console_get_changes_anything(
    app: Flask, practice: Practice, make_user: Any, login: Any, client: Any
) -> None:
    booked = practice.booked_ok(starts_at=at(days=2))
    group = practice.booked_ok(starts_at=at(days=3), kind="group_therapy", client_id=None,
                               client_ids=[practice.ada["id"]], capacity=4)
    call = client.post("/api/v1/intake-calls", headers=practice.intake_headers, json={
        "site_id": practice.site.id, "direction": "inbound", "occurred_at": at(hours=-1).isoformat(),
        "caller_name": "Sam Ortiz", "caller_relation": "self", "callback_phone": "(212) 555-0134",
        "referral_source": "emergency department", "reason": "wants help", "substances": [], "risk_flags": [],
        "outcome": "callback_requested", "follow_up_at": at(hours=-1).isoformat()}).get_json()
    ids = {"client_id": practice.ada["id"], "call_id": call["id"], "appointment_id": booked["id"],
           "user_id": practice.clinician.id, "site_id": practice.site.id}
    routes = [(rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
              if "GET" in (rule.methods or set()) and rule.endpoint.split(".")[0] in _CONSOLE_BLUEPRINTS]
    assert len(routes) >= 25
    people = [login(practice.clinician), login(practice.intake), login(make_user("admin"))]
    before = _fingerprint(app)
    visited = 0
    for rule, endpoint in routes:
        if endpoint == "auth_pages.login_form":
            continue
        names = re.findall(r"<(?:\w+:)?(\w+)>", rule)
        if any(name not in ids for name in names):
            continue  # a page of another area, with ids this test does not make
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(ids[match.group(1)]), rule)
        if endpoint == "booking_pages.seats":
            url = url.replace(str(booked["id"]), str(group["id"]))
        for person in people:
            for headers in (HTML, {**HTML, **HTMX}):
                response = person.get(url, headers=headers)
                assert response.status_code < 500, (url, response.status_code)
                visited += 1
    assert visited >= 100
    assert _fingerprint(app) == before


@pytest.mark.parametrize("typed", ["Brown\x00", "Brown\u202e", "Br\u200bown", "Brown\x07"],
                         ids=["nul", "bidi-override", "zero-width", "control"])
def test_a_form_field_refuses_the_characters_a_json_string_may_not_hold(
    app: Flask, practice: Practice, login: Any, typed: str
) -> None:
    desk = login(practice.intake)
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Client))
    response = desk.post("/clients/new", headers=HTML, data={
        "first_name": "Ada", "last_name": typed, "date_of_birth": "1980-01-01", "site_id": str(practice.site.id)})
    assert response.status_code == 422
    assert response.mimetype == "text/html" and "Last name:" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Client)) == before
