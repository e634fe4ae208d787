"""Celery bound to the Flask app, after the Flask documentation's pattern."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask

from clinic.core.unit_of_work import after_commit, unit_of_work
from clinic.core.worker_logs import allow_root_in_development, quiet_housekeeping

log = logging.getLogger(__name__)


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks each run inside a Flask app context."""

    class FlaskTask(Task):  # type: ignore[misc]  # celery's Task is untyped
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context(), unit_of_work():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(_celery_settings(app), namespace=None)
    quiet_housekeeping(entry["task"] for entry in celery_app.conf.beat_schedule.values())
    allow_root_in_development(app.config["ENV_NAME"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def _celery_settings(app: Flask) -> dict[str, Any]:
    broker_url = app.config["CELERY_BROKER_URL"]
    settings: dict[str, Any] = {
        "broker_url": broker_url,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "timezone": "UTC",
        "enable_utc": True,
        "broker_connection_retry_on_startup": True,
        "task_always_eager": app.config.get("CELERY_TASK_ALWAYS_EAGER", False),
        "imports": [
            "clinic.core.tasks",
            "clinic.system.tasks",
            "clinic.audit.tasks",
            "clinic.dosing.tasks",
            "clinic.fhir.tasks",
            "clinic.notify.tasks",
            "clinic.plans.tasks",
            "clinic.reports.tasks",
        ],
        "beat_schedule": beat_schedule(app),
    }
    if broker_url.startswith("filesystem://"):
        # Every folder of the embedded broker under CELERY_DATA_DIR (instance/broker): kombu's
        # default control folder (its exchange tables) is "control" in the working directory.
        data_dir = Path(app.config["CELERY_DATA_DIR"])
        for sub in ("queue", "processed", "control"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        settings["broker_transport_options"] = {
            "data_folder_in": str(data_dir / "queue"),
            "data_folder_out": str(data_dir / "queue"),
            "processed_folder": str(data_dir / "processed"),
            "control_folder": str(data_dir / "control"),
            "store_processed": False,
            # How often an idle worker looks at the queue folder (kombu's default is every second, on
            # top of the worker's two-second wait): a listing is cheap, and a stop is noticed sooner.
            "polling_interval": 0.2,
        }
        # A worker's wait for messages ends as soon as it is stopping (clinic/core/embedded_broker.py),
        # and its timer thread sleeps at most this long (default 1 s): Ctrl-C stops it within a second.
        settings["broker_transport"] = "clinic.core.embedded_broker:Transport"
        settings["worker_timer_precision"] = 0.1
        if broker_url == "filesystem://":
            settings["broker_url"] = "filesystem://localhost/"  # no "No hostname was supplied" warning
    elif broker_url.startswith("redis"):
        # Tasks are short; a lost worker's task comes back after this many seconds.
        settings["broker_transport_options"] = {"visibility_timeout": 3600}
    return settings


def beat_schedule(app: Flask) -> dict[str, dict[str, Any]]:
    """The one beat schedule of clinic: every periodic job is listed here."""
    return {
        "audit.seal_audit_events": {
            "task": "clinic.audit.tasks.seal_audit_events",
            "schedule": float(app.config["AUDIT_SEAL_INTERVAL_SECONDS"]),
            "options": {"expires": float(app.config["AUDIT_SEAL_INTERVAL_SECONDS"])},
        },
        "audit.anchor_audit_chain": {
            "task": "clinic.audit.tasks.anchor_audit_chain",
            "schedule": crontab(minute=0, hour=int(app.config["AUDIT_ANCHOR_HOUR_UTC"])),
            "options": {"expires": 3600.0},
        },
        "system.heartbeat": {
            "task": "clinic.system.tasks.heartbeat",
            "schedule": float(app.config["HEARTBEAT_INTERVAL_SECONDS"]),
            "options": {"expires": float(app.config["HEARTBEAT_INTERVAL_SECONDS"])},
        },
        "notify.sweep_staff_emails": {
            "task": "clinic.notify.tasks.sweep_staff_emails",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        "notify.escalate_safety_alerts": {
            "task": "clinic.notify.tasks.escalate_safety_alerts",
            "schedule": float(app.config["SAFETY_ALERT_ESCALATE_CHECK_SECONDS"]),
            "options": {"expires": float(app.config["SAFETY_ALERT_ESCALATE_CHECK_SECONDS"])},
        },
        "notify.dispatch_reminders": {
            "task": "clinic.notify.tasks.dispatch_reminders",
            "schedule": float(app.config["REMINDER_DISPATCH_SECONDS"]),
            "options": {"expires": float(app.config["REMINDER_DISPATCH_SECONDS"])},
        },
        "reports.sweep_report_runs": {
            "task": "clinic.reports.tasks.sweep_report_runs",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
        "plans.notify_overdue_plan_reviews": {
            "task": "clinic.plans.tasks.notify_overdue_plan_reviews",
            "schedule": crontab(minute=0, hour=int(app.config["PLAN_REVIEW_ALERT_HOUR_UTC"])),
            "options": {"expires": 3600.0},
        },
        "plans.apply_due_dose_changes": {
            "task": "clinic.plans.tasks.apply_due_dose_changes",
            "schedule": crontab(minute=5),
            "options": {"expires": 3600.0},
        },
        "dosing.alert_missed_doses": {
            "task": "clinic.dosing.tasks.alert_missed_doses",
            "schedule": float(app.config["DOSING_MISSED_DOSE_CHECK_SECONDS"]),
            "options": {"expires": float(app.config["DOSING_MISSED_DOSE_CHECK_SECONDS"])},
        },
        "fhir.expire_exports": {
            "task": "clinic.fhir.tasks.expire_exports",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
        "core.purge_idempotency_keys": {
            "task": "clinic.core.tasks.purge_idempotency_keys",
            "schedule": 3600.0,
            "options": {"expires": 3600.0},
        },
    }


def send_after_commit(task_name: str, *args: Any) -> None:
    """Queue a task once the current transaction commits (never for work that is rolled back)."""
    after_commit(lambda: _send(task_name, args))


def _send(task_name: str, args: tuple[Any, ...]) -> None:
    from celery import current_app as default_celery
    from flask import current_app, has_app_context

    celery_app = current_app.extensions["celery"] if has_app_context() else default_celery
    try:
        celery_app.send_task(task_name, args=list(args))
    except Exception:  # noqa: BLE001 - the broker is down; periodic sweeps pick the work up
        log.warning("could not queue %s%s; a sweep will", task_name, args)
