"""A synchronous WebSocket test client on top of the ``websockets`` library."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


def positions_token(frames: list[dict[str, Any]], start: str = "") -> str:
    """What the browser client keeps: each stream's newest position, from hello, resyncs and durable frames."""
    from realtime.streams import Position, decode_positions, encode_positions

    positions = decode_positions(start)
    for frame in frames:
        if frame["type"] == "hello":
            for stream, position in frame["data"]["positions"].items():
                positions.setdefault(stream, Position(position["offset"], position["epoch"]))
        elif frame["type"] == "resync":
            positions[frame["data"]["stream"]] = Position(frame["data"]["offset"], frame["data"]["epoch"])
        elif "stream" in frame:
            known = positions.get(frame["stream"])
            if known is None or known.epoch != frame["epoch"] or frame["offset"] > known.offset:
                positions[frame["stream"]] = Position(frame["offset"], frame["epoch"])
    return encode_positions(positions)


def session_cookie_for(user) -> str:
    """Log ``user`` in the way the browser would and return the session cookie's value."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class LiveSocket:
    """A connected socket that records every frame it has received."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []

    def _read(self, timeout: float) -> dict[str, Any]:
        frame = json.loads(self.connection.recv(timeout=timeout))
        self.frames.append(frame)
        return frame

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame not yet consumed by ``recv``, ``wait_for`` or ``drain``."""
        if self._unread:
            return self._unread.pop(0)
        return self._read(timeout)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Consume the first frame (old or new) that matches; others stay for later calls."""
        for index, frame in enumerate(self._unread):
            if predicate(frame):
                return self._unread.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame within {timeout}s; got {[f['type'] for f in self.frames]}")
            try:
                frame = self._read(remaining)
            except TimeoutError:
                continue
            if predicate(frame):
                return frame
            self._unread.append(frame)

    def wait_type(self, frame_type: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(lambda frame: frame["type"] == frame_type, timeout)

    def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Consume what is pending and whatever arrives until ``quiet`` seconds pass without a frame."""
        got, self._unread = self._unread, []
        while True:
            try:
                got.append(self._read(quiet))
            except TimeoutError:
                return got

    def listen(self, seconds: float) -> list[dict[str, Any]]:
        """Consume every frame that arrives during the next ``seconds`` (a bounded read, not a sleep)."""
        got, self._unread = self._unread, []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got.append(self._read(remaining))
            except TimeoutError:
                break
        return got

    def durable(self, frame_type: str | None = None) -> list[dict[str, Any]]:
        """Durable event frames received so far (those with a stream position)."""
        return [f for f in self.frames if "stream" in f and (frame_type is None or f["type"] == frame_type)]

    def positions(self) -> str:
        """The resume token a browser would hold now: hello's positions, moved on by every durable frame seen."""
        return positions_token(self.frames)

    def send(self, frame: Any) -> None:
        self.connection.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def closed_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the socket; return its close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                frame = json.loads(self.connection.recv(timeout=max(0.01, deadline - time.monotonic())))
                self.frames.append(frame)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return None
        return None

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LiveSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_socket(
    base_ws_url: str,
    *,
    session: str | None = None,
    positions: str | None = None,
    origin: str | None = "default",
    path: str = "/ws/",
    timeout: float = 10.0,
    max_queue: int | None = 16,
) -> LiveSocket:
    """Open a socket like a browser would: session cookie and same-site Origin.

    ``max_queue``: frames the client holds unread before it stops reading the socket
    (websockets' flow control); None never stops, as a browser tab that keeps reading.
    """
    url = f"{base_ws_url}{path}" + (f"?pos={quote(positions)}" if positions is not None else "")
    headers = {}
    if session:
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session}"
    if origin == "default":
        origin = base_ws_url.replace("ws://", "http://")
    kwargs: dict[str, Any] = {
        "additional_headers": headers,
        "open_timeout": timeout,
        "max_size": 2**22,
        "max_queue": max_queue,
    }
    if origin:
        kwargs["origin"] = origin
    return LiveSocket(connect(url, **kwargs))
