"""Sealing audit events into the hash chain, on the worker."""

from __future__ import annotations

from celery import shared_task

from clinic.audit.operations import seal_pending
from clinic.core.locks import job_lock


@shared_task(name="clinic.audit.tasks.seal_audit_events", ignore_result=True)
def seal_audit_events() -> int:
    """Chain the events committed since the last run (one sealer at a time)."""
    with job_lock("audit.seal", ttl_seconds=120) as held:
        return seal_pending() if held else 0
