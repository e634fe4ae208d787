"""Email over SMTP with the standard library's client; settings from the environment.

Without ``MAIL_SERVER`` (development) messages are written to the log instead of sent.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app

log = logging.getLogger(__name__)


class EmailError(Exception):
    """Sending failed."""


class TransientEmailError(EmailError):
    """Worth retrying: the server is down, busy, or answered with a 4xx."""


class PermanentEmailError(EmailError):
    """Retrying will not help: the recipient was refused or the message rejected (5xx)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


def build_message(
    *, to: str, subject: str, text: str, attachments: Sequence[Attachment] = (), message_id: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_DEFAULT_SENDER"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="clinic.local")
    message.set_content(text)
    for attachment in attachments:
        message.add_attachment(
            attachment.content, maintype=attachment.maintype, subtype=attachment.subtype, filename=attachment.filename
        )
    return message


class Mailer:
    """One SMTP connection for a run of messages: opened at the first send, reused, closed at the end.

    A failed conversation closes the connection (the next send opens a fresh one), so one bad
    recipient or a dropped connection never poisons the messages after it. Use as a context
    manager; without ``MAIL_SERVER`` messages are logged instead.
    """

    def __init__(self) -> None:
        config = current_app.config
        self.server = config.get("MAIL_SERVER") or ""
        self.port = int(config["MAIL_PORT"])
        self.timeout = float(config["MAIL_TIMEOUT_SECONDS"])
        self.use_tls = bool(config["MAIL_USE_TLS"])
        self.username = config.get("MAIL_USERNAME") or ""
        self.password = config.get("MAIL_PASSWORD") or ""
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self.server, self.port, timeout=self.timeout)
            try:
                if self.use_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def send(self, message: EmailMessage) -> None:
        """Deliver one message; raises TransientEmailError or PermanentEmailError on failure."""
        if not self.server:
            log.info("email (MAIL_SERVER unset, not sent) to=%s subject=%s", message["To"], message["Subject"])
            return
        try:
            self._connection().send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [code for code, _msg in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise TransientEmailError(f"recipient deferred: {codes}") from exc
            raise PermanentEmailError(f"recipient refused: {codes}") from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            if 400 <= exc.smtp_code < 500:
                raise TransientEmailError(f"server answered {exc.smtp_code}") from exc
            raise PermanentEmailError(f"server answered {exc.smtp_code}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TransientEmailError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """QUIT politely; a connection that is already gone is simply dropped."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def send_email(message: EmailMessage) -> None:
    """Deliver one message over a connection of its own; raises TransientEmailError or PermanentEmailError."""
    with Mailer() as mailer:
        mailer.send(message)
