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
from .positions import BadPositions, decode_positions, encode_positions
from .redis_store import RedisStreamStore

__all__ = [
    "BadPositions",
    "decode_positions",
    "encode_positions",
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


# The channel layers whose groups live in Redis the way channels-redis keeps them:
# the publish script queues events for their members itself.
REDIS_GROUP_LAYERS = ("realtime.layers.PumpedRedisChannelLayer", "channels_redis.core.RedisChannelLayer")


@functools.cache
def stream_store() -> RedisStreamStore:
    """The process's stream store, on the channel layer's Redis hosts, with the layer's group settings.

    With a channel layer that keeps no groups in Redis (Channels' in-memory layer in unit
    tests, the pub/sub layers) the store only keeps history, and ``realtime.events``
    hands each publication to the layer's ``group_send`` itself (``queues_for_groups``).
    """
    layer_settings = settings.CHANNEL_LAYERS["default"]
    layer: dict[str, Any] = layer_settings.get("CONFIG", {})
    queues = layer_settings["BACKEND"] in REDIS_GROUP_LAYERS
    process_capacity = layer.get("channel_capacity", {}).get("specific.*", layer.get("capacity", 1000))
    return RedisStreamStore(
        settings.CHANNEL_LAYER_REDIS_URLS,
        history_size=settings.REALTIME["STREAM_HISTORY_SIZE"],
        history_seconds=settings.REALTIME["STREAM_HISTORY_SECONDS"],
        key_prefix=settings.REALTIME.get("STREAM_KEY_PREFIX", "streams"),
        layer_prefix=layer.get("prefix", "asgi") if queues else "",
        group_expiry=layer.get("group_expiry", 86400),
        message_expiry=layer.get("expiry", 60),
        capacity=process_capacity,
        idempotency_seconds=settings.REALTIME["PUBLISH_IDEMPOTENCY_SECONDS"],
    )


def forget_settings(setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: the next ``stream_store()`` is built from the new settings (tests)."""
    if setting in ("CHANNEL_LAYERS", "CHANNEL_LAYER_REDIS_URLS", "REALTIME"):
        stream_store.cache_clear()
