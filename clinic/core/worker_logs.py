"""What the worker and beat write to the log: the housekeeping of the beat schedule only when it did something.

Beat sends the audit seal every 10 seconds, the heartbeat every minute, and the outbox sweeps;
at INFO Celery logs three lines for each run ("Sending due task", "received", "succeeded"), so an
idle clinic's log was nothing else. For the tasks of the beat schedule those lines are DEBUG now,
except a "succeeded" whose task reports that it did some work (a positive count: events sealed,
reminders claimed, emails queued). Failures and retries keep their levels.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping

from celery.exceptions import SecurityWarning

#: Celery's loggers of beat sending a task, the worker receiving it and the task's outcome.
TASK_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class QuietHousekeeping(logging.Filter):
    """Lower the INFO lines about the given periodic tasks to DEBUG, unless the run did some work."""

    def __init__(self, task_names: Iterable[str]) -> None:
        super().__init__()
        self.task_names = frozenset(task_names)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task_name(record) not in self.task_names:
            return True
        if record.name == "celery.app.trace" and _did_some_work(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _task_name(record: logging.LogRecord) -> object:
    # The worker's lines carry a mapping of the task's details; beat's, (entry name, task name).
    if isinstance(record.args, Mapping):
        return record.args.get("name")
    if isinstance(record.args, tuple) and len(record.args) == 2:
        return record.args[1]
    return None


def _did_some_work(record: logging.LogRecord) -> bool:
    value = record.args.get("return_value") if isinstance(record.args, Mapping) else None
    try:
        return int(str(value)) > 0
    except ValueError:
        return False


def quiet_housekeeping(task_names: Iterable[str]) -> None:
    """Install the filter on Celery's task loggers (replacing the one an earlier app installed)."""
    names = frozenset(task_names)
    for logger_name in TASK_LOGGERS:
        logger = logging.getLogger(logger_name)
        for old in [f for f in logger.filters if isinstance(f, QuietHousekeeping)]:
            logger.removeFilter(old)
        logger.addFilter(QuietHousekeeping(names))


def allow_root_in_development(env_name: str) -> None:
    """Development only: no warning that the worker runs as root, as it does in a container (make run).

    Celery advises ``--uid`` to drop privileges, and production follows it (docs/operations.md:
    the worker runs as an unprivileged user). ``C_FORCE_ROOT`` would not quiet it: it only lets a
    root worker accept pickle, which clinic never does (JSON only). A development checkout run
    as root keeps its database and broker folders root's, so a worker under another uid could not
    write them; there the warning is only noise.
    """
    if env_name == "development" and hasattr(os, "geteuid") and os.geteuid() == 0:
        warnings.filterwarnings(
            "ignore", message="You're running the worker with superuser privileges", category=SecurityWarning
        )
