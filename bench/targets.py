"""The servers under test, and how each one's producers publish to its sockets."""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, replace
from typing import Any

TRANSPORT = "realtime.transport:BroadcastWebSocketProtocol"


@dataclass(frozen=True)
class Target:
    """One server configuration under test."""

    name: str
    server: str  # daphne | uvicorn | plain | raw
    layer: str  # a key of settings.CHANNEL_LAYER_BACKENDS, or - (raw)
    ours: bool  # our consumer (authenticated, stored events) or a baseline
    ws: str = "websockets"  # uvicorn's --ws


TARGETS = {
    "raw": Target("raw websockets.broadcast (ceiling)", "raw", "-", False),
    "plain-redis": Target("plain Channels, daphne, RedisChannelLayer", "plain", "redis-upstream", False),
    "plain-pubsub": Target("plain Channels, daphne, RedisPubSubChannelLayer", "plain", "pubsub", False),
    "ours": Target(
        "platform (default): uvicorn + BroadcastWebSocketProtocol, PumpedRedisChannelLayer",
        "uvicorn",
        "redis",
        True,
        TRANSPORT,
    ),
    "ours-redis": Target("platform, daphne, PumpedRedisChannelLayer (default)", "daphne", "redis", True),
    "ours-pubsub": Target("platform, daphne, RedisPubSubChannelLayer", "daphne", "pubsub", True),
    "ours-fanout": Target("platform, daphne, realtime.layers fan-out", "daphne", "fanout", True),
    "ours-fanout-uvicorn": Target("platform, uvicorn, realtime.layers fan-out", "uvicorn", "fanout", True),
    "ours-redis-uvicorn": Target("platform, uvicorn, PumpedRedisChannelLayer (default)", "uvicorn", "redis", True),
}


def resolve(key: str) -> Target:
    """The target to start; ``ours`` runs uvicorn's sans-I/O protocol while realtime.transport cannot be imported."""
    target = TARGETS[key]
    if ":" not in target.ws:
        return target
    module, _, attribute = target.ws.partition(":")
    try:
        getattr(importlib.import_module(module), attribute)
    except Exception as exc:  # noqa: BLE001 - a half-written module is a fallback, not a failed suite
        return replace(
            target,
            ws="websockets-sansio",
            name=f"platform (default): uvicorn --ws websockets-sansio (fallback: {target.ws} not importable: "
            f"{type(exc).__name__}), PumpedRedisChannelLayer",
        )
    return target


# ------------------------------------------------------------------------------
# Publishing, the way each target's producers do it
# ------------------------------------------------------------------------------
class Publisher:
    """Send one bench message to the whole audience of a target, or to one member."""

    def __init__(self, target: Target, tenant: Any, redis_url: str) -> None:
        self.target, self.tenant = target, tenant
        use_layer(target.layer)
        if target.server == "raw":
            import redis

            self.redis = redis.Redis.from_url(redis_url)

    def broadcast(self, seq: int, durable: bool = True) -> None:
        data = {"sent_at": time.time(), "seq": seq}
        if self.target.ours:
            from realtime.audience import Audience
            from realtime.events import publish

            publish("bench.ping", data, audience=Audience.tenant(self.tenant.pk), tenant=self.tenant, durable=durable)
        elif self.target.server == "plain":
            from asgiref.sync import async_to_sync
            from channels.layers import get_channel_layer

            async_to_sync(get_channel_layer().group_send)("bench_plain", {"type": "chat.message", "data": data})
        else:
            self.redis.publish("bench_raw", json.dumps({"type": "bench.ping", "data": data}))

    def to_user(self, user_id: int, seq: int) -> None:
        """One durable event to one member, straight through ``publish()``."""
        from realtime.audience import Audience
        from realtime.events import publish

        data = {"sent_at": time.time(), "seq": seq}
        publish("bench.ping", data, audience=Audience.user(user_id), tenant=self.tenant, durable=True)

    def notify_user(self, user_id: int, seq: int) -> None:
        """One notification to one member through the notify service (rows, counters, event)."""
        from notifications.services import notify

        notify(self.tenant, [user_id], category="bench", title=f"Bench {seq}", data={"sent_at": time.time()})

    def notify_tenant(self, seq: int) -> None:
        """A tenant-wide notification: one row and one event per member, in one call."""
        from notifications.services import ALL_MEMBERS, notify

        data = {"sent_at": time.time(), "seq": seq}
        notify(self.tenant, ALL_MEMBERS, category="bench", title=f"Bench {seq}", data=data)


def use_layer(layer: str) -> None:
    """Point this process's channel layer at the backend the server under test uses."""
    if layer == "-":
        return
    from channels.layers import channel_layers
    from django.conf import settings

    settings.CHANNEL_LAYERS["default"]["BACKEND"] = settings.CHANNEL_LAYER_BACKENDS[layer]
    channel_layers.backends.clear()
