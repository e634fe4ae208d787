"""What a clinic's first week with clinic found: each test is something a new user noticed."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def clinician_with_client(make_site, make_user, bearer, client) -> dict[str, Any]:
    site = make_site()
    clinician = make_user("clinician", sites=[site], name="Dr. Okafor")
    headers = bearer(clinician)
    person = client.post(
        "/api/v1/clients",
        headers=headers,
        json={
            "site_id": site.id,
            "first_name": "Rosa",
            "last_name": "Quintero",
            "date_of_birth": "1988-07-14",
            "primary_clinician_id": clinician.id,
        },
    )
    assert person.status_code == 201, person.get_json()
    return {"site": site, "clinician": clinician, "headers": headers, "client": person.get_json()}


# --- plans: the revision diff ---------------------------------------------------------------


def test_a_diff_shows_a_change_of_the_review_interval_alone(client, clinician_with_client):
    """Moving only the review interval is a revision whose diff says so (it used to be empty)."""
    ctx = clinician_with_client
    created = client.post(
        f"/api/v1/clients/{ctx['client']['id']}/plans",
        headers=ctx["headers"],
        json={"problems": [{"description": "Opioid use disorder", "goals": []}], "review_interval_days": 30},
    )
    assert created.status_code == 201, created.get_json()
    url = f"/api/v1/plans/{created.get_json()['id']}"
    edited = client.patch(
        url, headers={**ctx["headers"], "If-Match": created.headers["ETag"]}, json={"review_interval_days": 60}
    )
    assert edited.status_code == 200, edited.get_json()

    response = client.get(f"{url}/diff?from=1&to=2", headers=ctx["headers"])

    assert response.status_code == 200, response.get_json()
    changes = response.get_json()["changes"]
    assert [(c["change"], c["level"], c["field"], c["before"], c["after"]) for c in changes] == [
        ("changed", "plan", "review_interval_days", 30, 60)
    ]
    assert changes[0]["description"] == "Changed review_interval_days of Plan: 30 -> 60"
    # Read backwards, the same change the other way round.
    back = client.get(f"{url}/diff?from=2&to=1", headers=ctx["headers"]).get_json()["changes"]
    assert [(c["field"], c["before"], c["after"]) for c in back] == [("review_interval_days", 60, 30)]


# --- reminders: the reply word in Spanish, and the links' port ---------------------------------------


def _spanish_and_english(template: str) -> tuple[str, str]:
    from datetime import UTC, datetime

    from clinic.notify.messages import MessageContext, render

    def in_language(language: str) -> str:
        context = MessageContext(
            site="Riverside Health", starts_at=datetime(2026, 3, 9, 13, 30, tzinfo=UTC), zone="America/New_York",
            language=language, link="http://127.0.0.1:8000/r/abc",
        )
        return render(template, context)

    return in_language("es"), in_language("en")


@pytest.mark.parametrize(("template", "word"), [("sms.txt", "SI"), ("reply_help.txt", "SÍ")])
def test_spanish_messages_ask_for_si_and_english_ones_for_yes(app, template, word):
    with app.app_context():
        spanish, english = _spanish_and_english(template)
    assert f"Responda {word} para confirmar" in spanish
    assert "YES" not in spanish
    assert "Reply YES to confirm" in english


@pytest.mark.parametrize("reply", ["Sí", "sí.", "SI", "si!", "SÍ", "Si\u0301"])
def test_a_spanish_yes_confirms_the_next_appointment(app, client, make_site, make_user, bearer, reply):
    from clinic.notify.sms import request_signature
    from tests.appointments_setup import at, build_practice

    practice = build_practice(client, make_site, make_user, bearer)
    booked = practice.booked_ok(starts_at=at(days=2), client_id=practice.ben["id"])  # Ben reads Spanish
    form = {"From": practice.ben["phone"], "To": "+15005550006", "Body": reply, "MessageSid": "SM" + "1" * 32}
    signature = request_signature(
        f"{app.config['PUBLIC_BASE_URL']}/api/v1/notify/sms/inbound", form.items(), app.config["SMS_AUTH_TOKEN"]
    )

    response = client.post("/api/v1/notify/sms/inbound", data=form, headers={"X-Twilio-Signature": signature})

    assert response.status_code == 200
    assert "está confirmada" in response.get_data(as_text=True)
    assert practice.get(f"/appointments/{booked['id']}").get_json()["status"] == "confirmed"


def test_development_links_point_at_the_port_make_run_serves_on(monkeypatch):
    from config import development_base_url

    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("PORT", "8123")
    assert development_base_url() == "http://127.0.0.1:8123"
    monkeypatch.delenv("PORT")
    assert development_base_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://clinic.example.org")
    monkeypatch.setenv("PORT", "8123")
    assert development_base_url() == "https://clinic.example.org"


# --- staff email: say what happened -------------------------------------------------------------------


def _alert(app, user_id: int) -> int:
    from clinic.extensions import db
    from clinic.notify.models import StaffNotificationKind
    from clinic.notify.staff import notify_staff

    with app.app_context():
        row = notify_staff(user_id, kind=StaffNotificationKind.REVIEW_OVERDUE, title="A plan review is overdue", body="-")
        assert row is not None
        db.session.commit()
        return row.id


def test_a_staff_email_without_a_mail_server_is_not_configured_not_sent(
    app, client, make_site, make_user, bearer, monkeypatch, caplog
):
    from clinic.notify.tasks import send_staff_email, sweep_staff_emails

    sent = []
    monkeypatch.setattr("clinic.notify.email.Mailer.send", lambda _self, message: sent.append(message))
    monkeypatch.setitem(app.config, "MAIL_SERVER", "")
    user = make_user("clinician", sites=[make_site()])
    notification_id = _alert(app, user.id)

    with app.app_context(), caplog.at_level("INFO", logger="clinic.notify.tasks"):
        assert send_staff_email.apply(args=[notification_id]).get() == "not_configured"
        assert send_staff_email.apply(args=[notification_id]).get() == "not pending"  # settled once
        assert sweep_staff_emails.apply().get() == 0  # and never swept again

    listed = client.get("/api/v1/staff-notifications", headers=bearer(user)).get_json()["items"]
    assert [(n["id"], n["email_status"]) for n in listed] == [(notification_id, "not_configured")]
    assert sent == []
    assert "MAIL_SERVER is not set" in caplog.text


def test_the_spec_lists_not_configured_among_the_email_statuses(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    statuses = spec["components"]["schemas"]["StaffNotification"]["properties"]["email_status"]["enum"]
    assert "not_configured" in statuses and "sent" in statuses


# --- readiness: the worker ------------------------------------------------------------------------


def _beat(app, seconds_ago: float) -> None:
    from datetime import timedelta

    from clinic.core.time import utcnow
    from clinic.extensions import db
    from clinic.system.models import WorkerHeartbeat

    with app.app_context():
        db.session.merge(WorkerHeartbeat(name="celery", beat_at=utcnow() - timedelta(seconds=seconds_ago), hostname="w"))
        db.session.commit()


def test_readyz_is_not_ready_before_the_worker_ever_beats(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["worker"] == "failed: no heartbeat yet"
    assert (body["checks"]["database"], body["checks"]["broker"]) == ("ok", "ok")


def test_readyz_is_not_ready_when_the_heartbeat_is_older_than_three_intervals(app, client):
    interval = app.config["HEARTBEAT_INTERVAL_SECONDS"]
    _beat(app, seconds_ago=3 * interval + 30)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["worker_heartbeat"]["status"] == "stale"
    assert body["checks"]["worker"].startswith("failed: no heartbeat for ")

    _beat(app, seconds_ago=interval)
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}


def test_a_worker_beats_as_soon_as_it_is_ready():
    """Without waiting for beat's first interval: the worker queues a heartbeat when it is ready."""
    from types import SimpleNamespace

    from celery.signals import worker_ready

    from clinic.system import tasks  # what the worker imports at start-up (the app's `imports`)

    sent = []

    class Consumer:  # what the signal's sender offers: its app
        app = SimpleNamespace(send_task=lambda name, *a, **k: sent.append(name))

    worker_ready.send(sender=Consumer())
    assert tasks.HEARTBEAT_TASK == "clinic.system.tasks.heartbeat"
    assert sent == ["clinic.system.tasks.heartbeat"]


