"""A lock that keeps a periodic job from running twice at once (two beats, a slow run, a retry).

With Redis as the broker the lock is a Redis key (SET NX with an expiry, released only by its
owner); with the embedded broker, whose workers all run on one machine, it is an exclusive
``flock`` on a file next to the broker's folder.
"""

from __future__ import annotations

import fcntl
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


@contextmanager
def job_lock(name: str, *, ttl_seconds: int = 300) -> Iterator[bool]:
    """Yield True when this caller holds the lock for ``name``, False when someone else does."""
    broker: str = current_app.config["CELERY_BROKER_URL"]
    if broker.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=5)
        token = secrets.token_hex(16)
        key = f"clinic:lock:{name}"
        acquired = bool(client.set(key, token, nx=True, ex=ttl_seconds))
        try:
            yield acquired
        finally:
            if acquired:
                client.eval(_RELEASE, 1, key, token)
            client.close()
        return
    folder = Path(current_app.config["CELERY_DATA_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
