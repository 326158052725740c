"""The default channel layer, ``PumpedRedisChannelLayer`` (``CHANNEL_LAYER_BACKEND=redis``).

Built in three parts, each a class extending the one before: ``ProcessGroupsLayer``
(``realtime.layers.membership``: who is in a group), ``PumpLayer``
(``realtime.layers.pump``: receiving) and, here, the batched sending.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import asyncio as aioredis

from .. import metrics
from .pump import PumpLayer

logger = logging.getLogger(__name__)


@dataclass
class _SendBatch:
    """``group_send`` calls waiting to go to Redis together."""

    sent: asyncio.Future
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class PumpedRedisChannelLayer(PumpLayer):
    """``RedisChannelLayer`` whose process-wide receive is never cancelled by a leaving socket.

    In channels-redis, the consumer that wins the receive lock pops the next message
    for *every* channel of the process (``BZPOPMIN``). When that consumer's socket
    closes, Channels cancels its receive; a message popped for another socket at that
    moment is lost (django/channels#1683, django/channels_redis#366). A socket then
    misses a group message, and the heartbeat resends it late, after newer ones.

    Here one task per event loop and channel prefix (the pump) pops the process's
    messages and puts each on its channel's queue; a consumer's ``receive`` waits only
    on its own queue, so cancelling it loses nothing that belongs to anyone else. Everything
    else (groups, capacity, expiry, sharding, sending) is channels-redis unchanged.
    If the pump fails (Redis gone), every waiting ``receive`` raises the error, as
    channels-redis's own receive does, and the next ``receive`` starts a new pump.

    It also spends fewer Redis round trips, all measured in the 2,000-socket soak
    (docs/reliability.md): the pump pops in bulk; ``group_send`` calls made together
    go out in one pipelined batch; a socket's joins and leaves go in one pipeline; and
    the connection pool waits for a free connection instead of raising.

    **Groups are joined per process, and fanned out inside it** (as Centrifugo does per
    node). When a socket of this process joins a group, the layer notes it locally and
    puts the *process* (its channel prefix, ``specific.<id>!``) in the group in Redis,
    once, however many of its sockets join. A ``group_send`` to a tenant of 3,000
    members on one process is then one small message to that process, not one message
    naming 3,000 channels; the pump reads the group from it and hands the message to
    each local member. Channels given to another process (``group_add`` of a channel
    this process did not create) are stored per channel, as channels-redis does, and
    both kinds are served by the same ``group_send``. Membership is refreshed within
    ``group_expiry`` and restored after Redis forgets it (a restart), see ``_maintain``.

    **Attached channels** (``attach``): instead of queueing a message for ``receive``,
    the pump calls the channel's function with it, synchronously. ``RealtimeConsumer``
    attaches its channel and writes a fanned-out event straight to its socket: no
    queue, no task switch per socket (docs/benchmarks.md).

    **The Channels layer specification** (channel_layer_spec in Channels' docs) holds,
    tested in tests/realtime/test_layer_spec.py: order per channel and at-most-once;
    ``new_channel(prefix=...)`` with any prefix, several per process (each prefix is a
    queue of its own in Redis, with its own pump: ``/readyz`` receives beside the
    sockets); ``receive()`` of a channel another process made raises ``ForeignChannel``
    instead of popping that process's queue (channels-redis asserts); ``flush()``
    deletes every key *and* forgets this process's memberships, so the maintenance has
    nothing to restore, and a ``receive()`` waiting across it raises ``ReceiveAborted``
    (an attached channel's ``fail`` gets it). Where the fan-out design departs from it:

    * A socket's channel (``new_channel()``) is in its groups through the process:
      ``group_expiry`` bounds the process's membership in Redis, which the pump
      refreshes while the process lives, so the channel stays in a group until
      ``group_discard`` (the consumer discards on close) or ``flush``, however long ago
      it was added. The spec lets membership lapse ``group_expiry`` after the last
      ``group_add``. Channels of other prefixes and processes are members one by one,
      and lapse as the spec says.
    * A group message reaches the local channels that are in the group when the pump
      takes it from Redis, not when it was sent: a socket joining in between gets it, one
      leaving in between does not.
    * This process's messages leave Redis as soon as a pump takes them, received or not:
      ``expiry`` bounds their time in Redis only. They then wait in the process (at most
      ``capacity`` per channel, the oldest dropped first) and are dropped when their
      channel's ``receive`` is cancelled (its socket has gone), as in channels-redis once
      its receive has popped them.
    """

    # channels-redis's group_send script, except that each message's score is above the
    # newest one already queued on its key: the queue stays first-in first-out even when
    # two processes' clocks (or two messages of one batch) give the same or older time.
    _GROUP_SEND_IN_ORDER = """
        local over_capacity = 0
        local current_time = tonumber(ARGV[#ARGV - 1])
        local expiry = ARGV[#ARGV]
        for i=1,#KEYS do
            if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
                local score = current_time
                local newest = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
                if newest[2] and tonumber(newest[2]) >= score then
                    score = tonumber(newest[2]) + 0.000001
                end
                redis.call('ZADD', KEYS[i], string.format('%.6f', score), ARGV[i])
                redis.call('EXPIRE', KEYS[i], expiry)
            else
                over_capacity = over_capacity + 1
            end
        end
        return over_capacity
    """

    # ``group_send`` calls made in one turn of the event loop go out as one batch.
    coalesces_group_sends = True
    # How long a command waits for a free connection when the pool is at its limit.
    POOL_WAIT_SECONDS = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open_batches: dict[asyncio.AbstractEventLoop, _SendBatch] = {}
        self._send_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._sending: set[asyncio.Task] = set()  # the loop holds tasks weakly; these must finish

    def create_pool(self, index: int) -> aioredis.ConnectionPool:
        """A pool that waits for a free connection at ``max_connections`` instead of raising.

        redis-py's default pool raises ``MaxConnectionsError`` once that many commands
        are in flight: 2,000 sockets closing at once (the soak's end, a network blip)
        each discard their groups, and some of them failed with it (docs/reliability.md).
        """
        host = dict(self.hosts[index])
        if "address" not in host:  # Sentinel: channels-redis's own pool
            return super().create_pool(index)
        address = host.pop("address")
        host.setdefault("timeout", self.POOL_WAIT_SECONDS)
        return aioredis.BlockingConnectionPool.from_url(address, **host)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """channels-redis's ``group_send``, coalesced with the other calls of this loop turn.

        Calls made before the event loop next runs its callbacks (``asyncio.gather``
        over many ``group_send`` calls, as the publish path does) join one batch, sent
        by ``group_send_many`` in call order; batches go out one after another. Returns
        once this call's batch is in Redis, and raises what sending it raised.
        """
        assert self.require_valid_group_name(group), "Group name not valid"
        loop = asyncio.get_running_loop()
        batch = self._open_batches.get(loop)
        if batch is None:
            batch = self._open_batches[loop] = _SendBatch(loop.create_future())
            loop.call_soon(self._close_batch, loop, batch)
        batch.messages.append((group, message))
        await asyncio.shield(batch.sent)

    def _close_batch(self, loop: asyncio.AbstractEventLoop, batch: _SendBatch) -> None:
        if self._open_batches.get(loop) is batch:
            del self._open_batches[loop]
        task = loop.create_task(self._send_batch(batch), name="channel-layer-group-send")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_batch(self, batch: _SendBatch) -> None:
        lock = self._send_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:  # first in, first out: a later batch waits for an earlier one
            try:
                await self.group_send_many(batch.messages)
            except BaseException as error:
                batch.sent.set_exception(error)
                batch.sent.exception()  # retrieved here too: every caller may have given up waiting
                if isinstance(error, asyncio.CancelledError):
                    raise
            else:
                batch.sent.set_result(None)

    # --------------------------------------------------------------------------
    # Batched writes: one Redis round trip per step, not several per group
    # --------------------------------------------------------------------------
    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """``group_send`` each ``(group, message)`` in order, in two pipelined round trips per host.

        A tenant-wide notification is one event per member, so one API call made a
        thousand ``group_send`` calls of four round trips each, on the web process's
        event loop, while that loop also served every socket (the 2,000-socket soak,
        docs/reliability.md). Here the groups' members are read in one pipeline and
        the messages queued in another, in the order given; a socket sees them in that
        order, as with one ``group_send`` after another. A member that is a process
        (``specific.<id>!``) gets the message once, naming the group; a member that is
        a channel gets it as channels-redis sends it.
        """
        if not messages:
            return
        now = int(time.time())
        members: dict[str, list[str]] = {}
        for index, host_groups in self._groups_by_host(dict.fromkeys(group for group, _ in messages)).items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in host_groups:
                key = self._group_key(group)
                pipe.zremrangebyscore(key, min=0, max=now - self.group_expiry)
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
            for position, group in enumerate(host_groups):
                members[group] = [name.decode("utf8") for name in replies[2 * position + 1]]

        pipes: dict[int, Any] = {}
        scripts: dict[int, list[int]] = collections.defaultdict(list)  # each pipe's script replies
        trimmed: set[bytes] = set()
        for group, message in messages:
            by_connection: dict[int, list[tuple[bytes, bytes, int]]] = collections.defaultdict(list)
            channels = []
            for name in members[group]:
                if name.endswith("!"):  # a whole process: one message naming the group
                    key = (self.prefix + name).encode()
                    payload = self.serialize({**message, "__asgi_group__": group})
                    by_connection[self.consistent_hash(name)].append((key, payload, self.get_capacity(name)))
                else:
                    channels.append(name)
            if channels:
                connections, key_message, key_capacity = self._map_channel_keys_to_connection(channels, message)
                for index, keys in connections.items():
                    by_connection[index] += [(key, key_message[key], key_capacity[key]) for key in keys]
            for index, targets in by_connection.items():
                pipe = pipes.get(index)
                if pipe is None:
                    pipe = pipes[index] = self.connection(index).pipeline(transaction=False)
                for key, _, _ in targets:
                    if key not in trimmed:  # drop messages past their expiry, once per key
                        pipe.zremrangebyscore(key, min=0, max=now - int(self.expiry))
                        trimmed.add(key)
                keys = [key for key, _, _ in targets]
                args = [payload for _, payload, _ in targets] + [capacity for _, _, capacity in targets]
                scripts[index].append(len(pipe.command_stack))
                pipe.eval(self._GROUP_SEND_IN_ORDER, len(keys), *keys, *args, time.time(), self.expiry)
        for index, pipe in pipes.items():
            replies = await pipe.execute()
            dropped = sum(replies[position] for position in scripts[index])
            if dropped:
                metrics.OVER_CAPACITY_DROPS.inc(dropped)
                logger.warning("%d message(s) dropped: their channels were over capacity", dropped)
