"""The heartbeat of a process's sockets: one beat pings every socket at once.

Each socket used to beat on its own task, with database queries of its own; at 3,000
sockets that was more than half of the server's CPU in the benchmark's sustained
phase (docs/benchmarks.md). Here one task per event loop beats for all of them. Each
beat reads, in one round trip per Redis host, the top position of every stream the
process's sockets follow (``services.stream_tops``), and pings each socket with the
tops of its own streams. A client whose position in a stream stays behind the top it
was told sends ``resume``, and gets what it lacks from the stream's history: a lost
*last* event, which no later event would reveal as a gap, comes back this way. Gaps
the server sees itself (an offset that skips one) are repaired by the consumer at once
(``RealtimeConsumer.take``).

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

from .dbthreads import db_call
from .events import envelope
from .memory import Collector
from .services import stream_tops
from .streams import encode_positions

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
        """One beat: read every followed stream's top, then ping each socket with its own streams' tops."""
        sockets = list(self.sockets)
        streams = set().union(*(socket.streams for socket in sockets if socket.user is not None))
        tops = await db_call(stream_tops)(streams) if streams else {}
        self.beats += 1
        now = timezone.now()
        waiting = []
        for socket in sockets:
            if socket not in self.sockets:
                continue  # closed while Redis was read
            positions = {stream: tops[stream] for stream in socket.streams if stream in tops}
            ping = envelope(None, "ping", None, now, {"positions": encode_positions(positions)})
            pending = socket.send_beat(ping)
            if pending is not None:
                waiting.append(pending)
        if waiting:
            # Servers without prepared frames: each socket's sends run on their own, so a
            # socket that cannot take its frames now does not hold up the others' pings.
            await asyncio.gather(*waiting, return_exceptions=True)
        # The sockets' state has lived a beat: keep the cyclic collector from walking it (realtime.memory).
        self.collector.on_beat()
