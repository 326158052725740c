"""Garbage collection for a process that holds thousands of open sockets.

CPython's cyclic collector walks every tracked object on a full collection. At 3,000
sockets (about 300 objects each) one took 70-290 ms, and under a reconnect storm or
a steady API load they came every few seconds: most of the API's p99 latency and a
second of the storm (``GC_EXPERIMENT`` runs in docs/benchmarks.md). Objects that live
as long as a socket gain nothing from being walked again and again.

So the collector is told what is long-lived (``gc.freeze``: frozen objects are never
walked): everything alive once the application is loaded (``freeze_loaded_application``),
and, at each heartbeat or every few hundred new sockets, what survives a collection of
the objects created since the last freeze (``freeze_survivors``): garbage already in
cycles is reclaimed at that point, not frozen. Objects freed by reference counting go
as usual; only cycles among objects that were alive at a freeze and died later wait
(a socket that closes leaves some). Every ``REALTIME_GC_FULL_SECONDS`` (5 minutes) the
heartbeat unfreezes everything and runs one full collection, so they are reclaimed:
one pause every five minutes instead of one every few seconds.

Freezing without that collection first leaked: a 4-minute soak with 2,000 sockets
reconnecting grew the web process by 22-27 MiB; with it, by about 1 MiB.
"""

from __future__ import annotations

import gc
import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def freezing_enabled() -> bool:
    """Whether ``REALTIME_GC_FREEZE`` is on (read each time: tests and operators may switch it)."""
    return settings.REALTIME.get("GC_FREEZE", True)


def freeze_loaded_application() -> None:
    """Exempt what the loaded application holds (modules, settings, URL patterns) from every collection."""
    if freezing_enabled():
        freeze_survivors()


def freeze_survivors() -> None:
    """Collect the objects created since the last freeze, then freeze what is still alive.

    The collection walks only unfrozen objects, so it costs what was created since the
    last freeze, not what every open socket holds.
    """
    gc.collect()
    gc.freeze()


class Collector:
    """The heartbeat's side of garbage collection: freeze what lived a beat, collect it all now and then."""

    # Sockets opened since the last freeze after which their state is frozen without
    # waiting for the beat: in a reconnect storm thousands open within seconds, and
    # each full collection meanwhile would walk all of them.
    FREEZE_AFTER_OPENED = 250

    def __init__(self) -> None:
        self.last_full = time.monotonic()
        self.opened = 0

    def on_socket_opened(self) -> None:
        """Count an opened socket; freeze once ``FREEZE_AFTER_OPENED`` have opened since the last freeze."""
        self.opened += 1
        if self.opened >= self.FREEZE_AFTER_OPENED and freezing_enabled():
            self.opened = 0
            freeze_survivors()

    def on_beat(self) -> None:
        """Freeze what lived a beat; every ``REALTIME_GC_FULL_SECONDS``, first collect everything once."""
        if not freezing_enabled():
            return
        self.opened = 0
        now = time.monotonic()
        if now - self.last_full < settings.REALTIME.get("GC_FULL_SECONDS", 300):
            freeze_survivors()
            return
        self.last_full = now
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        started = time.perf_counter()
        collected = gc.collect()
        gc.freeze()
        logger.info(
            "full garbage collection: %d objects were frozen, %d collected, %.0f ms",
            frozen,
            collected,
            1000 * (time.perf_counter() - started),
        )
