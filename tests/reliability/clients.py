"""Clients that behave like ``static/js/realtime.js``, many of them on one asyncio loop.

Each keeps a position per stream, drops an offset already seen, resumes a stream past
a gap, reconnects with ``?pos=<token>`` and full-jitter exponential backoff, and sends
``resume`` for a stream a heartbeat shows ahead. What each received is kept per stream,
in runs, for the verdict (``tests/reliability/verdict.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import websockets
from django.conf import settings

from realtime.streams import Position, RedisStreamStore, decode_positions, encode_positions
from tests.support.processes import wait_for
from tests.support.ws import session_cookie_for


# ------------------------------------------------------------------------------
@dataclass
class StreamRun:
    """A stretch of one stream a client followed in one epoch, from the position it entered at.

    A client enters a stream at its page's position, at a ``resync`` (the history from
    its position is gone, or too far behind), or at the first live event of a new
    epoch (the stream's history was lost). Within a run it accepts only the next
    offset, as ``realtime.js`` does, so ``offsets`` must read ``entered + 1, + 2, …``.
    """

    epoch: str
    entered: int
    how: str  # "page", "hello", "resync", "new_epoch", "joined"
    offsets: list[int] = field(default_factory=list)  # durable offsets accepted (first arrival), in order
    texts: list[str] = field(default_factory=list)  # those frames as received


@dataclass
class ClientState:
    user: Any
    cookie: str
    streams: set[str]  # what the user follows (their subscriptions' groups)
    positions: dict[str, Position]  # realtime.js's `positions`: stream -> seen through
    start: dict[str, Position] = field(default_factory=dict)  # the page's positions
    runs: dict[str, list[StreamRun]] = field(default_factory=dict)
    raw: int = 0  # durable frames received, duplicates and frames past a gap included
    gaps: int = 0  # frames past a gap: dropped, and the stream resumed from our position
    connects: list[float] = field(default_factory=list)  # wall-clock time of each connection attempt
    opened: list[float] = field(default_factory=list)
    closes: list[Any] = field(default_factory=list)
    resyncs: list[dict] = field(default_factory=list)
    connected: bool = False
    ws: Any = None
    gap_check: Any = None

    def __post_init__(self) -> None:
        self.start = dict(self.positions)
        for stream, position in self.positions.items():
            self.runs[stream] = [StreamRun(position.epoch, position.offset, "page")]

    @property
    def accepted(self) -> int:
        """Durable events accepted (first arrivals), over every stream."""
        return sum(len(run.offsets) for runs in self.runs.values() for run in runs)

    def token(self, streams: list[str] | None = None) -> str:
        """realtime.js's ``token()``: ``stream:offset:epoch,…`` for ``streams`` (all if None)."""
        return encode_positions(
            {stream: p for stream, p in self.positions.items() if streams is None or stream in streams}
        )

    def enter(self, stream: str, position: Position, how: str) -> None:
        self.positions[stream] = position
        self.runs.setdefault(stream, []).append(StreamRun(position.epoch, position.offset, how))

    def take(self, frame: dict, text: str) -> str:
        """realtime.js's ``firstTime``: "new", "duplicate" (seen) or "gap" (past a gap: resume the stream)."""
        stream, offset, epoch = frame["stream"], frame["offset"], frame["epoch"]
        known = self.positions.get(stream)
        if known is not None and known.epoch == epoch:
            if offset <= known.offset:
                return "duplicate"
            if offset > known.offset + 1:
                return "gap"
        elif known is not None:
            # A new epoch: the stream's history was lost; realtime.js tells its handlers to resync.
            self.resyncs.append({"stream": stream, "reason": "history_lost", "epoch": epoch, "live": True})
            self.enter(stream, Position(offset - 1, epoch), "new_epoch")
        else:
            self.enter(stream, Position(offset - 1, epoch), "joined")
        self.positions[stream] = Position(offset, epoch)
        run = self.runs[stream][-1]
        run.offsets.append(offset)
        run.texts.append(text)
        return "new"

    def behind(self, tops: dict[str, Position]) -> list[str]:
        """Streams whose top (from a ping) is ahead of our position in the same epoch."""
        return [
            stream
            for stream, top in tops.items()
            if (known := self.positions.get(stream)) is not None
            and known.epoch == top.epoch
            and top.offset > known.offset
        ]


def page_positions(store: RedisStreamStore, user) -> dict[str, Position]:
    """What a page rendered now holds: each stream the user follows, at its top (``services.page_positions``)."""
    from realtime.services import subscriptions_for

    return store.positions(sorted(subscriptions_for(user).groups))


class Fleet:
    """Many resuming clients on one asyncio loop in a background thread."""

    # The constants of static/js/realtime.js.
    BASE_BACKOFF, MAX_BACKOFF, STABLE_AFTER, GAP_CONFIRM = 0.5, 30.0, 10.0, 1.5

    def __init__(self, ws_url: str, users: list, store: RedisStreamStore, heartbeat: float = 5.0) -> None:
        """``store`` reads the stack's streams: each client starts where a page rendered now would."""
        self.ws_url = ws_url
        self.origin = ws_url.replace("ws://", "http://")
        self.heartbeat = heartbeat
        self.store = store
        self.clients = []
        for user in users:
            positions = page_positions(store, user)
            self.clients.append(ClientState(user, session_cookie_for(user), set(positions), positions))
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Fleet:
        self.thread.start()
        try:
            wait_for(
                lambda: all(c.connected for c in self.clients),
                timeout=60 + len(self.clients) / 5,
                interval=0.2,
                message="every client connected",
            )
        except TimeoutError:
            from collections import Counter

            waiting = [c for c in self.clients if not c.connected]
            print(
                f"{len(waiting)} clients not connected; failures: {Counter(str(x) for c in waiting for x in c.closes)}"
            )
            self.stop()  # no client may go on reconnecting after the test has failed
            raise
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.gather(*(self._client(c) for c in self.clients)))

    async def _client(self, state: ClientState) -> None:
        attempt = 0
        # Spread the first connections like page loads, not a thundering herd.
        # One daphne does every handshake's database work on one thread (Channels'
        # thread-sensitive default): about 20 handshakes a second here.
        await asyncio.sleep(random.uniform(0, max(1.0, len(self.clients) / 20)))
        while not self.stopping:
            state.connects.append(time.time())
            opened_at = None
            try:
                async with websockets.connect(
                    f"{self.ws_url}/ws/?pos={quote(state.token())}",
                    additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={state.cookie}"},
                    origin=self.origin,
                    open_timeout=10,
                    max_size=2**22,
                    ping_interval=None,
                ) as ws:
                    opened_at = time.monotonic()
                    state.opened.append(time.time())
                    state.connected = True
                    state.ws = ws
                    await self._read(state, ws)
                    state.closes.append(ws.close_code)
            except websockets.InvalidStatus as refused:  # the handshake answered with an HTTP status
                state.closes.append(f"HTTP {refused.response.status_code}")
            except websockets.ConnectionClosed as closed:  # the server closed it: its close code, if it sent one
                state.closes.append(closed.rcvd.code if closed.rcvd else "no close frame")
            except Exception as exc:  # noqa: BLE001 - any failure means: back off and reconnect
                state.closes.append(type(exc).__name__)
            state.connected = False
            if opened_at is not None and time.monotonic() - opened_at > self.STABLE_AFTER:
                attempt = 0
            if self.stopping:
                break
            ceiling = min(self.MAX_BACKOFF, self.BASE_BACKOFF * 2**attempt)
            attempt += 1
            await asyncio.sleep(random.uniform(0, ceiling))

    async def _read(self, state: ClientState, ws) -> None:
        dead_after = self.heartbeat * 2 + 5
        while not self.stopping:
            text = await asyncio.wait_for(ws.recv(), timeout=dead_after)
            frame = json.loads(text)
            if "stream" in frame:
                state.raw += 1
                if state.take(frame, text) == "gap":
                    state.gaps += 1
                    await _send(ws, {"type": "resume", "positions": state.token([frame["stream"]])})
            elif frame["type"] == "hello":
                # Streams the page had no position in start where the server stands.
                for stream, position in frame["data"]["positions"].items():
                    if stream not in state.positions:
                        state.enter(stream, Position(position["offset"], position["epoch"]), "hello")
            elif frame["type"] == "ping":
                tops = decode_positions(frame["data"]["positions"])
                if state.behind(tops):
                    if state.gap_check is not None:
                        state.gap_check.cancel()
                    state.gap_check = asyncio.ensure_future(self._confirm_gap(state, ws, tops))
            elif frame["type"] == "resync":
                data = frame["data"]
                state.resyncs.append(data)
                state.enter(data["stream"], Position(data["offset"], data["epoch"]), "resync")

    async def _confirm_gap(self, state: ClientState, ws, tops: dict[str, Position]) -> None:
        """realtime.js's ``checkGap``: still behind a moment later, ask for a replay of those streams."""
        await asyncio.sleep(self.GAP_CONFIRM)
        streams = state.behind(tops)
        if streams:
            await _send(ws, {"type": "resume", "positions": state.token(streams)})

    def drop(self, count: int) -> None:
        """Connection churn: close ``count`` random open sockets; their clients resume by themselves."""
        for state in random.sample(self.clients, min(count, len(self.clients))):
            if state.connected and state.ws is not None:
                asyncio.run_coroutine_threadsafe(state.ws.close(), self.loop)

    def stop(self) -> None:
        self.stopping = True
        for state in self.clients:
            if state.ws is not None:
                asyncio.run_coroutine_threadsafe(state.ws.close(), self.loop)
        if self.thread.is_alive():
            self.thread.join(timeout=30)


async def _send(ws, frame: dict) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):  # it reconnects with its positions
        await ws.send(json.dumps(frame))
