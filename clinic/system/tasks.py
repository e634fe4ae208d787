"""Periodic tasks of the system package."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from clinic.system.operations import record_heartbeat

log = logging.getLogger(__name__)

HEARTBEAT_TASK = "clinic.system.tasks.heartbeat"


@shared_task(name=HEARTBEAT_TASK, ignore_result=True)
def heartbeat() -> str:
    """Record that a worker is alive and the beat schedule runs; /readyz reports it."""
    return record_heartbeat().isoformat()


@worker_ready.connect
def _first_heartbeat(sender: Any, **_kwargs: Any) -> None:
    """A worker that has just started beats at once, through the broker, so /readyz need not wait an interval."""
    try:
        sender.app.send_task(HEARTBEAT_TASK)
    except Exception:  # noqa: BLE001 - the broker is down: beat's schedule sends the next one
        log.warning("could not queue the first heartbeat; beat sends the next one")
