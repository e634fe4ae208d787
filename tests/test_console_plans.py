"""The treatment plan pages: the client's plans, the plan tree, editing with the ETag, signing, revisions, reviews.

What a user notices (the page shows it, a new version is saved, a stale edit shows both versions
and keeps the typed text, errors beside the field, the 404 page out of scope), and that every page
view is audited as the API read of the same data is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clinic.audit.models import AuditEvent
from clinic.auth.models import Site, User
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.plans.models import Plan
from tests.conftest import Session


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(name=f"Riverside {utcnow().timestamp()}")


@pytest.fixture
def clinician(make_user: Callable[..., User], site: Site) -> User:
    return make_user("clinician", sites=[site], name="Dana Reyes")


@pytest.fixture
def signed_in(login: Callable[..., Session], clinician: User) -> Session:
    return login(clinician)


TREE = [
    {
        "description": "Opioid use disorder, severe",
        "goals": [
            {
                "description": "Stop using fentanyl",
                "client_words": "I want to be there for my kids",
                "objectives": [
                    {
                        "description": "Attend dosing six days a week",
                        "target_date": "2026-12-31",
                        "interventions": [
                            {"kind": "mat", "description": "Methadone maintenance", "frequency": "daily"},
                            {"kind": "cbt", "description": "Relapse prevention sessions", "frequency": "weekly"},
                        ],
                    }
                ],
            }
        ],
    }
]


def _client(session: Session, site: Site) -> int:
    body = {"site_id": site.id, "first_name": "Maria", "last_name": "Okafor", "date_of_birth": "1988-04-12"}
    response = session.post("/api/v1/clients?allow_duplicate=true", json=body)
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def _plan(session: Session, client_id: int) -> dict[str, Any]:
    response = session.post(f"/api/v1/clients/{client_id}/plans", json={"problems": TREE})
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def _text(response: Any) -> str:
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"</?(span|strong|a|em|time|del|ins)\b[^>]*>", "", html)
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))


def _last_event_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _actions(app: Flask, since: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.id > since).order_by(AuditEvent.id)))


def _form_of(html: str, action: str) -> dict[str, str]:
    """The fields of the form posting to ``action`` as the browser would send them (textareas, selects, inputs)."""
    start = html.index(f'action="{action}"')
    form = html[start : html.index("</form>", start)]
    values: dict[str, str] = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form):
        values[name] = value
    for name, value in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>([^<]*)</textarea>', form):
        values[name] = value
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, flags=re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        values[name] = chosen.group(1) if chosen else ""
    values.pop("action", None)
    return {key: unescape(value) for key, value in values.items()}


def test_the_client_plans_list_shows_status_version_and_review_due(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    empty = signed_in.get(f"/clients/{client_id}/plans")
    assert empty.status_code == 200
    assert "The client has no treatment plan yet" in _text(empty)
    created = _plan(signed_in, client_id)
    since = _last_event_id(app)
    response = signed_in.get(f"/clients/{client_id}/plans")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = _text(response)
    assert f"Plan {created['id']}" in text and "Draft" in text and "1 problem" in text
    assert "Write a new plan" in text
    assert "plan.read" in _actions(app, since)


def test_new_plan_is_written_as_a_draft_and_opens_the_editor(signed_in: Session, site: Site, app: Flask) -> None:
    client_id = _client(signed_in, site)
    response = signed_in.post(f"/clients/{client_id}/plans", data={"from_assessments": "false"})
    assert response.status_code == 303
    match = re.search(r"/plans/(\d+)/edit$", response.headers["Location"])
    assert match
    bad = signed_in.post(f"/clients/{client_id}/plans", data={"from_assessments": "false", "review_interval_days": "3"})
    assert bad.status_code == 422
    assert "field-error" in bad.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Plan).where(Plan.client_id == client_id)) == 1


def test_the_plan_shows_its_tree_with_labelled_intervention_kinds(app: Flask, signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    created = _plan(signed_in, client_id)
    since = _last_event_id(app)
    response = signed_in.get(f"/plans/{created['id']}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = _text(response)
    for words in (
        "Opioid use disorder, severe",
        "Stop using fentanyl",
        "“I want to be there for my kids”",
        "Attend dosing six days a week",
        "MAT Methadone maintenance",
        "CBT Relapse prevention sessions",
        "Sign as clinician",
        "Record review",
    ):
        assert words in text, words
    actions = _actions(app, since)
    assert "plan.read" in actions and "client.read" in actions


def test_an_edit_saves_a_new_version_and_add_goal_keeps_the_typed_text(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    form = _form_of(signed_in.get(f"/plans/{plan_id}/edit").get_data(as_text=True), f"/plans/{plan_id}/edit")
    assert form["etag"] == f'"plan-{plan_id}-v1"'
    assert form["problems.0.goals.0.client_words"] == "I want to be there for my kids"
    form["problems.0.goals.0.description"] = "Stop using fentanyl and heroin"
    added = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": "add:problems.0.goals"})
    assert added.status_code == 200
    html = added.get_data(as_text=True)
    assert "Stop using fentanyl and heroin" in html and 'name="problems.0.goals.1.description"' in html
    form = _form_of(html, f"/plans/{plan_id}/edit")
    form["problems.0.goals.1.description"] = "Find steady work"
    form["problems.0.goals.0.objectives.0.interventions.1.kind"] = "contingency_management"
    saved = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": "save"})
    assert saved.status_code == 303, _text(saved)
    plan = signed_in.get(f"/api/v1/plans/{plan_id}").get_json()
    assert plan["revision"] == 2
    goals = plan["problems"][0]["goals"]
    assert [g["description"] for g in goals] == ["Stop using fentanyl and heroin", "Find steady work"]
    assert goals[0]["objectives"][0]["interventions"][1]["kind"] == "contingency_management"
    # Revisions list with the diff.
    revisions = signed_in.get(f"/plans/{plan_id}/revisions?from=1&to=2")
    assert revisions.status_code == 200
    text = _text(revisions)
    assert "Added Problem 'Opioid use disorder, severe' > Goal 'Find steady work'" in text
    assert "Stop using fentanyl and heroin" in text


def test_a_required_field_left_empty_is_shown_beside_it_and_nothing_is_saved(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    form = _form_of(signed_in.get(f"/plans/{plan_id}/edit").get_data(as_text=True), f"/plans/{plan_id}/edit")
    form["problems.0.goals.0.objectives.0.target_date"] = "not a date"
    response = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": "save"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'href="#problems-0-goals-0-objectives-0-target_date"' in html
    assert "Problem 1, goal 1, objective 1: Target date" in _text(response)
    assert signed_in.get(f"/api/v1/plans/{plan_id}").get_json()["revision"] == 1


def test_a_stale_edit_shows_both_versions_and_keeps_the_typed_text(
    signed_in: Session, site: Site, make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    mine = _form_of(signed_in.get(f"/plans/{plan_id}/edit").get_data(as_text=True), f"/plans/{plan_id}/edit")
    # A colleague saves first.
    colleague = login(make_user("clinician", sites=[site], name="Sam Ortiz"))
    theirs = signed_in.get(f"/api/v1/plans/{plan_id}")
    problems = theirs.get_json()["problems"]
    problems[0]["goals"][0]["objectives"][0]["interventions"].append(
        {"kind": "peer_support", "description": "Weekly peer recovery coach"}
    )
    patched = colleague.patch(
        f"/api/v1/plans/{plan_id}", json={"problems": problems}, headers={"If-Match": theirs.headers["ETag"]}
    )
    assert patched.status_code == 200
    mine["problems.0.goals.0.client_words"] = "I want my kids to be proud of me"
    stale = signed_in.post(f"/plans/{plan_id}/edit", data={**mine, "action": "save"})
    assert stale.status_code == 409
    html = stale.get_data(as_text=True)
    text = _text(stale)
    assert "Someone else saved this plan" in text
    assert "Their saved version" in text and "Weekly peer recovery coach" in text and "Sam Ortiz" in text
    assert "I want my kids to be proud of me" in html  # the typed text is kept in the form
    assert "Only in theirs" in text
    again = _form_of(html, f"/plans/{plan_id}/edit")
    assert again["etag"] == f'"plan-{plan_id}-v2"'
    assert again["problems.0.goals.0.client_words"] == "I want my kids to be proud of me"
    assert signed_in.get(f"/api/v1/plans/{plan_id}").get_json()["revision"] == 2
    # Carry their intervention over, then save over their version.
    again["problems.0.goals.0.objectives.0.interventions.2.kind"] = "peer_support"
    again["problems.0.goals.0.objectives.0.interventions.2.description"] = "Weekly peer recovery coach"
    saved = signed_in.post(f"/plans/{plan_id}/edit", data={**again, "action": "save"})
    assert saved.status_code == 303, _text(saved)
    plan = signed_in.get(f"/api/v1/plans/{plan_id}").get_json()
    goal = plan["problems"][0]["goals"][0]
    assert plan["revision"] == 3 and goal["client_words"] == "I want my kids to be proud of me"
    assert [i["kind"] for i in goal["objectives"][0]["interventions"]] == ["mat", "cbt", "peer_support"]


def test_signing_needs_the_attestation_for_the_client_and_makes_the_plan_active(
    app: Flask, signed_in: Session, site: Site
) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    etag = f'"plan-{plan_id}-v1"'
    signed = signed_in.post(f"/plans/{plan_id}/sign", data={"as": "clinician", "etag": etag})
    assert signed.status_code == 303
    missing = signed_in.post(
        f"/plans/{plan_id}/sign", data={"as": "client", "signer_name": "Maria Okafor", "etag": etag}
    )
    assert missing.status_code == 422
    assert "Confirm that the client signed in person" in _text(missing)
    # Each signature is a change of the plan: the form carries the ETag of the page it is on.
    etag = _form_of(missing.get_data(as_text=True), f"/plans/{plan_id}/sign")["etag"]
    assert etag == f'"plan-{plan_id}-v2"'
    since = _last_event_id(app)
    done = signed_in.post(
        f"/plans/{plan_id}/sign",
        data={"as": "client", "signer_name": "Maria Okafor", "attestation": "yes", "etag": etag},
    )
    assert done.status_code == 303
    assert "plan.sign" in _actions(app, since)
    page = _text(signed_in.get(f"/plans/{plan_id}?done=signed-client"))
    assert "Active" in page and "Client (in person): Maria Okafor" in page and "witnessed by Dana Reyes" in page


def test_a_review_is_recorded_and_a_bad_one_is_refused_beside_the_field(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    bad = signed_in.post(f"/plans/{plan_id}/reviews", data={"outcome": "continue"})
    assert bad.status_code == 422
    assert 'href="#note"' in bad.get_data(as_text=True)
    good = signed_in.post(f"/plans/{plan_id}/reviews", data={"outcome": "continue", "note": "Doing well."})
    assert good.status_code == 303
    assert signed_in.get(f"/api/v1/plans/{plan_id}").get_json()["last_reviewed_on"] is not None


def test_intake_is_refused_and_another_site_gets_not_found(
    signed_in: Session,
    site: Site,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    login: Callable[..., Session],
) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    intake = login(make_user("intake", sites=[site]))
    assert intake.get(f"/clients/{client_id}/plans").status_code == 403
    assert intake.get(f"/plans/{plan_id}").status_code == 403
    other = login(make_user("clinician", sites=[make_site()]))
    for url in (
        f"/clients/{client_id}/plans",
        f"/plans/{plan_id}",
        f"/plans/{plan_id}/edit",
        f"/plans/{plan_id}/revisions",
    ):
        assert other.get(url).status_code == 404, url
    assert other.post(f"/plans/{plan_id}/sign", data={"as": "clinician"}).status_code == 404


def test_a_plan_closed_while_editing_keeps_the_typed_text_and_saves_nothing(signed_in: Session, site: Site) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    form = _form_of(signed_in.get(f"/plans/{plan_id}/edit").get_data(as_text=True), f"/plans/{plan_id}/edit")
    closed = signed_in.post(f"/api/v1/plans/{plan_id}/reviews", json={"note": "Completed.", "outcome": "close"})
    assert closed.status_code == 201
    form["problems.0.description"] = "Opioid use disorder, in early remission"
    response = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": "save"})
    assert response.status_code == 409
    assert "closed while you were editing" in _text(response)
    assert "Opioid use disorder, in early remission" in response.get_data(as_text=True)
    assert signed_in.get(f"/api/v1/plans/{plan_id}").get_json()["revision"] == 1
    assert signed_in.get(f"/plans/{plan_id}/edit").status_code == 303
    page = _text(signed_in.get(f"/plans/{plan_id}"))
    assert "Closed" in page and "Edit plan" not in page and "Record review" not in page


def test_in_a_conflict_their_entry_and_their_field_are_carried_over_by_buttons(
    signed_in: Session, site: Site, make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    client_id = _client(signed_in, site)
    plan_id = _plan(signed_in, client_id)["id"]
    mine = _form_of(signed_in.get(f"/plans/{plan_id}/edit").get_data(as_text=True), f"/plans/{plan_id}/edit")
    colleague = login(make_user("clinician", sites=[site], name="Sam Ortiz"))
    read = signed_in.get(f"/api/v1/plans/{plan_id}")
    problems = read.get_json()["problems"]
    objective = problems[0]["goals"][0]["objectives"][0]
    objective["interventions"].append({"kind": "peer_support", "description": "Weekly peer recovery coach"})
    objective["description"] = "Attend dosing seven days a week"
    assert (
        colleague.patch(
            f"/api/v1/plans/{plan_id}", json={"problems": problems}, headers={"If-Match": read.headers["ETag"]}
        ).status_code
        == 200
    )
    mine["problems.0.goals.0.client_words"] = "I want my kids to be proud of me"
    html = signed_in.post(f"/plans/{plan_id}/edit", data={**mine, "action": "save"}).get_data(as_text=True)
    carry = re.search(r'name="action" value="(carry:[^"]+)"', html)
    take = re.search(r'name="action" value="(take:[^"]+\.description)"', html)
    assert carry and take
    form = _form_of(html, f"/plans/{plan_id}/edit")
    assert form["conflict"] == "1"
    html = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": carry.group(1)}).get_data(as_text=True)
    form = _form_of(html, f"/plans/{plan_id}/edit")
    assert form["problems.0.goals.0.objectives.0.interventions.2.description"] == "Weekly peer recovery coach"
    assert "Their saved version" in html
    html = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": take.group(1)}).get_data(as_text=True)
    form = _form_of(html, f"/plans/{plan_id}/edit")
    assert form["problems.0.goals.0.objectives.0.description"] == "Attend dosing seven days a week"
    assert form["problems.0.goals.0.client_words"] == "I want my kids to be proud of me"
    saved = signed_in.post(f"/plans/{plan_id}/edit", data={**form, "action": "save"})
    assert saved.status_code == 303
    goal = signed_in.get(f"/api/v1/plans/{plan_id}").get_json()["problems"][0]["goals"][0]
    assert goal["client_words"] == "I want my kids to be proud of me"
    assert goal["objectives"][0]["description"] == "Attend dosing seven days a week"
    assert [i["kind"] for i in goal["objectives"][0]["interventions"]] == ["mat", "cbt", "peer_support"]
    # Their entry kept its id: the history says only what this save changed.
    diff = signed_in.get(f"/api/v1/plans/{plan_id}/diff?from=2&to=3").get_json()["changes"]
    assert [(c["change"], c["field"]) for c in diff] == [("changed", "client_words")]


def test_a_site_that_requires_a_supervisor_shows_the_supervisor_signature_to_supervisors_only(
    make_site: Callable[..., Site], make_user: Callable[..., User], login: Callable[..., Session]
) -> None:
    site = make_site(requires_supervisor_signature=True)
    clinician = login(make_user("clinician", sites=[site], name="Dana Reyes"))
    supervisor = login(make_user("clinician", sites=[site], name="Lee Park", is_supervisor=True))
    plan_id = _plan(clinician, _client(clinician, site))["id"]
    assert "Sign as supervisor" not in _text(clinician.get(f"/plans/{plan_id}"))
    page = supervisor.get(f"/plans/{plan_id}")
    assert "Sign as supervisor" in _text(page)
    etag = _form_of(page.get_data(as_text=True), f"/plans/{plan_id}/sign")["etag"]
    assert supervisor.post(f"/plans/{plan_id}/sign", data={"as": "supervisor", "etag": etag}).status_code == 303
    signed = _text(supervisor.get(f"/plans/{plan_id}"))
    assert "Supervisor: Lee Park" in signed and "Sign as supervisor" not in signed and "Draft" in signed
    # A stale ETag on a signature is refused on the page, which then carries the current one.
    stale = clinician.post(f"/plans/{plan_id}/sign", data={"as": "clinician", "etag": etag})
    assert stale.status_code == 422
    assert "The plan changed since you read it" in _text(stale)
