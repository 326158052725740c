"""A Web Push service on 127.0.0.1 for tests: it takes messages as FCM or Mozilla's would, and decrypts them.

Each subscription the tests make has its own path on this server and its own key pair,
as a browser's would; ``FakePushService.messages(path)`` gives what reached that path,
decrypted with the subscription's private key (RFC 8291, aes128gcm), with the headers
the platform sent. ``answer(path, 410, ...)`` makes the next messages to a path get
those statuses (then 201), as a push service does for an expired subscription or
while it is down.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Receiver:
    """One browser's subscription: the keys its messages are encrypted to."""

    path: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(point)


@dataclass
class Received:
    """A message as it reached the push service, decrypted."""

    headers: dict[str, str]
    payload: dict[str, Any]
    status: int


@dataclass
class FakePushService:
    server: ThreadingHTTPServer
    receivers: dict[str, Receiver] = field(default_factory=dict)
    received: dict[str, list[Received]] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def receiver(self, name: str) -> Receiver:
        """A new subscription's keys and its endpoint path on this service."""
        receiver = Receiver(
            f"/push/{name}-{os.urandom(4).hex()}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16)
        )
        self.receivers[receiver.path] = receiver
        return receiver

    def subscription(self, receiver: Receiver) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives in a browser."""
        return {
            "endpoint": self.url + receiver.path,
            "keys": {"p256dh": receiver.p256dh, "auth": b64url(receiver.auth)},
        }

    def answer(self, receiver: Receiver, *statuses: int) -> None:
        self.answers[receiver.path] = list(statuses)

    def messages(self, receiver: Receiver) -> list[Received]:
        with self.lock:
            return list(self.received.get(receiver.path, []))

    def delivered(self, receiver: Receiver) -> list[dict[str, Any]]:
        """The payloads the service accepted (201) for this subscription."""
        return [message.payload for message in self.messages(receiver) if message.status == 201]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_push_service() -> FakePushService:
    """Serve on a free port of 127.0.0.1 in a thread; ``stop()`` ends it."""
    service: FakePushService

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver = service.receivers.get(self.path)
            with service.lock:
                queue = service.answers.get(self.path, [])
                status = queue.pop(0) if queue else (201 if receiver else 404)
            payload: dict[str, Any] = {}
            if receiver is not None:
                clear = http_ece.decrypt(body, private_key=receiver.private_key, auth_secret=receiver.auth)
                payload = json.loads(clear)
            with service.lock:
                service.received.setdefault(self.path, []).append(
                    Received({k.lower(): v for k, v in self.headers.items()}, payload, status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service = FakePushService(server)
    threading.Thread(target=server.serve_forever, daemon=True, name="fake-push-service").start()
    return service
