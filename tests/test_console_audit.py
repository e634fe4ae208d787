"""The console's audit trail: filters by user, client, action, outcome and day, names shown, the
chain's state, administrators only, no client's name, and the reading of the trail audited. The
filter form is posted and an MRN typed in it is resolved to the client's id: no MRN in any address."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.extensions import db
from tests.conftest import Session

TODAY = datetime.now(UTC).date()


@pytest.fixture
def setting(
    make_site: Callable[..., Site], make_user: Callable[..., User], login: Callable[..., Session]
) -> dict[str, Any]:
    site = make_site(name="North Clinic")
    clinician = make_user("clinician", sites=[site], name="Dana Reyes")
    admin = make_user("admin", name="Ada Admin")
    as_clinician = login(clinician)
    made = as_clinician.post(
        "/api/v1/clients?allow_duplicate=true",
        json={"site_id": site.id, "first_name": "Maria", "last_name": "Zebulon", "date_of_birth": "1980-01-01"},
    )
    assert made.status_code == 201, made.get_json()
    client = made.get_json()
    as_clinician.get(f"/api/v1/clients/{client['id']}")
    return {
        "site": site,
        "clinician": as_clinician,
        "clinician_user": clinician,
        "admin": login(admin),
        "admin_user": admin,
        "client": client,
    }


def _main(response: Any) -> str:
    html = response.get_data(as_text=True)
    return html[html.index("<main") : html.index("</main>")]


def _rows(response: Any) -> list[str]:
    main = _main(response)
    body = main[main.index("<tbody>") : main.index("</tbody>")] if "<tbody>" in main else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)]


def test_administrators_only(setting):
    assert setting["clinician"].get("/audit").status_code == 403
    response = setting["admin"].get("/audit")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    assert "times in UTC" in _main(response)


def _filter(session: Session, **fields: Any) -> Any:
    """Post the filter form as a browser does (the CSRF token in the form, as its hidden field)."""
    return session.post("/audit", data={"csrf_token": session.csrf_token, **fields}, headers={"X-CSRF-Token": ""})


def _urls(response: Any) -> list[str]:
    """Every address the response names: its Location, and each href, action and src of its page."""
    found = [response.headers.get("Location") or ""]
    html = response.get_data(as_text=True)
    found += [value.replace("&amp;", "&") for value in re.findall(r'(?:href|action|src)="([^"]*)"', html)]
    return found


def test_filter_by_user_client_action_and_outcome_with_names_and_no_client_name(setting):
    session, client = setting["admin"], setting["client"]
    user_id = setting["clinician_user"].id
    response = session.get("/audit", query_string={"user_id": user_id, "action": "client.read"})
    rows = _rows(response)
    assert rows and all("Dana Reyes" in row and "client.read" in row for row in rows)
    assert f'<option value="{user_id}" selected>Dana Reyes (clinician)</option>' in _main(response)
    # By client id and by MRN (the form, posted): the client's id is shown, never their name.
    by_id = _filter(session, client=str(client["id"]))
    by_mrn = _filter(session, client=client["mrn"])
    assert by_id.status_code == by_mrn.status_code == 303
    assert by_id.headers["Location"] == by_mrn.headers["Location"] == f"/audit?client_id={client['id']}"
    rows = _rows(session.get(by_mrn.headers["Location"]))
    assert rows and rows == _rows(session.get("/audit", query_string={"client_id": client["id"]}))
    assert all(str(client["id"]) in row for row in rows)
    for response in (session.get("/audit"), session.get(by_mrn.headers["Location"])):
        assert "Zebulon" not in _main(response) and "Maria" not in _main(response)
    denied = _rows(session.get("/audit", query_string={"outcome": "denied", "user_id": user_id}))
    assert all("Denied" in row for row in denied)


def test_an_mrn_is_posted_resolved_and_never_in_an_address(setting, monkeypatch):
    from clinic.system import audit_pages

    session, client = setting["admin"], setting["client"]
    mrn = client["mrn"]
    for _ in range(3):
        setting["clinician"].get(f"/api/v1/clients/{client['id']}")
    monkeypatch.setattr(audit_pages, "LIMIT", 2)
    form = session.get("/audit")
    assert re.search(r'<form class="filters" method="post"', _main(form))
    assert 'name="csrf_token"' in _main(form)
    posted = _filter(
        session, client=f" {mrn[:4]}-{mrn[4:]} ", action="client.read", user_id=setting["clinician_user"].id
    )
    assert posted.status_code == 303
    location = posted.headers["Location"]
    assert f"client_id={client['id']}" in location and "action=client.read" in location
    seen = [posted]
    shown = session.get(location)
    assert shown.status_code == 200 and len(_rows(shown)) == 2
    assert all("client.read" in row and str(client["id"]) in row for row in _rows(shown))
    # The filter shows the client it stands for (their id: an administrator sees no client's name).
    assert f'name="client" type="text" value="{client["id"]}"' in _main(shown)
    seen.append(shown)
    next_url = re.search(r'href="([^"]+)" rel="next"', _main(shown)).group(1).replace("&amp;", "&")
    assert f"client_id={client['id']}" in next_url
    seen.append(session.get(next_url))
    assert seen[-1].status_code == 200 and _rows(seen[-1])
    for response in seen:
        for url in _urls(response):
            assert mrn not in url.replace("-", ""), url


def test_an_unknown_or_mistyped_mrn_is_an_error_beside_the_field(setting):
    from stdnum import damm

    session, mrn = setting["admin"], setting["client"]["mrn"]
    body = "7654321" if not mrn.startswith("7654321") else "7654322"
    unknown = body + damm.calc_check_digit(body)
    mistyped = body + str((int(damm.calc_check_digit(body)) + 1) % 10)
    for typed, message in ((unknown, "No client has this MRN."), (mistyped, "check digit mismatch")):
        response = _filter(session, client=typed, action="client.read")
        assert response.status_code == 422 and "Location" not in response.headers
        main = _main(response)
        assert 'id="client-error"' in main and message in main
        # The form comes back with what was typed, in the page only.
        assert f'name="client" type="text" value="{typed}"' in main and 'value="client.read"' in main
        assert not _rows(response)
        assert all(typed not in url for url in _urls(response))
    assert _filter(session, client="abc").status_code == 422


def test_resolving_an_mrn_is_audited_as_a_read_of_the_client(app: Flask, setting):
    session, client = setting["admin"], setting["client"]
    with app.app_context():
        since = int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)
    posted = _filter(session, client=client["mrn"])
    session.get(posted.headers["Location"])
    _filter(session, client=str(client["id"]))  # an id is not a read of the client
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id)))
    assert [(e.action, e.client_id, e.user_id, e.details) for e in events] == [
        ("client.read", client["id"], setting["admin_user"].id, {"via": "audit-filter"}),
        ("audit.read", None, setting["admin_user"].id, {"client_id": client["id"]}),
    ]
    assert all(client["mrn"] not in str(e.details) for e in events)


def test_the_filter_form_needs_its_token_and_an_administrator(setting):
    client = setting["client"]
    admin = setting["admin"]
    no_token = admin.post("/audit", data={"client": client["mrn"]}, headers={"X-CSRF-Token": ""})
    assert no_token.status_code == 403 and "Location" not in no_token.headers
    clinician = setting["clinician"]
    refused = clinician.post("/audit", data={"csrf_token": clinician.csrf_token, "client": client["mrn"]})
    assert refused.status_code == 403 and "Location" not in refused.headers


def test_a_client_in_the_address_is_not_read(setting):
    session, mrn = setting["admin"], setting["client"]["mrn"]
    response = session.get("/audit", query_string={"client": mrn})
    assert response.status_code == 422 and not _rows(response)
    main = _main(response)
    assert 'id="client-error"' in main and mrn not in main
    bad = session.get("/audit", query_string={"client_id": "abc"})
    assert bad.status_code == 422 and 'id="client-error"' in _main(bad)


def test_filter_by_day_and_bad_filters_beside_their_fields(setting):
    session = setting["admin"]
    today = _rows(session.get("/audit", query_string={"from": TODAY.isoformat(), "to": TODAY.isoformat()}))
    assert today
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    assert "No audit entries match" in _main(session.get("/audit", query_string={"from": tomorrow}))
    bad = _filter(session, **{"from": tomorrow, "to": TODAY.isoformat(), "client": "abc"})
    assert bad.status_code == 422
    main = _main(bad)
    assert "There is a problem" in main and 'id="to-error"' in main and 'id="client-error"' in main
    assert session.get("/audit", query_string={"from": tomorrow, "to": TODAY.isoformat()}).status_code == 422
    assert _filter(session, client="99999999").status_code == 422
    # A filter that reads well is sent on as the list's address, days and all.
    good = _filter(session, **{"from": TODAY.isoformat(), "to": TODAY.isoformat(), "outcome": "success"})
    assert good.status_code == 303
    assert _rows(session.get(good.headers["Location"]))


def test_the_last_day_of_the_calendar_is_a_filter_not_a_crash(setting):
    session = setting["admin"]
    for day in ("9999-12-31", "0001-01-01"):
        response = session.get("/audit", query_string={"from": day, "to": day})
        assert response.status_code in (200, 422), day
        assert "No audit entries match" in _main(response) or 'id="to-error"' in _main(response)


def test_next_pages_on(setting, monkeypatch):
    from clinic.system import audit_pages

    session = setting["admin"]
    for _ in range(3):
        setting["clinician"].get(f"/api/v1/clients/{setting['client']['id']}")
    monkeypatch.setattr(audit_pages, "LIMIT", 2)
    paged = session.get("/audit", query_string={"action": "client.read"})
    assert len(_rows(paged)) == 2 and "2 entries on this page" in _main(paged)
    next_url = re.search(r'href="([^"]+)" rel="next"', _main(paged)).group(1).replace("&amp;", "&")
    assert "action=client.read" in next_url
    second = session.get(next_url)
    assert second.status_code == 200 and len(_rows(second)) == 2


def test_reading_the_trail_is_audited(app: Flask, setting):
    with app.app_context():
        since = int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)
    setting["admin"].get("/audit", query_string={"action": "client.read"})
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.id > since)))
    assert [(e.action, e.details) for e in events] == [("audit.read", {"action": "client.read"})]


def test_the_chain_panel_and_verifying_on_request(app: Flask, setting):
    from clinic.audit.operations import seal_pending

    session = setting["admin"]
    main = _main(session.get("/audit"))
    assert "Last anchor" in main and "Not verified from the console yet" in main
    with app.app_context():
        seal_pending()
    done = session.post("/audit/verify", data={"csrf_token": session.csrf_token})
    assert done.status_code == 303 and "verified=intact" in done.headers["Location"]
    main = _main(session.get(done.headers["Location"]))
    assert "every entry is intact" in main
    assert re.search(r"Intact.*by Ada Admin: [0-9,]+ entries checked", " ".join(re.sub(r"<[^>]+>", " ", main).split()))
    assert (
        setting["clinician"].post("/audit/verify", data={"csrf_token": setting["clinician"].csrf_token}).status_code
        == 403
    )
