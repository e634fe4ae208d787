"""Text messages through a provider interface: console and file for development, Twilio's API.

``SMS_BACKEND`` chooses the implementation. The Twilio one speaks Twilio's REST API (and so any
Twilio-compatible provider, through ``SMS_API_URL``) with ``requests``; inbound webhooks are
authenticated with Twilio's signature scheme (:func:`request_signature`).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import requests
from flask import current_app

from clinic.core.time import utcnow

log = logging.getLogger(__name__)

#: Twilio error codes meaning the number will never take this message.
_PERMANENT_CODES = {
    21211: "not a valid phone number",
    21408: "the region is not enabled",
    21610: "the recipient replied STOP",
    21612: "the number cannot be reached from the sender",
    21614: "not a mobile number",
}
OPTED_OUT_CODE = 21610


class SmsError(Exception):
    """Sending failed."""


class TransientSmsError(SmsError):
    """Worth retrying: the provider is down, slow or rate-limiting."""


class PermanentSmsError(SmsError):
    """Retrying will not help; ``opted_out`` when the provider knows the number sent STOP."""

    def __init__(self, message: str, *, opted_out: bool = False) -> None:
        super().__init__(message)
        self.opted_out = opted_out


class SmsBackend(Protocol):
    def send(self, to: str, body: str) -> str:
        """Send ``body`` to the E.164 number ``to``; return the provider's message id."""


class ConsoleSmsBackend:
    """Development: the message is written to the log."""

    def send(self, to: str, body: str) -> str:
        message_id = f"console-{uuid.uuid4().hex[:12]}"
        log.info("sms (console backend, not sent) to=%s id=%s body=%s", to, message_id, body)
        return message_id


class FileSmsBackend:
    """Development and tests: one JSON object per line appended to ``SMS_FILE_PATH``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def send(self, to: str, body: str) -> str:
        message_id = f"file-{uuid.uuid4().hex[:12]}"
        line = json.dumps({"id": message_id, "at": utcnow().isoformat(), "to": to, "body": body}, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)  # workers may share the file
                handle.write(line + "\n")
        except OSError as exc:
            raise TransientSmsError(f"cannot write {self.path}: {exc}") from exc
        return message_id


class TwilioSmsBackend:
    """Twilio's Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``)."""

    def __init__(self, *, api_url: str, account_sid: str, auth_token: str, sender: str, timeout: float) -> None:
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = (account_sid, auth_token)
        self.sender = sender
        self.timeout = timeout

    def send(self, to: str, body: str) -> str:
        data = {"To": to, "Body": body}
        # A Messaging Service SID lets the provider pick the number; otherwise send from ours.
        data["MessagingServiceSid" if self.sender.startswith("MG") else "From"] = self.sender
        try:
            response = requests.post(self.url, data=data, auth=self.auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientSmsError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientSmsError(f"provider answered {response.status_code}")
        payload = _json(response)
        if response.status_code >= 400:
            code = payload.get("code")
            reason = _PERMANENT_CODES.get(code, str(payload.get("message", ""))[:200]) if isinstance(code, int) else ""
            raise PermanentSmsError(
                f"provider refused ({response.status_code}, code {code}): {reason}", opted_out=code == OPTED_OUT_CODE
            )
        sid = payload.get("sid")
        if not isinstance(sid, str):
            raise TransientSmsError("provider answered without a message id")
        return sid


def _json(response: requests.Response) -> dict[str, object]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def sms_backend() -> SmsBackend:
    """The backend ``SMS_BACKEND`` names (checked at start-up by config)."""
    config = current_app.config
    name = config["SMS_BACKEND"]
    if name == "twilio":
        return TwilioSmsBackend(
            api_url=config["SMS_API_URL"],
            account_sid=config["SMS_ACCOUNT_SID"],
            auth_token=config["SMS_AUTH_TOKEN"],
            sender=config["SMS_FROM"],
            timeout=float(config["SMS_TIMEOUT_SECONDS"]),
        )
    if name == "file":
        return FileSmsBackend(config["SMS_FILE_PATH"])
    return ConsoleSmsBackend()


def request_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """Twilio's webhook signature: base64 HMAC-SHA1 over the URL, then every name and value.

    Names are sorted; a repeated name contributes each of its distinct values, sorted (as
    Twilio's own libraries compute it).
    """
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_is_valid(url: str, params: Iterable[tuple[str, str]], signature: str, auth_token: str) -> bool:
    if not auth_token or not signature:
        return False
    expected = request_signature(url, params, auth_token)
    return hmac.compare_digest(expected.encode(), signature.encode())
