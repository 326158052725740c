"""Bookkeeping a request need not wait for, done for many requests at once on a thread of its own.

Once a notification commits and its events are in their streams, two chores remain that
the caller never sees the result of: deleting the events' outbox rows, and asking whether
a recipient has a Web Push device. Done per request they were a fifth of the CPU of a
``POST /api/v1/notifications`` (an ORM delete and a query each, py-spy in
docs/benchmarks.md); a ``Batcher`` collects the items of every request in the last
``REALTIME["AFTER_COMMIT_BATCH_SECONDS"]`` and hands them to one function call: one
statement for all of them.

What a batch may cost if the process dies before it runs is the caller's to decide: the
outbox relay publishes rows left behind under their idempotency keys (a stream ignores
the repeat), and Web Push is best effort. A process that exits normally runs what is
pending first (``atexit``). With a delay of 0 (the in-process tests) items are handled
at once, on the caller's thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

Item = TypeVar("Item")

# A batch never grows past this; a longer queue is handled in several calls.
MAX_BATCH = 900


def batch_delay() -> float:
    """Seconds items wait to be handled together (``REALTIME_AFTER_COMMIT_BATCH_SECONDS``)."""
    return float(settings.REALTIME["AFTER_COMMIT_BATCH_SECONDS"])


class Batcher(Generic[Item]):
    """Items added from any thread, handed to ``handle`` in batches by one thread per process.

    ``handle`` runs on the batcher's thread with a database connection of that thread's
    own (closed when Django would close a request's: broken, or past its age). It must
    not raise; if it does, the batch is logged and dropped.
    """

    def __init__(self, name: str, handle: Callable[[list[Item]], None], delay: Callable[[], float] = batch_delay):
        self.name = name
        self.handle = handle
        self.delay = delay
        self._pending: list[Item] = []
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        atexit.register(self.flush)

    def add(self, items: Iterable[Item]) -> None:
        """Queue items for the next batch (or, with no delay, handle them now)."""
        items = list(items)
        if not items:
            return
        if self.delay() <= 0:
            self._run(items)
            return
        with self._wakeup:
            # The thread waits for a first item, then for a full batch or the delay.
            wake = not self._pending or len(self._pending) + len(items) >= MAX_BATCH
            self._pending.extend(items)
            if self._pid != os.getpid():
                self._start_thread()
            if wake:
                self._wakeup.notify()

    def flush(self) -> None:
        """Handle what is pending now, on the caller's thread (process exit, tests)."""
        while batch := self._take():
            self._run(batch)

    @property
    def pending(self) -> int:
        """Items waiting for their batch."""
        with self._wakeup:
            return len(self._pending)

    # --------------------------------------------------------------------------
    def _take(self) -> list[Item]:
        with self._wakeup:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            return batch

    def _start_thread(self) -> None:
        # Once per process: a forked child (a Celery prefork worker) inherits the list but not the thread.
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending:
                    self._wakeup.wait()
            # Let the batch fill: requests arriving within the delay share it.
            with self._wakeup:
                self._wakeup.wait_for(lambda: len(self._pending) >= MAX_BATCH, timeout=self.delay())
            self.flush()

    def _run(self, batch: list[Item]) -> None:
        on_own_thread = threading.current_thread() is self._thread
        if on_own_thread:
            close_old_connections()
        try:
            self.handle(batch)
        except Exception:
            logger.exception("%s: a batch of %d failed", self.name, len(batch))
        finally:
            if on_own_thread:
                close_old_connections()
