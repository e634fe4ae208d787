"""The keys of the audit chain: an HMAC key that never enters the database, and its retired keys.

Each sealed entry records the id of the key that sealed it (``key_id``), so that a key can be
rotated without re-sealing anything: the new key seals from then on, and the retired ones,
listed in ``AUDIT_CHAIN_KEYS``, still verify the entries they sealed. A key's id is derived from
the key itself (an HMAC of a fixed label), so operators never have to number keys, and the id
says nothing about the key.

Entries sealed before the chain was keyed have no ``key_id``: their hash is the plain SHA-256 of
the same content, and they are accepted only as the start of the chain (see ``verify_chain``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from flask import current_app

#: Length of a key id (hex characters): 48 bits, plenty to tell a handful of keys apart.
KEY_ID_LENGTH = 12

_KEY_ID_LABEL = b"clinic audit chain key id"


def key_id(secret: str) -> str:
    """The short, public id of a key: an HMAC of a fixed label under the key."""
    return hmac.new(secret.encode(), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class Keyring:
    #: Id of the key that seals new entries.
    current_id: str
    #: Every configured key by id: the current one and the retired ones.
    keys: dict[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]


def keyring() -> Keyring:
    """The keys configured for this application (``AUDIT_CHAIN_KEY``, ``AUDIT_CHAIN_KEYS``)."""
    current = str(current_app.config["AUDIT_CHAIN_KEY"])
    if not current:
        raise RuntimeError("AUDIT_CHAIN_KEY is not set")
    retired = [part for part in re.split(r"[,\s]+", str(current_app.config.get("AUDIT_CHAIN_KEYS") or "")) if part]
    keys = {key_id(secret): secret.encode() for secret in (*retired, current)}
    return Keyring(current_id=key_id(current), keys=keys)


def chain_hash(prev_hash: str, canonical: str, key: bytes | None) -> str:
    """HMAC-SHA-256 under ``key`` of the previous hash and an entry's canonical content.

    ``key`` None is the plain SHA-256 of the same text: how entries were sealed before keying.
    """
    message = (prev_hash + "\n" + canonical).encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
