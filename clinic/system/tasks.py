"""Periodic tasks of the system package."""

from __future__ import annotations

from celery import shared_task

from clinic.system.operations import record_heartbeat


@shared_task(name="clinic.system.tasks.heartbeat", ignore_result=True)
def heartbeat() -> str:
    """Record that a worker is alive and the beat schedule runs; /readyz reports it."""
    return record_heartbeat().isoformat()
