"""Bulk exports on the worker, and the expiry of their files."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task
from flask import current_app

from clinic.core.celery import send_after_commit
from clinic.core.locks import job_lock
from clinic.core.unit_of_work import after_commit
from clinic.fhir import bulk


def _lock_name(export_id: str) -> str:
    return f"fhir.export.{export_id}"


@shared_task(name="clinic.fhir.tasks.run_export", ignore_result=True)
def run_export(export_id: str) -> str:
    """Write one bulk export's NDJSON files; a second delivery while it runs, or after, does nothing."""
    ttl = int(current_app.config["FHIR_EXPORT_LOCK_SECONDS"])
    with job_lock(_lock_name(export_id), ttl_seconds=ttl) as held:
        if not held:
            return "running elsewhere"
        return bulk.run_export(export_id)


@shared_task(name="clinic.fhir.tasks.expire_exports", ignore_result=True)
def expire_exports() -> int:
    """Delete exports past FHIR_EXPORT_TTL_HOURS (rows and files); queue again exports whose task was lost."""
    with job_lock("fhir.expire_exports", ttl_seconds=600) as held:
        if not held:
            return 0
        expired = bulk.expire_exports()
        _forget_locks(expired)
        for export_id in bulk.exports_to_requeue():
            send_after_commit(bulk.TASK, export_id)
        return len(expired)


def _forget_locks(export_ids: list[str]) -> None:
    """With the embedded broker each export's lock is a file (clinic.core.locks): delete those of deleted exports."""
    if str(current_app.config["CELERY_BROKER_URL"]).startswith("redis"):
        return  # Redis keys expire on their own
    folder = Path(current_app.config["CELERY_DATA_DIR"])
    paths = [folder / f"{_lock_name(export_id)}.lock" for export_id in export_ids]

    def delete() -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    after_commit(delete)
