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


def send_email(message: EmailMessage) -> None:
    """Deliver one message; raises TransientEmailError or PermanentEmailError on failure."""
    config = current_app.config
    server = config.get("MAIL_SERVER")
    if not server:
        log.info("email (MAIL_SERVER unset, not sent) to=%s subject=%s", message["To"], message["Subject"])
        return
    try:
        with smtplib.SMTP(server, int(config["MAIL_PORT"]), timeout=float(config["MAIL_TIMEOUT_SECONDS"])) as smtp:
            if config["MAIL_USE_TLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _msg in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TransientEmailError(f"recipient deferred: {codes}") from exc
        raise PermanentEmailError(f"recipient refused: {codes}") from exc
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientEmailError(f"server answered {exc.smtp_code}") from exc
        raise PermanentEmailError(f"server answered {exc.smtp_code}") from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientEmailError(f"{type(exc).__name__}: {exc}") from exc