# --- the access log ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_access_log_leaves_out_what_staff_searched_for(tmp_path):
    """gunicorn as make run starts it (gunicorn.conf.py): no query string, Referer or link token in the log."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import requests

    from config import BASE_DIR

    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = {**os.environ, "CLINIC_ENV": "development", "DATABASE_URL": f"sqlite:///{tmp_path / 'clinic.db'}"}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0", "--workers", "1"],
            cwd=BASE_DIR, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        deadline, port = time.monotonic() + 30, None
        while port is None and time.monotonic() < deadline:
            assert server.poll() is None, err.read_text()
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", err.read_text())
            port = int(found.group(1)) if found else time.sleep(0.1)
        assert port is not None, err.read_text()
        base = f"http://127.0.0.1:{port}"

        def get(path: str) -> int:
            referer = f"{base}/clients?q=Referred+Quintero"
            return requests.get(base + path, headers={"Referer": referer}, timeout=10).status_code

        assert get("/healthz?q=Secret+Quintero&mrn=MRN0001234") == 200
        assert get("/r/SecretLinkToken123?lang=es") == 404

        def lines() -> list[str]:
            return [line for line in out.read_text().splitlines() if '"GET ' in line]

        deadline = time.monotonic() + 10
        while len(lines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    logged = lines()
    assert len(logged) == 2, out.read_text()
    assert '"GET /healthz HTTP/1.1" 200 ' in logged[0]
    assert '"GET /r/… HTTP/1.1" 404 ' in logged[1]
    assert not any("?" in line for line in logged), logged
    everything = out.read_text() + err.read_text()
    for secret in ("Secret", "Quintero", "MRN0001234", "SecretLinkToken123", "lang=es"):
        assert secret not in everything, everything


# --- the API docs page, offline ------------------------------------------------------------------------


def test_the_docs_page_loads_swagger_ui_from_clinic_itself(client):
    """An offline clinic's docs page works: every file it loads is served by clinic, nothing by a CDN."""
    import re

    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(assets) == [
        "/api/docs/assets/swagger-ui-bundle.js",
        "/api/docs/assets/swagger-ui-standalone-preset.js",
        "/api/docs/assets/swagger-ui.css",
    ]
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype in {"text/javascript", "application/javascript", "text/css"}, url
        assert len(response.get_data()) > 10_000, url
    policy = page.headers["Content-Security-Policy"]
    assert "http" not in policy and "cdn" not in policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "validatorUrl" in html and '"validatorUrl": null' in html  # no online validator badge either
    assert client.get("/api/docs/assets/../../config.py").status_code == 404
    assert client.get("/api/docs/assets/nothing.js").status_code == 404


