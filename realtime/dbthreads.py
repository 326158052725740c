"""The sockets' own threads for blocking work: database reads and writes, and the stream store's Redis calls."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

# Channels runs every ``database_sync_to_async`` call of a process on one thread, so
# at thousands of sockets each handshake queued behind every socket's heartbeat and
# replay, and clients gave up waiting (the soak at 2,000 sockets, docs/reliability.md).
# The sockets' blocking work runs on a small pool of its own instead: each call is a
# short read, or a write in its own transaction, so no call needs another's thread.
_db_threads = ThreadPoolExecutor(max_workers=settings.REALTIME["DB_THREADS"], thread_name_prefix="realtime-db")


def db_call(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a coroutine run on the sockets' threads (closing stale database connections)."""
    return database_sync_to_async(func, thread_sensitive=False, executor=_db_threads)
