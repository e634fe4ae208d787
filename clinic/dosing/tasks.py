"""Periodic work of the dosing record."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from clinic.core.locks import job_lock
from clinic.dosing.operations import alert_missed_doses


@shared_task(name="clinic.dosing.tasks.alert_missed_doses", ignore_result=True)
def alert_missed_doses_task() -> int:
    """Alert the clinician and prescriber of clients who missed days of dosing; once per run of days."""
    ttl = max(int(current_app.config["DOSING_MISSED_DOSE_CHECK_SECONDS"]), 60)
    with job_lock("dosing.alert_missed_doses", ttl_seconds=ttl) as held:
        if not held:
            return 0
        return alert_missed_doses()
