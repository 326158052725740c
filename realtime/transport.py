"""The WebSocket transport under uvicorn: one prepared frame, written to many sockets.

An event fanned out to 3,000 sockets is the same text frame 3,000 times. Through
ASGI, each socket's consumer sends it with ``await send({"type": "websocket.send",
"text": ...})``, and the server encodes it again per socket (UTF-8, then the frame
header) behind a chain of coroutine calls. ``websockets.broadcast`` instead writes one
encoded frame to every transport; that is the Python ceiling in docs/benchmarks.md.

``BroadcastWebSocketProtocol`` is uvicorn's sans-I/O WebSocket protocol with two
additions, offered to the application as an ASGI scope extension
(``scope["extensions"]["liveplatform.direct"]["socket"]``, a ``DirectSocket``): a plain
function that writes an already encoded frame to this socket's transport, at once,
without a coroutine; and one that puts a message of the application's own on the
queue its ``receive()`` reads, so a consumer needs no second task and queue to wait
on its channel layer too. ``RealtimeConsumer`` uses them when they are there and
plain ASGI when they are not (daphne, Channels' test communicator); a client sees
the same protocol either way. Start uvicorn with
``--ws realtime.transport:BroadcastWebSocketProtocol``.

A client frame over ``REALTIME_MAX_FRAME_BYTES`` is refused from its header: the
parser's limit is that setting (uvicorn's ``--ws-max-size``, 16 MiB by default, would
let each socket buffer that much first), and the connection closes with 1009 the
client can read, not a TCP reset (``handle_parser_exception``).

It also keeps less per socket than uvicorn's (``ReceiveQueue``, ``WritableFlag``, and
the handshake's headers dropped once it is done): memory per idle socket is one of
issue 7's targets.

A client that stops reading while events keep coming must not make the server buffer
without end: once more than ``REALTIME_MAX_SEND_BUFFER_BYTES`` wait in a socket's
transport, the connection is dropped, and the client catches up by replay when it
reconnects (docs/protocol.md, "Heartbeats and dead connections").
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from django.conf import settings
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .arrival import stamp_arrival

logger = logging.getLogger(__name__)

DIRECT = "liveplatform.direct"
DEFAULT_MAX_SEND_BUFFER_BYTES = 256 * 1024

# A server frame (RFC 6455 section 5.2): FIN + text opcode, then the unmasked length.
_TEXT_FIN = 0x81


def text_frame(text: str) -> bytes:
    """Encode ``text`` as one complete, unmasked WebSocket text frame (what a server sends)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((_TEXT_FIN, length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, length)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, length)
    return header + payload


class DirectSocket(NamedTuple):
    """What ``BroadcastWebSocketProtocol`` offers an application beside ASGI's send and receive."""

    write_frame: Callable[[bytes], bool]  # write an encoded frame now; False if the socket cannot take it
    enqueue: Callable[[dict[str, Any]], None]  # hand a message to the application's own receive()
    # Wait until the transport's buffer is below its high-water mark, then write (a replay: many
    # frames at once, which must pace themselves rather than count as a slow client).
    write_frame_after_drain: Callable[[bytes], Awaitable[bool]]


def direct_socket(scope: dict) -> DirectSocket | None:
    """The server's direct access to this socket, or None if the server has none (daphne, tests)."""
    extension = (scope.get("extensions") or {}).get(DIRECT)
    return extension.get("socket") if extension else None


class ReceiveQueue:
    """The messages waiting for the application's ``receive()``: a list and one waiter.

    uvicorn keeps an ``asyncio.Queue`` per socket (three deques, about 1.9 KB) where
    one reader ever waits; this is all that reader needs (memory per socket,
    docs/benchmarks.md).
    """

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)

    def empty(self) -> bool:
        return not self.items

    def qsize(self) -> int:
        return len(self.items)


