"""Frames over REALTIME_MAX_FRAME_BYTES through the real uvicorn: close 1009 at any size, never a reset.

A client that sends too much must learn why its socket closed (close code 1009,
"message too big") whatever the size: one just over the limit, one of 2 MiB, one of
16 MiB (uvicorn's own default ceiling), or a header that announces 1 GiB. The server
must neither buffer such a frame nor reset the connection under the client's feet.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading

import pytest
from django.conf import settings
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tests.support.ws import session_cookie_for

pytestmark = pytest.mark.stack

MiB = 1 << 20
CHUNK = 256 * 1024


class RawClient:
    """A browser-like socket speaking RFC 6455 by hand, reading everything the server sends in a thread."""

    def __init__(self, port: int, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                f"Cookie: sessionid={cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.received = bytearray(head.split(b"\r\n\r\n", 1)[1])
        self.error: OSError | None = None
        self.ended = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        self.sock.settimeout(30)
        try:
            while chunk := self.sock.recv(1 << 16):
                self.received += chunk
        except OSError as error:  # a reset (ECONNRESET) is what this module is about
            self.error = error
        self.ended.set()

    def frames(self) -> list[Frame]:
        """The complete server frames received so far."""
        reader = StreamReader()
        reader.feed_data(bytes(self.received))
        reader.feed_eof()
        found = []
        while True:
            parser = Frame.parse(reader.read_exact, mask=False)
            try:
                next(parser)
            except StopIteration as done:
                found.append(done.value)
            except EOFError:
                return found

    def close_code(self) -> int | None:
        for frame in self.frames():
            if frame.opcode is Opcode.CLOSE:
                return struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else 1005
        return None

    def send_text_frame(self, announced: int, budget: int) -> int:
        """Send a masked text frame header announcing ``announced`` bytes, then up to ``budget`` of them.

        Stops early once the server has closed the socket (as a client would: its
        send fails or the close frame has arrived); returns the bytes sent.
        """
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, announced) + b"\0\0\0\0"  # a zero mask: payload as is
        self.sock.sendall(header)
        chunk, sent = b"x" * CHUNK, 0
        try:
            while sent < budget and self.close_code() is None and not self.ended.is_set():
                piece = chunk[: min(CHUNK, budget - sent)]
                self.sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        return sent

    def wait_closed(self, timeout: float) -> None:
        """Wait until the server has ended the connection (EOF or reset), bounded."""
        if not self.ended.wait(timeout):
            raise TimeoutError(f"the server did not end the connection within {timeout}s")

    def close(self) -> None:
        self.sock.close()
        self.reader.join(timeout=5)


@pytest.fixture(scope="module")
def make_run_daphne(subprocess_env):
    """daphne as ``make run`` serves the site (liveplatform.daphne_server), for this module."""
    from tests.support.processes import Daphne

    server = Daphne(subprocess_env).start()
    yield server
    server.stop()


@pytest.fixture
def alice(make_member, make_tenant):
    return make_member(make_tenant("acme"), email="alice@acme.test")


@pytest.mark.parametrize(
    ("announced", "budget"),
    [(64 * 1024 + 1, 64 * 1024 + 1), (2 * MiB, 2 * MiB), (16 * MiB, 16 * MiB), (1 << 30, 64 * MiB)],
    ids=["limit+1", "2MiB", "16MiB", "1GiB-header"],
)
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_a_frame_over_the_limit_is_closed_with_1009_at_any_size(
    live, make_run_daphne, alice, server, announced, budget
):
    """Tests that an oversized frame ends in close 1009 the client reads, not a TCP reset or a buffered GiB.

    Under uvicorn (production) and under daphne as ``make run`` starts it (``liveplatform.daphne_server``).
    """
    port = live.server.port if server == "uvicorn" else make_run_daphne.port
    client = RawClient(port, session_cookie_for(alice))
    try:
        sent = client.send_text_frame(announced, budget)
        client.wait_closed(timeout=30)
        assert client.close_code() == 1009, (sent, client.error, [f.opcode for f in client.frames()])
        assert client.error is None, f"the connection was reset after {sent} bytes: {client.error!r}"
    finally:
        client.close()
    # The server is unharmed: the same user opens a socket at once.
    with live.socket(alice) as sock:
        assert sock.wait_type("hello")["data"]["user"] == alice.pk


def test_a_frame_of_exactly_the_limit_is_still_answered(live, alice):
    """Tests the boundary from the other side: a frame of REALTIME_MAX_FRAME_BYTES is read and answered."""
    limit = settings.REALTIME["MAX_FRAME_BYTES"]
    frame = '{"type":"ping","pad":"' + "x" * limit
    frame = frame[: limit - 2] + '"}'
    assert len(frame.encode()) == limit
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        sock.send(frame)
        assert sock.wait_type("pong")["type"] == "pong"
