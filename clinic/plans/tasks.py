"""Periodic work of the plans package."""

from __future__ import annotations

from celery import shared_task

from clinic.core.locks import job_lock
from clinic.plans.operations import notify_overdue_reviews


@shared_task(name="clinic.plans.tasks.notify_overdue_plan_reviews", ignore_result=False)
def notify_overdue_plan_reviews() -> int:
    """Alert clinicians of overdue plan reviews: a staff notification and email per plan per day."""
    with job_lock("plans.notify_overdue_reviews", ttl_seconds=600) as held:
        if not held:
            return 0
        return notify_overdue_reviews()
