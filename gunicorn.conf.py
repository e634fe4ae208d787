"""gunicorn's settings for clinic: ``gunicorn -c gunicorn.conf.py --bind HOST:PORT`` (make run and production).

The access log leaves out what staff typed and what grants access: no query string (a search
``?q=`` carries client names, MRNs and phone numbers), no Referer (it carries the previous page's
query string), and the token of a reminder link (``/r/<token>``) is replaced by ``…``. A line is
the address, the time, the method, the path, the protocol, the status, the bytes sent and the
duration: ``127.0.0.1 [29/Nov/2026:10:00:00 +0000] "GET /api/v1/clients HTTP/1.1" 200 812 14ms``.
Any other gunicorn setting can still be given on the command line or in ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

wsgi_app = "wsgi:app"
accesslog = "-"
#: No %(r)s (the request line with its query), %(q)s (the query) or %(f)s (the Referer).
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'

#: A reminder link's path is a signed token that confirms or cancels an appointment.
_SECRET_PATHS = re.compile(r"^/r/[^/]+")


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's logger, with the secret part of a path replaced by ``…`` in the access log."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = _SECRET_PATHS.sub("/r/…", atoms.get("U") or "")
        # Nor is anything that carries a query string or a credential offered to another format.
        for name in _WITHHELD:
            atoms.pop(name, None)
        return atoms


_WITHHELD = (
    "r", "q", "f",
    "{referer}i", "{authorization}i", "{cookie}i", "{x-csrf-token}i",
    "{raw_uri}e", "{query_string}e", "{http_referer}e", "{http_authorization}e", "{http_cookie}e",
)


logger_class = AccessLogger


def post_fork(_server: Any, _worker: Any) -> None:
    """A worker leaves the master's process group, so that only the master receives a signal sent to the group.

    honcho (``make run``) stops its processes with SIGTERM to each one's group. A worker that got it
    too was already exiting when the master's own SIGTERM arrived, was killed by it, and the master
    logged "Worker was sent SIGTERM!" as an error. Now the master alone is signalled and stops its
    workers in order; a worker whose master is gone notices and exits.
    """
    os.setpgid(0, 0)
