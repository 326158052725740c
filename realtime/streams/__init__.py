"""Per-stream offsets, epochs and history: the durable part of the publish path (issue 14).

``base`` says what a stream, a position and a recovery are; ``redis_store`` keeps them
on the channel layer's Redis hosts with one Lua script per publish; ``memory_store``
keeps them in one process for unit tests. ``stream_store()`` is the process's store,
built from settings.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings

from .base import Entry, Position, Publication, Recovery, StreamMessage, StreamStore, frame_text, new_epoch
from .memory_store import InMemoryStreamStore
from .redis_store import RedisStreamStore

__all__ = [
    "Entry",
    "InMemoryStreamStore",
    "Position",
    "Publication",
    "Recovery",
    "RedisStreamStore",
    "StreamMessage",
    "StreamStore",
    "frame_text",
    "new_epoch",
    "stream_store",
]


@functools.cache
def stream_store() -> RedisStreamStore:
    """The process's stream store, on the channel layer's Redis hosts, with the layer's group settings."""
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    process_capacity = layer.get("channel_capacity", {}).get("specific.*", layer.get("capacity", 1000))
    return RedisStreamStore(
        settings.CHANNEL_LAYER_REDIS_URLS,
        history_size=settings.REALTIME["STREAM_HISTORY_SIZE"],
        history_seconds=settings.REALTIME["STREAM_HISTORY_SECONDS"],
        layer_prefix=layer.get("prefix", "asgi"),
        group_expiry=layer.get("group_expiry", 86400),
        message_expiry=layer.get("expiry", 60),
        capacity=process_capacity,
    )
