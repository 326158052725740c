"""The VAPID key pair that identifies this server to browsers' push services (RFC 8292).

Keys come from the settings (``WEBPUSH_VAPID_PUBLIC_KEY``/``_PRIVATE_KEY``; ``manage.py
generate_vapid_keys`` prints a pair). Where they are unset and ``WEBPUSH_GENERATE_KEYS``
allows it (development, tests), a pair is made once under ``VAR_DIR`` and kept, so every
process of the platform signs with the same key and subscriptions survive a restart.
Production sets no default: without keys there is no push (``push.checks`` says so).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings


@dataclass(frozen=True)
class VapidKeys:
    public_key: str  # the uncompressed P-256 point, base64url: the browser's applicationServerKey
    private_key: str  # the 32-byte private value, base64url: what pywebpush signs with
    subject: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def generate_pair() -> tuple[str, str]:
    """A new (public, private) VAPID key pair, both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(public), b64url(private)


def vapid_keys() -> VapidKeys | None:
    """This platform's keys, or None when push is not configured."""
    conf = settings.WEBPUSH
    if conf["VAPID_PUBLIC_KEY"] and conf["VAPID_PRIVATE_KEY"]:
        return VapidKeys(conf["VAPID_PUBLIC_KEY"], conf["VAPID_PRIVATE_KEY"], conf["VAPID_SUBJECT"])
    if not conf["GENERATE_KEYS"]:
        return None
    path = Path(settings.VAR_DIR) / "vapid.json"
    if not path.exists():
        public, private = generate_pair()
        try:  # O_EXCL: of processes starting together, one writes and the others read its pair
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                json.dump({"public_key": public, "private_key": private}, file)
    stored = json.loads(path.read_text())
    return VapidKeys(stored["public_key"], stored["private_key"], conf["VAPID_SUBJECT"])
