"""One cache client per process, for the counters on hot paths (rate limits).

``django.core.cache.cache`` is kept per context (asgiref's ``Local``), and under
ASGI every WebSocket consumer runs in a context of its own: each socket got its own
``RedisCache``, with its own connection pool, and held a Redis connection for as long
as it stayed open (2,000 sockets, 2,000 connections and 43 MB of Redis client
buffers in the soak, docs/reliability.md). Django's Redis client is thread-safe and
its connection pool is shared by whoever holds the client, so one instance serves
every thread and context of the process.
"""

from __future__ import annotations

import functools

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache


@functools.cache
def shared_cache(alias: str = "default") -> BaseCache:
    """The process's one client for the cache ``alias`` (created on first use)."""
    return caches.create_connection(alias)
