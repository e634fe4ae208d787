"""Reminder delivery: 10,000 due reminders through Redis and two Celery workers into a local SMTP server.

    .venv/bin/python bench/reminders.py [--reminders 10000] [--ceiling-messages 3000] [--send-chunk 20]

The script makes a throw-away PostgreSQL database next to the benchmark one (dropped at the end),
migrates it and inserts a site, a clinician, one client per reminder with an email address and an
email consent, one appointment each three days ahead, and one email reminder each, due now. It
starts an SMTP server (aiosmtpd) on a free port of 127.0.0.1, Celery beat (dispatch every second,
REMINDER_BATCH_SIZE claims at a time) and two worker processes (`--pool=solo`) on Redis database 12
(emptied before and after), and waits until every reminder is sent.

The ceiling is a plain loop in its own process sending a message of the same size to the same
server: once with one SMTP connection per message, once with one connection per REMINDER_SEND_CHUNK
messages, as clinic's send tasks do; the faster of the two is the ceiling. Every rate is counted
at the server, from its first message to its last.
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from _common import BENCH_DATABASE_URL, ROOT, machine

#: A Redis database of its own: the test suite uses 15 and its delivery tests 13 and 14 (and empty them).
REDIS_URL = "redis://127.0.0.1:6379/12"
WORKERS = 2
BENCH_PASSWORD = "bench-only-passphrase-0123"  # noqa: S105 - a throw-away database


@dataclass
class Mailbox:
    """An aiosmtpd handler that counts messages and keeps their Message-IDs and arrival times."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    arrivals: list[float] = field(default_factory=list)
    message_ids: set[bytes] = field(default_factory=set)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        content: bytes = envelope.content
        start = content.find(b"Message-ID:")
        message_id = content[start: content.find(b"\n", start)].strip() if start >= 0 else b""
        with self.lock:
            self.arrivals.append(time.perf_counter())
            self.message_ids.add(message_id)
        return "250 Message accepted for delivery"

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self.message_ids.clear()

    def rate(self) -> tuple[int, float]:
        with self.lock:
            count = len(self.arrivals)
            span = self.arrivals[-1] - self.arrivals[0] if count > 1 else 0.0
        return count, (count - 1) / span if span else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the ceiling: a plain SMTP loop --------------------------------------------------------


def sample_message(number: int) -> EmailMessage:
    """About the size of a reminder: a short text and a calendar file."""
    message = EmailMessage()
    message["From"] = "clinic <no-reply@clinic.invalid>"
    message["To"] = f"client{number}@example.org"
    message["Subject"] = "Your appointment at Riverside Health"
    message["Message-ID"] = f"<plain-{number}@clinic.local>"
    message.set_content("You have an appointment at Riverside Health on Mon, Mar 9 at 9:30 AM EDT.\n"
                        "Confirm or cancel: https://clinic.example.org/r/" + "x" * 160 + "\n"
                        "Reply STOP to stop these messages.\n")
    calendar = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//clinic//EN\r\nBEGIN:VEVENT\r\n"
                f"UID:appointment-{number}@clinic.example.org\r\nSEQUENCE:0\r\nDTSTAMP:20260301T120000Z\r\n"
                "DTSTART:20260309T133000Z\r\nDTEND:20260309T143000Z\r\nSUMMARY:Appointment at Riverside Health\r\n"
                "LOCATION:Riverside Health\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    message.add_attachment(calendar.encode(), maintype="text", subtype="calendar", filename="appointment.ics")
    return message


def plain_loop(port: int, count: int, per_connection: int) -> None:
    """Send ``count`` messages, opening a new SMTP connection every ``per_connection`` messages."""
    for first in range(0, count, per_connection):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            for number in range(first, min(first + per_connection, count)):
                smtp.send_message(sample_message(number))


# --- the database --------------------------------------------------------------------------


def database_urls() -> tuple[str, str]:
    from sqlalchemy import make_url

    base = make_url(BENCH_DATABASE_URL)
    name = f"clinic_bench_reminders_{uuid.uuid4().hex[:8]}"
    return base.render_as_string(hide_password=False), base.set(database=name).render_as_string(hide_password=False)


