"""Graceful shutdown of a web process: on SIGTERM, send every socket elsewhere, then exit.

A rolling deploy stops web processes one by one. If a process just died, every
browser on it would see an abnormal close and reconnect at once with exponential
backoff from zero: a thundering herd on the remaining processes. Instead, on SIGTERM:

1. the process stops listening (the proxy sends new connections to the others) and
   ``/readyz`` answers 503 ``draining``;
2. every open socket is closed with ``1012`` (``CloseCode.SERVICE_RESTART``, "reconnect
   soon, elsewhere"); the browser client reconnects after a random 0-5 s delay and
   resumes from its cursor, so nothing is lost and the reconnects are spread out;
3. once every socket has finished its close handshake and in-flight HTTP requests
   are done, or after ``SHUTDOWN_DRAIN_SECONDS`` (default 10 s), the reactor stops
   and the process exits. A second SIGTERM stops at once.

The drain is wired into daphne, whose Twisted reactor otherwise stops on SIGTERM by
cancelling every application (sockets then see 1006, not 1012). It is installed by
``liveplatform.asgi``; under another ASGI server (uvicorn closes WebSockets with 1012
on shutdown by itself) it does nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.closing import CloseCode

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]


class DrainState:
    """What a draining process needs to know: is it draining, and what is still open."""

    def __init__(self) -> None:
        self.draining = False
        self.started_at: float | None = None
        self.sockets: dict[int, Send] = {}  # accepted sockets, by connection key
        self.websocket_apps = 0  # websocket application instances still running
        self.http_in_flight = 0

    def busy(self) -> bool:
        return self.websocket_apps > 0 or self.http_in_flight > 0


STATE = DrainState()


def is_draining() -> bool:
    """True once this process has started its graceful shutdown (readiness fails)."""
    return STATE.draining


class GracefulShutdownMiddleware:
    """ASGI middleware that knows every open socket, so a SIGTERM can close each with 1012."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self._next_key = 0

    async def __call__(self, scope: Scope, receive: Callable, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            STATE.http_in_flight += 1
            try:
                await self.app(scope, receive, send)
            finally:
                STATE.http_in_flight -= 1
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Callable, send: Send) -> None:
        self._next_key += 1
        key = self._next_key
        accepted = closed = False

        async def tracked_send(message: Message) -> None:
            nonlocal accepted, closed
            kind = message["type"]
            if closed and kind in ("websocket.send", "websocket.close"):
                return  # the drain already closed this socket
            if kind == "websocket.accept":
                await send(message)
                accepted = True
                if STATE.draining:
                    await close_for_restart()
                else:
                    STATE.sockets[key] = close_for_restart
                return
            if kind == "websocket.close":
                STATE.sockets.pop(key, None)
                if accepted:
                    closed = True
                    await send_close(send, message.get("code"))
                    return
            await send(message)

        async def close_for_restart() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            STATE.sockets.pop(key, None)
            await send_close(send, int(CloseCode.SERVICE_RESTART))

        STATE.websocket_apps += 1
        try:
            await self.app(scope, receive, tracked_send)
        finally:
            STATE.websocket_apps -= 1
            STATE.sockets.pop(key, None)


async def send_close(send: Send, code: int | None) -> None:
    """Close an accepted socket with ``code``, including the RFC 6455 codes daphne refuses.

    daphne closes through autobahn's ``sendClose``, which accepts only 1000 and
    3000-4999 and raises for the registered codes the platform uses (1001 going away,
    1009 too big, 1012 service restart). Under daphne the ASGI ``send`` is
    ``partial(server.handle_reply, protocol)``; for those codes the close frame is sent
    through the protocol's ``sendCloseFrame``, the same call daphne itself uses for 1011.
    """
    protocol = _daphne_protocol(send)
    if code is not None and protocol is not None and code != 1000 and not 3000 <= code <= 4999:
        if getattr(protocol, "state", None) == getattr(protocol, "STATE_OPEN", object()):
            protocol.sendCloseFrame(code=code, isReply=False)
        return
    message: Message = {"type": "websocket.close"}
    if code is not None:
        message["code"] = code
    await send(message)


def _daphne_protocol(send: Send) -> Any:
    if isinstance(send, functools.partial) and send.args and hasattr(send.args[0], "sendCloseFrame"):
        return send.args[0]
    return None


async def drain(timeout: float) -> bool:
    """Close every socket with 1012 and wait (at most ``timeout`` s) for the process to go idle."""
    STATE.draining = True
    STATE.started_at = time.monotonic()
    sockets = list(STATE.sockets.values())
    logger.info("shutdown: draining %d socket(s), up to %.1f s", len(sockets), timeout)
    for close in sockets:
        try:
            await close()
        except Exception:  # one broken socket must not stop the drain
            logger.exception("shutdown: could not close a socket")
    deadline = STATE.started_at + timeout
    while STATE.busy() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    idle = not STATE.busy()
    logger.info(
        "shutdown: drained in %.2f s (%s)",
        time.monotonic() - STATE.started_at,
        "clean" if idle else f"{STATE.websocket_apps} socket(s), {STATE.http_in_flight} request(s) left",
    )
    return idle


def install_daphne_drain(timeout: float) -> None:
    """Replace daphne's SIGTERM handling with the drain (no-op outside daphne)."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not hasattr(reactor, "_asyncioEventloop"):
        return  # not under daphne: importing the reactor here would install the wrong one

    def stop_listening() -> None:
        from twisted.internet import tcp

        for reader in reactor.getReaders():
            if isinstance(reader, tcp.Port):
                reader.stopListening()

    async def drain_then_stop() -> None:
        try:
            await drain(timeout)
        finally:
            reactor.stop()

    def begin() -> None:
        if STATE.draining:
            logger.warning("shutdown: second SIGTERM, stopping now")
            reactor.stop()
            return
        STATE.draining = True
        stop_listening()
        asyncio.ensure_future(drain_then_stop(), loop=reactor._asyncioEventloop)

    def on_sigterm(signum: int, frame: Any) -> None:
        reactor.callFromThread(begin)

    # Twisted installs its own SIGTERM handler while starting; replace it right after.
    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)
