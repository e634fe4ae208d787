"""Sealing audit events into the hash chain, and anchoring its head, on the worker."""

from __future__ import annotations

from celery import shared_task

from clinic.audit.anchors import anchor_head
from clinic.audit.operations import seal_pending
from clinic.core.locks import job_lock


@shared_task(name="clinic.audit.tasks.seal_audit_events", ignore_result=True)
def seal_audit_events() -> int:
    """Chain the events committed since the last run (one sealer at a time)."""
    with job_lock("audit.seal", ttl_seconds=120) as held:
        return seal_pending() if held else 0


@shared_task(name="clinic.audit.tasks.anchor_audit_chain", ignore_result=True)
def anchor_audit_chain() -> int | None:
    """Write the head of the sealed chain to the anchor target (daily); returns its sequence.

    A second run, or a retry, writes the head again: one more anchor is harmless.
    """
    with job_lock("audit.anchor", ttl_seconds=600) as held:
        if not held:
            return None
        anchor = anchor_head()
        return None if anchor is None else anchor.seq
