"""Sockets while Redis is down: a clean "try again later" for each, and two log lines per outage.

Without this, a socket whose consumer hit the outage (joining its groups at the
handshake, or its channel layer's receive failing later) ended with the exception
escaping to the ASGI server: daphne answered the handshake with HTTP 500 and logged
the traceback, once per socket and per reconnect attempt. Worse, the channel layer
hands one exception object to every waiting consumer, and each ``raise`` of it added
that consumer's frames to the object's ``__traceback__``: the logged tracebacks grew
by the thousand lines (issue 15: 73 MB of log in 70 s).

``RedisOutageGuard`` wraps the WebSocket routes. A socket that ends with a Redis
connection error is answered cleanly instead: before ``accept`` the handshake is
refused (HTTP 503 where the server supports the ASGI HTTP-response extension, as
uvicorn does; else accepted and closed at once), after it the socket is closed with
1013 "try again later"; clients reconnect with backoff and jitter (``realtime.js``).
The error's traceback is dropped, so the shared object stops growing. While the
outage lasts, new handshakes are refused at once, without touching the database,
except one every ``PROBE_SECONDS`` that checks whether Redis answers again. The log
gets one line when the outage begins and one when it ends, with counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from django.conf import settings

logger = logging.getLogger(__name__)

TRY_AGAIN_LATER = 1013
PROBE_SECONDS = 1.0
PROBE_TIMEOUT = 0.5


def is_redis_outage(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a lost or refused connection to Redis.

    Only redis-py's errors count (it wraps socket errors in them): a plain
    ``ConnectionResetError`` may be the client leaving, which says nothing about Redis.
    """
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        if isinstance(current, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


class Outage:
    """The process's view of Redis: answering, or down since when, and what was refused meanwhile."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.refused = 0
        self.closed = 0
        self._last_probe = 0.0

    def begin(self, error: BaseException) -> None:
        """Note that a socket failed on Redis; the first failure of an outage is logged."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.refused = self.closed = 0
            self._last_probe = self.down_since
            logger.warning(
                "Redis is unavailable (%s: %s): sockets are refused with 1013 until it is back",
                type(error).__name__,
                str(error)[:200],
            )

    def end(self) -> None:
        """Redis answers again: log the outage's length and what it cost."""
        if self.down_since is not None:
            logger.warning(
                "Redis is back after %.1f s: %d handshake(s) refused, %d open socket(s) closed with 1013",
                time.monotonic() - self.down_since,
                self.refused,
                self.closed,
            )
            self.down_since = None

    async def admits(self) -> bool:
        """Whether to let a handshake try: always while Redis answers; during an outage, a probe's verdict."""
        if self.down_since is None:
            return True
        now = time.monotonic()
        if now - self._last_probe < PROBE_SECONDS:
            return False
        self._last_probe = now
        if await _redis_answers():
            self.end()
            return True
        return False


async def _redis_answers() -> bool:
    for url in settings.CHANNEL_LAYER_REDIS_URLS:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
        try:
            await asyncio.wait_for(client.ping(), PROBE_TIMEOUT * 2)
        except (TimeoutError, OSError, redis.exceptions.RedisError):
            return False
        finally:
            await client.aclose()
    return True


OUTAGE = Outage()


class RedisOutageGuard:
    """ASGI middleware for the WebSocket routes: Redis outages end sockets cleanly (see module docstring)."""

    def __init__(self, inner: Any, outage: Outage = OUTAGE) -> None:
        self.inner = inner
        self.outage = outage

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        if not await self.outage.admits():
            self.outage.refused += 1
            return await refuse_try_again_later(scope, receive, send)
        state = {"accepted": False, "closed": False}

        async def tracked_send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] in ("websocket.close", "websocket.http.response.start"):
                state["closed"] = True
            await send(message)

        try:
            await self.inner(scope, receive, tracked_send)
        except Exception as error:
            if not is_redis_outage(error):
                raise
            # The layer hands this one object to every consumer: keep it from collecting their frames.
            error.__traceback__ = None
            self.outage.begin(error)
            if state["closed"]:
                return
            if state["accepted"]:
                self.outage.closed += 1
                await _close(send, TRY_AGAIN_LATER)
            else:
                self.outage.refused += 1
                await refuse_try_again_later(scope, None, send)


async def _close(send: Any, code: int) -> None:
    try:
        await send({"type": "websocket.close", "code": code})
    except Exception:  # noqa: BLE001 - the client may be gone already
        pass


async def refuse_try_again_later(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse a handshake not yet accepted: HTTP 503 if the server can send one, else accept and close 1013.

    Either way the client learns the server is there but busy, and backs off with
    jitter; ``receive`` None means the connect message was read already.
    """
    if receive is not None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
    try:
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"text/plain"), (b"retry-after", b"2")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"Redis is unavailable; retry shortly."})
        else:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
    except Exception:  # noqa: BLE001 - the client may be gone already
        pass