def admin_execute(admin_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def populate(app: Any, count: int) -> None:
    """A site, a clinician, and per reminder: a client, an email consent, an appointment, the due row."""
    from flask_migrate import upgrade
    from sqlalchemy import insert

    from clinic.auth import operations as auth_ops
    from clinic.auth.models import Role
    from clinic.clients.models import Channel, Client, ClientStatus, Consent, ConsentKind
    from clinic.extensions import db
    from clinic.notify.models import Reminder, ReminderChannel, ReminderStatus
    from clinic.scheduling.models import Appointment, AppointmentKind, AppointmentStatus

    with app.app_context():
        upgrade()
        site = auth_ops.create_site(name="Bench Site", timezone="America/New_York", display_name="Riverside Health")
        clinician = auth_ops.create_user(role=Role.CLINICIAN, audit=False, email="bench@example.org",
                                         name="Bench Clinician", password=BENCH_PASSWORD,
                                         site_ids=[site.id])
        db.session.flush()
        now = datetime.now(UTC).replace(microsecond=0)
        first = now + timedelta(days=3)
        ids = range(1, count + 1)
        db.session.execute(insert(Client), [
            {"id": i, "site_id": site.id, "mrn": f"{i:08d}", "first_name": "Client", "last_name": f"N{i}",
             "search_first": "client", "search_last": f"n{i}", "date_of_birth": date(1980, 1, 1),
             "email": f"client{i}@example.org", "preferred_language": "en", "status": ClientStatus.ACTIVE}
            for i in ids
        ])
        db.session.execute(insert(Consent), [
            {"client_id": i, "site_id": site.id, "kind": ConsentKind.COMMUNICATION, "channel": Channel.EMAIL,
             "granted_on": (now - timedelta(days=30)).date(), "evidence": "signed form"}
            for i in ids
        ])
        db.session.execute(insert(Appointment), [
            {"id": i, "site_id": site.id, "kind": AppointmentKind.INDIVIDUAL_THERAPY, "is_group": False,
             "clinician_id": clinician.id, "client_id": i, "starts_at": first + timedelta(minutes=30 * i),
             "ends_at": first + timedelta(minutes=30 * i + 30), "timezone": "America/New_York",
             "status": AppointmentStatus.SCHEDULED, "sequence": 0}
            for i in ids
        ])
        db.session.execute(insert(Reminder), [
            {"appointment_id": i, "client_id": i, "site_id": site.id, "channel": ReminderChannel.EMAIL,
             "lead_time_minutes": 2880, "due_at": now, "available_at": now,
             "for_starts_at": first + timedelta(minutes=30 * i), "status": ReminderStatus.PENDING, "attempts": 0}
            for i in ids
        ])
        for table in ("clients", "appointments"):
            db.session.execute(db.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})"))
        db.session.commit()
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()


