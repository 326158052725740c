"""Helpers shared by the workers tests that go through the real stack."""

from __future__ import annotations

import time

from django.test import Client
from django.utils import timezone

FINAL = {"succeeded", "failed", "cancelled"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def make_notifications(tenant, recipients, count: int, prefix: str = "Item") -> None:
    """Rows to export, written directly (fast): the export reads the table, not events."""
    from notifications.models import Notification

    now = timezone.now()
    Notification.objects.bulk_create(
        [
            Notification(
                tenant=tenant,
                recipient=recipients[i % len(recipients)],
                category="general",
                title=f"{prefix} {i + 1}",
                body="=SUM(A1:A2)" if i == 0 else f"body {i + 1}",
                created_at=now,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )


def follow(sock, job_id: int, timeout: float = 90.0) -> list[dict]:
    """Consume frames until ``job_id`` reaches a final state; its job frames, in arrival order."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"job {job_id} did not finish within {timeout}s: {[f['type'] for f in frames]}")
        try:
            frame = sock.recv(timeout=remaining)
        except TimeoutError:
            continue
        if frame["type"] in ("job.state", "job.progress") and frame["data"].get("id") == job_id:
            frames.append(frame)
            if frame["type"] == "job.state" and frame["data"]["state"] in FINAL:
                return frames


def wait_job_frame(sock, job_id: int, predicate, timeout: float = 60.0) -> dict:
    """The first job frame of ``job_id`` that matches ``predicate``."""
    return sock.wait_for(
        lambda f: f["type"] in ("job.state", "job.progress") and f["data"].get("id") == job_id and predicate(f),
        timeout,
    )


def durable_states(frames: list[dict]) -> list[str]:
    """The states announced by durable ``job.state`` events (not the snapshot a socket gets on connect)."""
    return [f["data"]["state"] for f in frames if f["type"] == "job.state" and "stream" in f]
