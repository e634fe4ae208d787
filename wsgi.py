"""Entry point: ``gunicorn wsgi:app``, ``flask --app wsgi``, ``celery -A wsgi.celery_app``."""

import gc

from clinic import create_app

app = create_app()
celery_app = app.extensions["celery"]
# What was built so far lives as long as the process: keep it out of every collection. The
# collections at exit scanned it for seconds, past the time honcho (make run) gives a process to stop.
gc.freeze()