def outcome(app: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from clinic.extensions import db
    from clinic.notify.models import Reminder

    with app.app_context():
        rows = db.session.execute(select(Reminder.status, func.count()).group_by(Reminder.status)).all()
        db.session.rollback()
        return {str(status): int(n) for status, n in rows}


# --- the run -------------------------------------------------------------------------------


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "wsgi.celery_app", *args], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def deliver_through_celery(
    url: str, port: int, options: argparse.Namespace, mailbox: Mailbox, processes: list[subprocess.Popen[bytes]]
) -> float:
    """Start two workers and beat; wait until every reminder reached the server; the seconds it took."""
    env = {
        **os.environ, "CLINIC_ENV": "production", "PYTHONPATH": str(ROOT), "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(port),
        "REMINDER_QUIET_HOURS": "00:00-00:00", "REMINDER_DISPATCH_SECONDS": "1",
        "REMINDER_BATCH_SIZE": str(options.batch_size), "REMINDER_SEND_CHUNK": str(options.send_chunk),
        "SMS_BACKEND": "console",
        "PUBLIC_BASE_URL": "https://clinic.example.org",
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for number in range(1, WORKERS + 1):
            processes.append(start(
                ["worker", "--pool=solo", "--loglevel=WARNING", f"--hostname=bench{number}@localhost",
                 "--without-mingle", "--without-gossip"], env, folder / f"worker{number}.log"))
        processes.append(start(["beat", f"--schedule={folder / 'beat-schedule'}", "--loglevel=WARNING"], env,
                               folder / "beat.log"))
        began = time.perf_counter()
        deadline = began + options.timeout
        while len(mailbox.arrivals) < options.reminders and time.perf_counter() < deadline:
            if any(p.poll() is not None for p in processes):
                for log in sorted(folder.glob("*.log")):
                    print(log.name, log.read_text()[-2000:], file=sys.stderr)
                raise SystemExit("a Celery process exited")
            time.sleep(0.5)
        wall = time.perf_counter() - began
        time.sleep(2)  # let the last outcomes commit
        for process in processes:
            stop(process)
    return wall


def report(options: argparse.Namespace, port: int, ceilings: dict[str, tuple[int, float]], mailbox: Mailbox, *,
           wall: float, statuses: dict[str, int]) -> None:
    count, rate = mailbox.rate()
    ceiling = max(rate for _count, rate in ceilings.values())
    print(f"machine: {machine()}; {WORKERS} worker processes (solo pool), beat dispatching every 1 s, "
          f"batch {options.batch_size}, {options.send_chunk} per send task; Redis db 12; aiosmtpd on 127.0.0.1:{port}")
    print(f"{'run':44} {'messages':>9} {'msg/s':>8} {'of the faster loop':>19}")
    for name, (plain_count, plain_rate) in ceilings.items():
        print(f"{name:44} {plain_count:9d} {plain_rate:8.1f} {plain_rate / ceiling:19.0%}")
    print(f"{'reminders via Redis and two workers':44} {count:9d} {rate:8.1f} {rate / ceiling:19.0%}")
    print(f"all sent after {wall:.1f} s (from the start of the workers); distinct Message-IDs "
          f"{len(mailbox.message_ids)}; reminder statuses {statuses}")
    if count != options.reminders or len(mailbox.message_ids) != options.reminders:
        raise SystemExit("not every reminder arrived exactly once")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--ceiling-messages", type=int, default=3_000)
    parser.add_argument("--batch-size", type=int, default=1_000, help="REMINDER_BATCH_SIZE for the run")
    parser.add_argument("--send-chunk", type=int, default=20, help="REMINDER_SEND_CHUNK for the run")
    parser.add_argument("--timeout", type=int, default=600, help="seconds to wait for every reminder")
    parser.add_argument("--plain-loop", nargs=3, type=int, metavar=("PORT", "COUNT", "PER"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.plain_loop:
        plain_loop(*options.plain_loop)
        return

    import redis
    from aiosmtpd.controller import Controller

    broker = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    broker.ping()
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    admin_url, url = database_urls()
    name = url.rsplit("/", 1)[1]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # The ceilings first, each in a process of its own (not competing with the server for the GIL):
        # one connection per message, and one per send task's worth of messages, as clinic sends them.
        ceilings = {}
        for per in (1, options.send_chunk):
            subprocess.run([sys.executable, __file__, "--plain-loop", str(port), str(options.ceiling_messages),
                            str(per)], check=True, timeout=options.timeout)
            ceilings[f"plain SMTP loop, {per} per connection"] = mailbox.rate()
            mailbox.reset()

        admin_execute(admin_url, f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = url
        os.environ["REDIS_URL"] = REDIS_URL
        from _common import make_app

        app = make_app()
        started = time.perf_counter()
        populate(app, options.reminders)
        print(f"inserted {options.reminders} due reminders in {time.perf_counter() - started:.1f} s")
        broker.flushdb()
        wall = deliver_through_celery(url, port, options, mailbox, processes)
        statuses = outcome(app)
        with app.app_context():
            from clinic.extensions import db

            db.engine.dispose()
    finally:
        for process in processes:
            stop(process)
        controller.stop()
        broker.flushdb()
        admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    report(options, port, ceilings, mailbox, wall=wall, statuses=statuses)

if __name__ == "__main__":
    main()
