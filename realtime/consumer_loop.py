"""The socket's message loop: client frames and channel-layer messages, one at a time, in arrival order.

``AttachedWebsocketConsumer`` is Channels' ``AsyncWebsocketConsumer`` with a cheaper
loop for the fan-out path (see ``__call__``) and frames written straight to the
server where it prepares them (``realtime.transport``). ``RealtimeConsumer``
(``realtime.consumers``) builds the socket's protocol on it and provides what the
loop calls: ``forward`` (a live event written at once), ``realtime_event`` (one
dispatched) and ``release`` (leave everything once the loop has ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from . import metrics
from .closing import ClientGone
from .transport import direct_socket, text_frame

logger = logging.getLogger(__name__)


class SourceFailed(Exception):
    """The channel layer (or the client's feed) this socket depends on failed; ``__cause__`` says how."""


class AttachedWebsocketConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer the channel layer hands its messages to by call, with one loop for both sources."""

    def forward(self, message: dict[str, Any]) -> None:
        """Write a live event to the socket at once (the layer's fast path); subclasses define it."""
        raise NotImplementedError

    async def realtime_event(self, message: dict[str, Any]) -> None:
        """Handle a live event that waited its turn in the queue; subclasses define it."""
        raise NotImplementedError

    async def release(self) -> None:
        """Leave what the socket joined; called once the loop has ended, whatever ended it."""

    async def __call__(self, scope, receive, send) -> None:
        """Channels' ``AsyncConsumer.__call__`` with a cheaper loop for the fan-out path.

        Channels' ``await_many_dispatch`` creates a new task and runs an ``asyncio.wait``
        over both sources for every message a socket gets: 15-20% of the server's CPU per
        delivered event in the profile (docs/benchmarks.md, note 6). Here the channel
        layer hands this consumer its messages by calling ``deliver`` (``attach``, on
        layers that offer it; else one long-lived task receives and calls it). A live
        event with nothing queued ahead of it is written to the socket at once; anything
        else joins the client's frames in one queue, dispatched one message at a time in
        arrival order. Under ``realtime.transport``'s protocol that queue is the server's
        own receive queue: no task, queue or lock of the consumer's per socket (memory per
        socket, docs/benchmarks.md). ``dispatch`` and ``StopConsumer`` are Channels' own.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is None:  # no layer configured: nothing to fan out
            await super().__call__(scope, receive, send)
            return
        self.channel_name = await self.channel_layer.new_channel()
        self.live = False  # set once the opening frames are sent (RealtimeConsumer.start_session)
        self.dispatching = False
        self.queued = 0  # layer messages waiting to be dispatched

        async def send_to_client(message: dict[str, Any]) -> None:
            try:
                await send(message)
            except Exception as error:
                raise ClientGone(f"{type(error).__name__}: {error}") from error

        self.base_send = send_to_client
        feeders: list[asyncio.Future] = []
        client_room: asyncio.Semaphore | None = None
        direct = direct_socket(scope)
        if direct is not None:
            # uvicorn with realtime.transport: frames are encoded once per event, not per
            # socket, and layer messages wait in the server's queue beside the client's frames.
            self.write_frame, self.enqueue, next_message = direct.write_frame, direct.enqueue, receive
            self.write_frame_after_drain = direct.write_frame_after_drain
        else:
            inbox: asyncio.Queue = asyncio.Queue()
            # Bounded: a client flooding frames waits in the server's queue, not in ours.
            client_room = asyncio.Semaphore(64)
            self.write_frame, self.enqueue, next_message = None, inbox.put_nowait, inbox.get

            async def feed_client() -> None:
                try:
                    while True:
                        await client_room.acquire()
                        inbox.put_nowait(await receive())
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - re-raised by the consumer below
                    inbox.put_nowait({"type": "realtime.failed", "error": error})

            feeders.append(asyncio.ensure_future(feed_client()))

        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:
            await attach(self.channel_name, self.deliver, self.layer_failed)
        else:
            feeders.append(asyncio.ensure_future(self._feed_from_layer()))
        try:
            while True:
                message = await next_message()
                from_client = message["type"].startswith("websocket.")
                self.dispatching = True
                try:
                    await self.dispatch(message)
                finally:
                    self.dispatching = False
                    if not from_client:
                        self.queued -= 1
                    elif client_room is not None:
                        client_room.release()
        except ClientGone as gone:
            # A send failed before the server's disconnect arrived: end the socket as that would.
            user = getattr(self, "user", None)
            logger.info("socket of user %s: the client has gone (%s)", getattr(user, "pk", None), gone)
            with contextlib.suppress(StopConsumer):
                await self.websocket_disconnect({"type": "websocket.disconnect", "code": 1006})
        except StopConsumer:
            pass
        finally:
            for feeder in feeders:
                feeder.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
            if attach is not None:
                await asyncio.shield(self.channel_layer.detach(self.channel_name))
            # Whatever ended the consumer, no heartbeat or group membership outlives it.
            await asyncio.shield(self.release())

    async def _feed_from_layer(self) -> None:
        """For layers without ``attach``: receive this socket's messages and hand each to ``deliver``."""
        try:
            while True:
                self.deliver(await self.channel_layer.receive(self.channel_name))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - re-raised by the consumer's loop
            self.layer_failed(error)

    def deliver(self, message: dict[str, Any]) -> None:
        """Take a message from the channel layer: the fan-out hot path, called once per socket.

        A live event is written to the socket here and now when the server prepares
        frames and nothing is queued ahead of it (a replay, a control message, earlier
        events): order is kept, and the layer pays no queue, task switch or coroutine
        per socket. Anything else is queued for ``dispatch``. A socket that falls
        ``REALTIME_SOCKET_BACKLOG`` messages behind drops newer ones; the heartbeat
        resends the durable ones it dropped.
        """
        if (
            self.live
            and self.write_frame is not None
            and not self.dispatching
            and not self.queued
            and message["type"] == "realtime.event"
        ):
            self.forward(message)
            return
        if self.queued >= settings.REALTIME["SOCKET_BACKLOG"]:
            metrics.OVER_CAPACITY_DROPS.inc()
            return
        self.queued += 1
        self.enqueue(message)

    def layer_failed(self, error: BaseException) -> None:
        """The channel layer can no longer receive (Redis gone): end the socket; the client reconnects."""
        self.queued += 1
        self.enqueue({"type": "realtime.failed", "error": error})

    async def realtime_failed(self, message: dict[str, Any]) -> None:
        """A source of this socket's messages failed: end the consumer with an error caused by it.

        The layer hands one exception object to every socket it served; raising that
        object itself added each consumer's frames to its ``__traceback__``, and the
        logged tracebacks grew by thousands of lines (issue 15). Each consumer raises an
        error of its own instead, caused by the shared one (``realtime.outage`` reads the
        cause to tell a Redis outage).
        """
        raise SourceFailed(f"this socket's messages stopped: {message['error']!r}") from message["error"]

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the message's handler (``realtime.event`` -> ``realtime_event``), without a thread hop first.

        ``AsyncConsumer.dispatch`` runs ``close_old_connections`` on the thread that also
        serves Django's sync views, before every handler: with thousands of sockets that
        hop per delivered event was the largest cost in the profile, and one more per
        handshake (docs/benchmarks.md). This consumer does all its database work through
        ``db_call``, which closes stale connections on its own threads around each call.
        """
        if message["type"] == "realtime.event":
            await self.realtime_event(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        # daphne accepts only plain ints as close codes, not IntEnum members.
        await super().close(code=int(code) if code is not None else None, reason=reason)

    async def send_texts(self, *texts: str) -> None:
        """Send server frames in order: written at once where the server prepares frames, else through ``send``.

        A handshake sends several (hello, the replay, the snapshots): through ASGI each
        is a chain of coroutines and an encoding in the server; a reconnect storm of
        3,000 sockets spends its CPU on exactly this (docs/benchmarks.md).
        """
        if self.write_frame is not None:
            for text in texts:
                await self.write_frame_after_drain(text_frame(text))
            return
        for text in texts:
            await self.send(text_data=text)
