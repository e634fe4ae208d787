"""Treatment plans as clinicians use them: revisions, ETags, signatures, reviews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clinic.audit.models import AuditEvent
from clinic.extensions import db
from clinic.notify.models import StaffNotification

NOW = datetime.now(UTC)
TODAY = NOW.date()


def tree(responsible_id=None):
    intervention = {"kind": "mat", "description": "Buprenorphine maintenance", "frequency": "daily"}
    if responsible_id:
        intervention["responsible_user_id"] = responsible_id
    return [
        {
            "description": "Opioid use disorder, severe",
            "goals": [
                {
                    "description": "Stop using fentanyl",
                    "client_words": "I want to be there for my kids",
                    "objectives": [
                        {
                            "description": "Negative screens for 4 weeks",
                            "target_date": (TODAY + timedelta(days=60)).isoformat(),
                            "interventions": [
                                intervention,
                                {"kind": "cbt", "description": "Weekly CBT", "frequency": "weekly"},
                            ],
                        }
                    ],
                }
            ],
        }
    ]


@pytest.fixture
def care(make_site, make_user, bearer, client):
    site = make_site()
    clinician = make_user("clinician", sites=[site], name="Dr. Chen")
    supervisor = make_user("clinician", sites=[site], is_supervisor=True)
    headers = bearer(clinician)
    person = client.post(
        "/api/v1/clients",
        headers=headers,
        json={
            "site_id": site.id,
            "first_name": "Maya",
            "last_name": "Reed",
            "date_of_birth": "1991-03-03",
            "primary_clinician_id": clinician.id,
        },
    ).get_json()
    return {
        "site": site,
        "clinician": clinician,
        "headers": headers,
        "client": person,
        "supervisor_headers": bearer(supervisor),
        "intake_headers": bearer(make_user("intake", sites=[site])),
        "outsider_headers": bearer(make_user("clinician", sites=[make_site()])),
    }


def new_plan(client, care, **body):
    response = client.post(
        f"/api/v1/clients/{care['client']['id']}/plans",
        headers=care["headers"],
        json={"problems": tree(care["clinician"].id), **body},
    )
    assert response.status_code == 201, response.get_json()
    return response


def test_a_plan_is_a_tree_with_stable_ids_and_an_etag(client, care):
    response = new_plan(client, care)
    plan = response.get_json()
    assert response.headers["ETag"]
    problem = plan["problems"][0]
    goal = problem["goals"][0]
    objective = goal["objectives"][0]
    assert goal["client_words"] == "I want to be there for my kids"
    assert [i["kind"] for i in objective["interventions"]] == ["mat", "cbt"]
    assert objective["status"] == "not_started"
    assert all(node["id"] for node in (problem, goal, objective, *objective["interventions"]))
    assert (plan["status"], plan["revision"], plan["active_revision"]) == ("draft", 1, None)
    read = client.get(f"/api/v1/plans/{plan['id']}", headers=care["headers"])
    assert read.headers["ETag"] == response.headers["ETag"]


def test_responsible_staff_must_belong_to_the_site(client, care, make_user, make_site):
    elsewhere = make_user("clinician", sites=[make_site()])
    response = client.post(
        f"/api/v1/clients/{care['client']['id']}/plans", headers=care["headers"], json={"problems": tree(elsewhere.id)}
    )
    assert response.status_code == 422
    assert "responsible_user_id" in response.get_json()["errors"]


def test_bad_intervention_kind_is_422_naming_the_path(client, care):
    body = tree()
    body[0]["goals"][0]["objectives"][0]["interventions"][0]["kind"] = "acupuncture"
    response = client.post(
        f"/api/v1/clients/{care['client']['id']}/plans", headers=care["headers"], json={"problems": body}
    )
    assert response.status_code == 422
    assert "problems.0.goals.0.objectives.0.interventions.0.kind" in response.get_json()["errors"]


def test_a_plan_can_start_from_signed_assessments(client, care):
    url = f"/api/v1/clients/{care['client']['id']}"
    dsm = client.post(
        f"{url}/assessments",
        headers=care["headers"],
        json={
            "instrument": "DSM5-OUD",
            "answers": {f"c{i}": i <= 7 for i in range(1, 12)},
            "administered_at": NOW.isoformat(),
        },
    ).get_json()
    client.post(f"/api/v1/assessments/{dsm['id']}/sign", headers=care["headers"])
    plan = client.post(f"{url}/plans", headers=care["headers"], json={"from_assessments": True}).get_json()
    assert [p["description"] for p in plan["problems"]] == ["Opioid use disorder, severe (DSM-5: 7 of 11 criteria)"]
    assert plan["problems"][0]["source_assessment_id"] == dsm["id"]


def test_changes_need_if_match(client, care):
    created = new_plan(client, care)
    plan_id, etag = created.get_json()["id"], created.headers["ETag"]
    url = f"/api/v1/plans/{plan_id}"
    missing = client.patch(url, headers=care["headers"], json={"review_interval_days": 60})
    assert missing.status_code == 428
    stale = client.patch(url, headers={**care["headers"], "If-Match": '"plan-0-v0"'}, json={"review_interval_days": 60})
    assert stale.status_code == 412
    ok = client.patch(url, headers={**care["headers"], "If-Match": etag}, json={"review_interval_days": 60})
    assert ok.status_code == 200
    assert ok.headers["ETag"] != etag
    replay = client.patch(url, headers={**care["headers"], "If-Match": etag}, json={"review_interval_days": 45})
    assert replay.status_code == 412
    assert client.get(url, headers=care["headers"]).get_json()["review_interval_days"] == 60


def test_every_revision_is_kept_with_who_and_when_and_a_readable_diff(client, care):
    created = new_plan(client, care)
    plan = created.get_json()
    url = f"/api/v1/plans/{plan['id']}"
    problems = plan["problems"]
    problems[0]["goals"][0]["description"] = "Stop using all opioids"
    problems[0]["goals"][0]["objectives"][0]["interventions"].pop()  # drop CBT
    problems.append({"description": "Housing instability", "goals": []})
    edited = client.patch(
        url, headers={**care["headers"], "If-Match": created.headers["ETag"]}, json={"problems": problems}
    )
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["revision"] == 2
    revisions = client.get(f"{url}/revisions", headers=care["headers"]).get_json()["items"]
    assert [(r["number"], r["reason"], r["created_by_id"]) for r in revisions] == [
        (1, "created", care["clinician"].id),
        (2, "edited", care["clinician"].id),
    ]
    first = client.get(f"{url}/revisions/1", headers=care["headers"]).get_json()
    assert first["problems"][0]["goals"][0]["description"] == "Stop using fentanyl"
    changes = client.get(f"{url}/diff?from=1&to=2", headers=care["headers"]).get_json()["changes"]
    descriptions = [c["description"] for c in changes]
    assert any(d.startswith("Removed") and "Weekly CBT" in d for d in descriptions)
    assert any(d.startswith("Added") and "Housing instability" in d for d in descriptions)
    assert any("'Stop using fentanyl' -> 'Stop using all opioids'" in d for d in descriptions)
    assert client.get(f"{url}/revisions/9", headers=care["headers"]).status_code == 404


def test_ids_of_other_plans_are_refused(client, care):
    created = new_plan(client, care)
    body = tree()
    body[0]["id"] = "pdeadbeef"
    response = client.patch(
        f"/api/v1/plans/{created.get_json()['id']}",
        headers={**care["headers"], "If-Match": created.headers["ETag"]},
        json={"problems": body},
    )
    assert response.status_code == 422
    assert "problems.0.id" in response.get_json()["errors"]


def _sign(client, care, plan_id, role, headers=None, name=None):
    body = {"as": role, **({"signer_name": name} if name else {})}
    return client.post(f"/api/v1/plans/{plan_id}/sign", headers=headers or care["headers"], json=body)


def test_plan_becomes_active_once_clinician_and_client_sign(client, care):
    plan_id = new_plan(client, care).get_json()["id"]
    assert _sign(client, care, plan_id, "clinician").get_json()["status"] == "draft"
    assert _sign(client, care, plan_id, "client").status_code == 422  # the client's name is needed
    signed = _sign(client, care, plan_id, "client", name="Maya Reed")
    assert signed.status_code == 200
    body = signed.get_json()
    assert (body["status"], body["active_revision"]) == ("active", 1)
    assert {s["role"] for s in body["signatures"]} == {"clinician", "client"}
    assert _sign(client, care, plan_id, "clinician").status_code == 409


def test_a_site_requiring_a_supervisor_waits_for_one(client, care, bearer, make_user):
    admin = make_user("admin")
    client.patch(
        f"/api/v1/sites/{care['site'].id}", headers=bearer(admin), json={"requires_supervisor_signature": True}
    )
    plan_id = new_plan(client, care).get_json()["id"]
    _sign(client, care, plan_id, "clinician")
    assert _sign(client, care, plan_id, "client", name="Maya Reed").get_json()["status"] == "draft"
    assert _sign(client, care, plan_id, "supervisor").status_code == 403  # not a supervisor
    done = _sign(client, care, plan_id, "supervisor", headers=care["supervisor_headers"])
    assert done.get_json()["status"] == "active"


def test_editing_an_active_plan_needs_signing_again(client, care):
    plan_id = new_plan(client, care).get_json()["id"]
    _sign(client, care, plan_id, "clinician")
    active = _sign(client, care, plan_id, "client", name="Maya Reed")
    edited = client.patch(
        f"/api/v1/plans/{plan_id}",
        headers={**care["headers"], "If-Match": active.headers["ETag"]},
        json={"review_interval_days": 45},
    )
    body = edited.get_json()
    assert (body["status"], body["revision"], body["active_revision"], body["signatures"]) == ("draft", 2, 1, [])
    _sign(client, care, plan_id, "clinician")
    again = _sign(client, care, plan_id, "client", name="Maya Reed").get_json()
    assert (again["status"], again["active_revision"]) == ("active", 2)


def test_reviews_move_the_next_review_and_close_makes_it_read_only(client, care):
    created = new_plan(client, care).get_json()
    plan_id = created["id"]
    assert created["next_review_on"] == (TODAY + timedelta(days=30)).isoformat()
    review = client.post(
        f"/api/v1/plans/{plan_id}/reviews", headers=care["headers"], json={"note": "Going well", "outcome": "continue"}
    )
    assert review.status_code == 201
    assert review.get_json()["next_review_on"] == (TODAY + timedelta(days=90)).isoformat()
    closed = client.post(
        f"/api/v1/plans/{plan_id}/reviews",
        headers=care["headers"],
        json={"note": "Completed treatment", "outcome": "close"},
    )
    assert closed.get_json()["next_review_on"] is None
    current = client.get(f"/api/v1/plans/{plan_id}", headers=care["headers"])
    assert current.get_json()["status"] == "closed"
    headers = {**care["headers"], "If-Match": current.headers["ETag"]}
    assert (
        client.patch(f"/api/v1/plans/{plan_id}", headers=headers, json={"review_interval_days": 30}).status_code == 409
    )
    assert _sign(client, care, plan_id, "clinician").status_code == 409
    assert (
        client.post(
            f"/api/v1/plans/{plan_id}/reviews", headers=care["headers"], json={"note": "x", "outcome": "continue"}
        ).status_code
        == 409
    )


def test_a_plan_interval_overrides_the_defaults(client, care):
    plan = new_plan(client, care, review_interval_days=14).get_json()
    assert plan["next_review_on"] == (TODAY + timedelta(days=14)).isoformat()


def test_due_reviews_and_the_daily_overdue_alert(app, client, care):
    from clinic.plans.models import Plan
    from clinic.plans.tasks import notify_overdue_plan_reviews

    plan_id = new_plan(client, care).get_json()["id"]
    new_plan(client, care)  # not due
    with app.app_context():
        db.session.get(Plan, plan_id).next_review_on = TODAY - timedelta(days=2)
        db.session.commit()
    due = client.get("/api/v1/plan-reviews/due", headers=care["headers"]).get_json()["items"]
    assert [d["plan_id"] for d in due] == [plan_id]
    later = (TODAY + timedelta(days=31)).isoformat()
    assert len(client.get(f"/api/v1/plan-reviews/due?before={later}", headers=care["headers"]).get_json()["items"]) == 2
    assert client.get("/api/v1/plan-reviews/due", headers=care["outsider_headers"]).get_json()["items"] == []
    with app.app_context():
        assert notify_overdue_plan_reviews.apply().get() == 1
        assert notify_overdue_plan_reviews.apply().get() == 0  # once per plan per day
        alerts = db.session.scalars(select(StaffNotification)).all()
    assert [(a.user_id, a.kind.value, a.resource_id) for a in alerts] == [
        (care["clinician"].id, "review_overdue", str(plan_id))
    ]


def test_plans_are_clinical_scoped_and_audited(app, client, care):
    plan_id = new_plan(client, care).get_json()["id"]
    assert client.get(f"/api/v1/plans/{plan_id}", headers=care["intake_headers"]).status_code == 403
    assert client.get(f"/api/v1/plans/{plan_id}", headers=care["outsider_headers"]).status_code == 404
    client.get(f"/api/v1/plans/{plan_id}", headers=care["headers"])
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.resource == "plan", AuditEvent.resource_id == str(plan_id))
            .order_by(AuditEvent.id)
        ).all()
    assert actions[0] == "plan.create"
    assert "plan.read" in actions