# --- the worker's log ------------------------------------------------------------------------------------


def test_idle_housekeeping_is_not_logged_at_info_but_work_and_failures_are(app, caplog):
    """Celery's own lines for the beat schedule's tasks: DEBUG when the run did nothing, INFO when it did."""
    import logging

    from celery.app import trace
    from celery.worker import strategy

    seal = "clinic.audit.tasks.seal_audit_events"
    received = logging.getLogger(strategy.__name__)
    beat = logging.getLogger("celery.beat")

    def succeeded(name: str, result: str) -> None:
        trace.info(trace.LOG_SUCCESS, {"id": "1", "name": name, "return_value": result, "runtime": 0.01,
                                       "args": "()", "kwargs": "{}"})

    with caplog.at_level(logging.INFO):
        beat.info("Scheduler: Sending due task %s (%s)", "audit.seal_audit_events", seal)
        received.info(trace.LOG_RECEIVED, {"id": "1", "name": seal, "args": "()", "kwargs": "{}", "eta": None})
        succeeded(seal, "0")
        succeeded("clinic.system.tasks.heartbeat", "'2026-11-29T10:00:00+00:00'")
        assert caplog.records == []
        succeeded(seal, "12")  # it sealed something: worth a line
        succeeded("clinic.reports.tasks.run_report", "0")  # not housekeeping: as before
        trace.logger.error("Task %s[%s] raised unexpected: %r", seal, "1", "boom")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"Task {seal}[1] succeeded in 0.01s: 12"),
        ("INFO", "Task clinic.reports.tasks.run_report[1] succeeded in 0.01s: 0"),
        ("ERROR", f"Task {seal}[1] raised unexpected: 'boom'"),
    ]

    with caplog.at_level(logging.DEBUG):
        caplog.clear()
        succeeded(seal, "0")
    assert [r.levelname for r in caplog.records] == ["DEBUG"]  # still there for whoever asks for DEBUG


@pytest.mark.parametrize(("env_name", "warned"), [("development", False), ("production", True)])
def test_a_root_worker_is_warned_about_outside_development_only(monkeypatch, env_name, warned):
    import warnings

    from celery import platforms
    from celery.exceptions import SecurityWarning

    from clinic.core.worker_logs import allow_root_in_development

    monkeypatch.setattr(platforms.os, "getuid", lambda: 0)
    monkeypatch.setattr(platforms.os, "geteuid", lambda: 0)
    monkeypatch.setattr("clinic.core.worker_logs.os.geteuid", lambda: 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        allow_root_in_development(env_name)
        platforms.check_privileges({"application/json"})
    assert any(issubclass(w.category, SecurityWarning) for w in caught) is warned


def test_the_embedded_broker_keeps_its_control_folder_under_instance(tmp_path):
    from tests.test_celery_worker import _celery_default_app_kept, _development_app

    with _celery_default_app_kept():
        app = _development_app(
            SQLALCHEMY_DATABASE_URI="sqlite://", CELERY_BROKER_URL="filesystem://", CELERY_DATA_DIR=str(tmp_path / "b")
        )
    options = app.extensions["celery"].conf.broker_transport_options
    assert options["control_folder"] == str(tmp_path / "b" / "control")
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"queue", "processed", "control"}


def test_an_idle_worker_on_the_embedded_broker_notices_a_stop_within_a_poll(tmp_path, monkeypatch):
    """kombu's file-system transport waited out two seconds (twice) before a stopping worker could go."""
    import time

    from celery.worker import state
    from kombu import Connection

    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"]),
        "polling_interval": 0.2,
    }
    with Connection("filesystem://localhost/", transport="clinic.core.embedded_broker:Transport",
                    transport_options=options) as connection:
        queue = connection.SimpleQueue("idle")
        monkeypatch.setattr(state, "should_stop", 0)  # what a SIGTERM sets: exit code 0
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=2.0)
        assert time.monotonic() - started < 1.0
        monkeypatch.setattr(state, "should_stop", None)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=1.0)
        assert time.monotonic() - started >= 0.9  # not stopping: the whole wait, as before
        queue.close()
