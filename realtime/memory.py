"""Garbage collection for a process that holds thousands of open sockets.

CPython's cyclic collector walks every tracked object on a full collection. At 3,000
sockets (about 300 objects each) one took 70-290 ms, and under a reconnect storm or
a steady API load they came every few seconds: most of the API's p99 latency and a
second of the storm (``GC_EXPERIMENT`` runs in docs/benchmarks.md). Objects that live
as long as a socket gain nothing from being walked again and again.

So the collector is told what is long-lived (``gc.freeze``: frozen objects are never
walked): everything alive once the application is loaded (``freeze_loaded_application``),
and, at each heartbeat or every few hundred new sockets, what is alive then (``Collector``).
Objects freed by reference counting go as usual; only garbage in reference cycles
among frozen objects waits: a closed socket leaves about 60 such objects. Every
``REALTIME_GC_FULL_SECONDS`` (10 minutes) the heartbeat unfreezes everything and runs
one full collection, so they are reclaimed: one pause every ten minutes instead of
one every few seconds.
"""

from __future__ import annotations

import gc
import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def freeze_loaded_application() -> None:
    """Exempt what the loaded application holds (modules, settings, URL patterns) from every collection."""
    if settings.REALTIME.get("GC_FREEZE", True):
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
        if self.opened >= self.FREEZE_AFTER_OPENED and settings.REALTIME.get("GC_FREEZE", True):
            self.opened = 0
            gc.freeze()

    def on_beat(self) -> None:
        """Freeze what is alive now; every ``REALTIME_GC_FULL_SECONDS``, first collect everything once."""
        if not settings.REALTIME.get("GC_FREEZE", True):
            return
        now = time.monotonic()
        if now - self.last_full >= settings.REALTIME.get("GC_FULL_SECONDS", 600):
            self.last_full = now
            frozen = gc.get_freeze_count()
            gc.unfreeze()
            started = time.perf_counter()
            collected = gc.collect()
            logger.info(
                "full garbage collection: %d objects were frozen, %d collected, %.0f ms",
                frozen,
                collected,
                1000 * (time.perf_counter() - started),
            )
        self.opened = 0
        gc.freeze()
