"""Periodic tasks of the foundation."""

from __future__ import annotations

from celery import shared_task

from clinic.core.idempotency import purge_expired
from clinic.core.locks import job_lock


@shared_task(name="clinic.core.tasks.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    """Delete the stored answers of Idempotency-Keys whose time is up (one run at a time)."""
    with job_lock("core.purge_idempotency_keys", ttl_seconds=600) as held:
        if not held:
            return 0
        return purge_expired()
