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
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache


@functools.cache
def shared_cache(alias: str = "default") -> BaseCache:
    """The process's one client for the cache ``alias`` (created on first use)."""
    return caches.create_connection(alias)


@functools.cache
def _redis_client(alias: str) -> Any:
    # Django's client for the cache's primary server, on Django's own connection pool;
    # made once, not once per command as RedisCache does.
    return shared_cache(alias)._cache.get_client(write=True)


def count_hit(key: str, *, window: int, amount: int = 1, alias: str = "default") -> int:
    """Add ``amount`` to a counter that expires ``window`` seconds after its last count; returns the new count.

    On Django's Redis cache one round trip (INCR and EXPIRE pipelined) instead of the
    three of ``add`` plus ``incr`` (SET NX, EXISTS, INCRBY). The value is the plain
    integer ``add`` and ``incr`` store, so both read it alike. Raises what the cache
    raises when it is unavailable; callers decide whether to fail open.
    """
    cache = shared_cache(alias)
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        pipeline = _redis_client(alias).pipeline(transaction=False)
        pipeline.incrby(full_key, amount)
        pipeline.expire(full_key, window)
        return pipeline.execute()[0]
    cache.add(key, 0, timeout=window)
    return cache.incr(key, amount)
