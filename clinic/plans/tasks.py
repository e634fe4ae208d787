"""Periodic work of the plans package."""

from __future__ import annotations

from celery import shared_task

from clinic.core.locks import job_lock
from clinic.core.time import today
from clinic.plans.medications import apply_due_changes
from clinic.plans.operations import notify_overdue_reviews


@shared_task(name="clinic.plans.tasks.notify_overdue_plan_reviews", ignore_result=False)
def notify_overdue_plan_reviews() -> int:
    """Alert clinicians of overdue plan reviews: a staff notification and email per plan per day."""
    with job_lock("plans.notify_overdue_reviews", ttl_seconds=600) as held:
        if not held:
            return 0
        return notify_overdue_reviews()


@shared_task(name="clinic.plans.tasks.apply_due_dose_changes", ignore_result=True)
def apply_due_dose_changes() -> int:
    """Hourly (beat): each order whose scheduled dose change has come due shows it as its dose.

    Reads and the dosing record derive the dose in force from the history on the day itself; this
    keeps the stored dose (the one other pages and exports show) in step. Idempotent.
    """
    with job_lock("plans.apply_due_dose_changes", ttl_seconds=600) as held:
        if not held:
            return 0
        return apply_due_changes(today())
