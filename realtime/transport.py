"""The WebSocket transport under uvicorn: one prepared frame, written to many sockets.

An event fanned out to 3,000 sockets is the same text frame 3,000 times. Through
ASGI, each socket's consumer sends it with ``await send({"type": "websocket.send",
"text": ...})``, and the server encodes it again per socket (UTF-8, then the frame
header) behind a chain of coroutine calls. ``websockets.broadcast`` instead writes one
encoded frame to every transport; that is the Python ceiling in docs/benchmarks.md.

``BroadcastWebSocketProtocol`` is uvicorn's sans-I/O WebSocket protocol with one
addition, offered to the application as an ASGI scope extension
(``scope["extensions"]["liveplatform.prepared_frames"]``): a plain function that
writes an already encoded frame to this socket's transport, at once, without a
coroutine. ``RealtimeConsumer`` uses it when it is there and plain ``send`` when it is
not (daphne, Channels' test communicator), so the protocol seen by a client is the
same either way. Start uvicorn with ``--ws realtime.transport:BroadcastWebSocketProtocol``.

A client that stops reading while events keep coming must not make the server buffer
without end: once more than ``REALTIME_MAX_SEND_BUFFER_BYTES`` wait in a socket's
transport, the connection is dropped, and the client catches up by replay when it
reconnects (docs/protocol.md, "Heartbeats and dead connections").
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from django.conf import settings
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger(__name__)

PREPARED_FRAMES = "liveplatform.prepared_frames"
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


FrameWriter = Callable[[bytes], bool]


def frame_writer(scope: dict) -> FrameWriter | None:
    """The server's prepared-frame writer for this socket, or None if the server has none."""
    extension = (scope.get("extensions") or {}).get(PREPARED_FRAMES)
    return extension.get("write") if extension else None


class BroadcastWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus writing a prepared frame without a coroutine."""

    max_send_buffer = DEFAULT_MAX_SEND_BUFFER_BYTES

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # The application task is created but has not run yet: it sees the extension.
        if self.response.status_code == 101:
            self.scope["extensions"][PREPARED_FRAMES] = {"write": self.write_prepared}
            self.max_send_buffer = settings.REALTIME.get("MAX_SEND_BUFFER_BYTES", DEFAULT_MAX_SEND_BUFFER_BYTES)

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
