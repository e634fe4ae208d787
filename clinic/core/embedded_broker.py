"""The embedded broker (kombu's file-system transport), made to notice a worker's stop at once.

An idle worker on this transport waits for messages two seconds at a time, and its loop waits
once more after the stop was asked for, whatever the polling interval: a worker stopped with
SIGTERM (Ctrl-C on ``make run``) took four to six seconds to go, past the five honcho allows
before it kills. Here the two seconds are waited one polling interval at a time, and the wait
ends as soon as the worker is stopping. Nothing else changes: same folders, same messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery.worker import state
from kombu.transport import filesystem


def _stopping() -> bool:
    # As celery.worker.state.maybe_shutdown() reads them: an exit code, 0 included, means "stop".
    return any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate))


class Transport(filesystem.Transport):
    """kombu's file-system transport, whose wait for messages ends when the worker is stopping."""

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        drain: Callable[..., Any] = super().drain_events  # kombu's virtual transport is untyped
        interval = float(self.polling_interval or 0)
        if timeout is None or interval <= 0 or timeout <= interval:
            return drain(connection, timeout=timeout, **kwargs)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return drain(connection, timeout=interval, **kwargs)
            except TimeoutError:
                if _stopping() or time.monotonic() >= deadline:
                    raise
