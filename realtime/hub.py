"""The heartbeat of a process's sockets: one beat checks and pings every socket at once.

Each socket used to beat on its own task: every 25 s it asked the database what it
had missed and what the newest cursor was, and re-joined its groups. At 3,000 sockets
that was 120 database trips a second and more than half of the server's CPU in the
benchmark's sustained phase (docs/benchmarks.md), and a sleeping task per socket.

Here one task per event loop beats for all of them. Each beat:

1. reads, in one query, the durable events sent in the window that ended one beat
   ago (so every socket has had a whole beat to receive them live) together with the
   send mark now, which closes the next window (``delivery.sent_window``);
2. asks each socket which of the window's events it was owed and never got: events
   of its groups, newer than what it was already given on connect, by replay or by
   an earlier beat (``RealtimeConsumer.owed``). A channel layer can drop messages
   (a queue over capacity, a lost Redis connection); this is where they come back;
3. reads the frames of every missing event, for all sockets, in one query, and
   resends them (the client de-duplicates by cursor, so order does not matter);
4. pings every socket with the newest cursor it was owed, so a client can still
   notice a gap the server could not fill, and ask to ``resume``.

Group membership is not refreshed here: the channel layer keeps its own
(``PumpedRedisChannelLayer._maintain``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from . import metrics
from .dbthreads import db_call
from .delivery import frames_for, sent_window
from .events import envelope
from .memory import Collector
from .transport import text_frame

if TYPE_CHECKING:
    from .consumers import RealtimeConsumer

logger = logging.getLogger(__name__)

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The heartbeat of the sockets served by the running event loop."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found


class Hub:
    """The open sockets of one event loop, and the one task that beats for them."""

    def __init__(self) -> None:
        self.sockets: set[RealtimeConsumer] = set()
        self.task: asyncio.Task | None = None
        self.sent_through: int | None = None  # the send mark read by the previous beat
        self.beats = 0
        self.collector = Collector()

    def add(self, socket: RealtimeConsumer) -> None:
        """Beat for this socket from now on (it has been sent its opening frames)."""
        self.sockets.add(socket)
        self.collector.on_socket_opened()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run(), name="realtime-heartbeat")

    def discard(self, socket: RealtimeConsumer) -> None:
        """Stop beating for this socket; the task ends with the last one."""
        self.sockets.discard(socket)
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None

    async def run(self) -> None:
        """Beat every ``REALTIME_HEARTBEAT_SECONDS`` while there are sockets; a failed beat is retried on the next."""
        while self.sockets:
            await asyncio.sleep(settings.REALTIME["HEARTBEAT_SECONDS"])
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database blinked: the next beat checks the same window again.
                logger.warning("heartbeat failed for %d socket(s)", len(self.sockets), exc_info=True)

    async def beat(self) -> None:
        """One beat: resend what the layer dropped, then ping every socket with its cursor."""
        sockets = list(self.sockets)
        after = min((socket.verified_cursor for socket in sockets), default=None)
        window = await db_call(sent_window)(after, self.sent_through)
        self.beats += 1
        owed = {socket: socket.owed(window) for socket in sockets} if window.by_group else {}
        missing = {event_id for ids in owed.values() for event_id in ids}
        frames = await db_call(frames_for)(missing) if missing else {}
        self.sent_through = window.sent_through
        pings: dict[int, tuple[str, bytes]] = {}  # by cursor: the frame as text, and encoded once
        now = timezone.now()
        waiting = []
        resent = 0
        for socket in sockets:
            if socket not in self.sockets:
                continue  # closed while the database was read
            repairs = [frames[event_id] for event_id in owed.get(socket, ()) if event_id in frames]
            resent += len(repairs)
            cursor = socket.checked(window)
            ping = pings.get(cursor)
            if ping is None:
                text = envelope(None, "ping", None, now, {"cursor": cursor})
                ping = pings[cursor] = (text, text_frame(text))
            pending = socket.send_beat(repairs, *ping)
            if pending is not None:
                waiting.append(pending)
        if waiting:
            # Servers without prepared frames: each socket's sends run on their own, so a
            # socket that cannot take its frames now does not hold up the others' pings.
            await asyncio.gather(*waiting, return_exceptions=True)
        # The sockets' state has lived a beat: keep the cyclic collector from walking it (realtime.memory).
        self.collector.on_beat()
        if resent:
            metrics.EVENTS_REPAIRED.inc(resent)
            logger.warning("resent %d dropped event(s) to %d socket(s)", resent, sum(1 for ids in owed.values() if ids))
