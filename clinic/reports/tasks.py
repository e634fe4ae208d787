"""Report runs on the worker, and the expiry of stored results."""

from __future__ import annotations

from celery import shared_task

from clinic.core.locks import job_lock
from clinic.reports.operations import execute_run, expire_runs, stale_queued_runs


@shared_task(name="clinic.reports.tasks.run_report", ignore_result=True)
def run_report(run_id: int) -> str:
    """Compute one queued report run."""
    return execute_run(run_id)


@shared_task(name="clinic.reports.tasks.sweep_report_runs", ignore_result=True)
def sweep_report_runs() -> int:
    """Delete results older than REPORT_RUN_RETENTION_DAYS; queue again runs whose task was lost."""
    with job_lock("reports.sweep_runs", ttl_seconds=600) as held:
        if not held:
            return 0
        expired = expire_runs()
        for run_id in stale_queued_runs():
            run_report.delay(run_id)
        return expired