class WritableFlag:
    """uvicorn's ``writable`` event (``asyncio.Event``, a deque each), with waiters made only when waiting."""

    __slots__ = ("value", "waiters")

    def __init__(self) -> None:
        self.value = True
        self.waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self.value

    def set(self) -> None:
        self.value = True
        waiters, self.waiters = self.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self.value = False

    async def wait(self) -> bool:
        if self.value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = []
        self.waiters.append(waiter)
        return await waiter


class BroadcastWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus writing a prepared frame without a coroutine."""

    max_send_buffer = DEFAULT_MAX_SEND_BUFFER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = WritableFlag()  # type: ignore[assignment]
        # websockets' parser refuses a longer message at its frame header (close 1009).
        self.conn.max_message_size = settings.REALTIME["MAX_FRAME_BYTES"]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The upgrade reached this protocol: the handshake's clock starts (realtime.arrival).
        self.arrived = time.monotonic()
        super().connection_made(transport)

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # The application task is created but has not run yet: it sees the extensions.
        if self.response.status_code == 101:
            stamp_arrival(self.scope, self.arrived)
            self.scope["extensions"][DIRECT] = {
                "socket": DirectSocket(self.write_prepared, self.queue.put_nowait, self.write_prepared_after_drain)
            }
            self.max_send_buffer = settings.REALTIME.get("MAX_SEND_BUFFER_BYTES", DEFAULT_MAX_SEND_BUFFER_BYTES)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope's extension holds this protocol's bound methods: a reference cycle
        # (protocol -> scope -> methods -> protocol) that only the cyclic collector could
        # free, and realtime.memory keeps it off long-lived sockets. Break it here.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(DIRECT, None)

    def handle_parser_exception(self) -> None:
        """Fail the connection (1009 too big, 1002, 1007) so that the client reads the close frame.

        uvicorn closes the TCP connection at once, while the client is still sending
        the frame: the kernel answers bytes that arrive at a closed socket with a
        reset, and the client may lose the close frame before reading it. Instead
        the close frame goes out with our FIN (websockets' ``fail`` queued both),
        what the client still sends is read and discarded (its parser now discards),
        and the connection ends when the client closes or after ``close_timeout``.
        """
        if self.close_sent:
            return  # already failing or closing: the rest is discarded
        close = self.conn.close_sent
        code, reason = (close.code, close.reason) if close is not None else (1006, "")
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # Also keeps run_asgi from closing the transport when the application returns.
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    async def send(self, message) -> None:
        await super().send(message)
        if self.handshake_complete and self.response is not None:
            # The handshake's request and response (their headers: about 3 KB) are not needed again.
            self.request = self.response = None

    def write_prepared(self, frame: bytes) -> bool:
        """Write one encoded frame (see ``text_frame``); False if the socket cannot take it.

        Only between the accept and the close: before, the client is still waiting
        for the handshake's answer; after, the close frame must be the last one. A
        socket whose unread backlog passes the limit is dropped (a slow consumer).
        """
        if not self.handshake_complete or self.close_sent or self.disconnected or self.initial_response:
            return False
        transport = self.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.max_send_buffer:
            self.drop_slow_client()
            return False
        transport.write(frame)
        return True

    async def write_prepared_after_drain(self, frame: bytes) -> bool:
        """Write one encoded frame once the transport has room (below its high-water mark).

        For the frames a socket is sent in a burst of its own (a replay of hundreds of
        events): they wait for the client to read, as ``send`` does, instead of filling
        the buffer past the slow-client limit.
        """
        await self.writable.wait()
        return self.write_prepared(frame)

    def drop_slow_client(self) -> None:
        """Abort a connection whose client stopped reading: its backlog is freed at once.

        A close frame would queue behind the backlog it is meant to end, so the TCP
        connection is aborted; the client sees an abnormal close, reconnects with its
        cursor and gets what it missed by replay. The application hears a disconnect.
        """
        logger.warning(
            "dropping a slow WebSocket client %s: more than %d bytes unread",
            self.client,
            self.max_send_buffer,
        )
        self.close_sent = True
        self.transport.abort()
