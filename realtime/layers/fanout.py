"""``GroupFanoutChannelLayer`` (``CHANNEL_LAYER_BACKEND=fanout``): fans a group message out inside each process.

``channels_redis.core.RedisChannelLayer`` turns one ``group_send`` to a tenant of
3,000 members into 3,000 Redis list pushes and 3,000 pops, each deserialised on
its own. This layer, like Centrifugo per node, publishes one Redis pub/sub message
per group; every server process subscribed to the group receives it once,
deserialises it once, and puts it on the local queue of each member channel. The
interface is unchanged: producers still call ``group_send`` through
``realtime.events``, and Channels consumers still receive their handler calls.

It extends ``channels_redis.pubsub`` (same sharding of groups over several Redis
hosts, same re-subscription by redis-py after a lost connection) with:

* one deserialisation per process per message instead of one per socket;
* bounded per-channel queues (``capacity``): a socket that falls that far behind
  loses messages, as with the core layer, and catches up through the heartbeat's
  cursor and replay, instead of growing the server's memory without end;
* a log line and a metric when a message is dropped.

Order: Redis delivers one connection's pub/sub messages in publish order and the
publish path sends durable events one at a time under its lock, so each socket
sees durable events in cursor order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts

from .. import metrics

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1000


class _FanoutShard(RedisSingleShardConnection):
    """One Redis host's subscriber: decode each message once, hand it to local channels."""

    def _receive_message(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        layer: GroupFanoutLoopLayer = self.channel_layer
        queue = layer.channels.get(name)
        if queue is not None:
            layer.deliver(name, queue, layer.channel_layer.deserialize(message["data"]))
            return
        members = layer.groups.get(name)
        if not members:
            return
        decoded = layer.channel_layer.deserialize(message["data"])
        channels, attached = layer.channels, layer.attached
        for channel in tuple(members):
            queue = channels.get(channel)
            if queue is not None:
                # Attached channels share one dict (they must not change it); a queued
                # message is a shallow copy, so a handler that edits it cannot touch its neighbours'.
                layer.deliver(channel, queue, decoded if channel in attached else dict(decoded))


class GroupFanoutLoopLayer(RedisPubSubLoopLayer):
    """The per-event-loop part: local channels, local group membership, the shards."""

    def __init__(self, hosts=None, prefix: str = "asgi", capacity: int = DEFAULT_CAPACITY, **kwargs: Any) -> None:
        # Settings shared with the core layer that pub/sub has no use for.
        for unused in ("expiry", "group_expiry", "channel_capacity", "symmetric_encryption_keys"):
            kwargs.pop(unused, None)
        super().__init__(hosts=hosts, prefix=prefix, **kwargs)
        self.capacity = capacity
        self.dropped = 0
        self._shards = [_FanoutShard(host, self) for host in decode_hosts(hosts)]
        self.attached: dict[str, Callable[[dict[str, Any]], None]] = {}

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = asyncio.Queue(maxsize=self.capacity)
        await self._get_shard(channel).subscribe(channel)

    async def attach(
        self,
        channel: str,
        deliver: Callable[[dict[str, Any]], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        """Hand ``channel``'s messages to ``deliver`` as they arrive (see ``PumpedRedisChannelLayer.attach``).

        redis-py subscribes again by itself after a lost connection, so ``fail`` is
        never called here: what was published meanwhile comes back by replay.
        """
        self.attached[channel] = deliver
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)

    async def detach(self, channel: str) -> None:
        """Stop handing messages to ``channel`` and unsubscribe it (its socket has closed)."""
        if self.attached.pop(channel, None) is not None and self.channels.pop(channel, None) is not None:
            await self._get_shard(channel).unsubscribe(channel)

    def deliver(self, channel: str, queue: asyncio.Queue, message: dict[str, Any]) -> None:
        """Hand a message to an attached channel, or queue it, dropping it if that channel is full."""
        attached = self.attached.get(channel)
        if attached is not None:
            try:
                attached(message)
            except Exception:
                logger.exception("delivering a message to channel %s failed", channel)
            return
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            metrics.OVER_CAPACITY_DROPS.inc()
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "channel %s is %d messages behind; dropped (total dropped: %d)",
                    channel,
                    self.capacity,
                    self.dropped,
                )

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message for a local channel (already deserialised by the shard)."""
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        queue = self.channels[channel]
        try:
            return await queue.get()
        except (TimeoutError, asyncio.CancelledError, GeneratorExit):
            # Channels cancels receive() when the consumer exits: forget the channel then.
            if self.channels.get(channel) is queue:
                del self.channels[channel]
                try:
                    await self._get_shard(channel).unsubscribe(channel)
                except BaseException:
                    logger.exception("Unexpected exception while cleaning up channel %s", channel)
            raise


class GroupFanoutChannelLayer(RedisPubSubChannelLayer):
    """``CHANNEL_LAYERS`` backend: one Redis message per process per group, fan-out in process."""

    def _get_layer(self) -> GroupFanoutLoopLayer:
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = GroupFanoutLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer
