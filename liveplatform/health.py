"""Liveness (``/healthz``: no dependencies) and readiness (``/readyz``: every dependency).

An orchestrator restarts a process whose liveness fails and stops routing to one
whose readiness fails. Liveness must therefore never depend on the database or
Redis (an outage would restart every process in a loop); readiness checks each
dependency within a deadline and names the ones that failed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from .shutdown import is_draining

# Checks run in threads so one hung dependency cannot hold the others past the deadline.
_EXECUTOR = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process can serve requests at all."""
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    """A real query on the default database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # Checks run in a pool thread: do not leave a connection open per thread.
        connection.close()


def check_redis() -> None:
    """PING the Redis that Celery's broker and the cache use."""
    timeout = settings.READINESS_TIMEOUT_SECONDS
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if not client.ping():
            raise RuntimeError("PING was not answered")
    finally:
        client.close()


def check_channel_layer() -> None:
    """Send a message to a fresh channel and receive it back (every shard the layer uses)."""

    async def round_trip() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel(prefix="readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        message = await asyncio.wait_for(layer.receive(channel), timeout=settings.READINESS_TIMEOUT_SECONDS)
        if message.get("token") != token:
            raise RuntimeError("the channel layer returned a different message")

    async_to_sync(round_trip)()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "channel_layer": check_channel_layer,
}


def run_checks(timeout: float) -> dict[str, dict[str, object]]:
    """Run every check in parallel; each answers ok, or fails with a reason (timeouts included)."""
    started = time.monotonic()
    futures = {name: _EXECUTOR.submit(check) for name, check in CHECKS.items()}
    results: dict[str, dict[str, object]] = {}
    for name, future in futures.items():
        remaining = max(0.0, started + timeout - time.monotonic())
        try:
            future.result(timeout=remaining)
            results[name] = {"ok": True}
        except FutureTimeout:
            results[name] = {"ok": False, "error": f"no answer within {timeout:g} s"}
        except Exception as exc:  # noqa: BLE001 - any failure makes the process unready
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return results


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database, Redis and the channel layer all answer; else 503 naming them."""
    if is_draining():
        return JsonResponse({"status": "draining", "failed": ["draining"], "checks": {}}, status=503)
    # The round trip itself is bounded by the timeout; allow a little for thread start-up.
    checks = run_checks(settings.READINESS_TIMEOUT_SECONDS + 0.5)
    failed = [name for name, result in checks.items() if not result["ok"]]
    return JsonResponse(
        {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks},
        status=503 if failed else 200,
    )
