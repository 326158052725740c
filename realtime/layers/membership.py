"""Group membership of the default layer: per process in Redis, per channel in this process.

The part of ``PumpedRedisChannelLayer`` (``realtime.layers.pumped``) that decides who
is in a group. When a socket of this process joins a group, the layer notes it
locally and puts the *process* (``specific.<id>!``) in the group in Redis, once,
however many of its sockets join; the pump (``realtime.layers.pump``) hands a group
message to each local member. Channels of other processes are stored per channel,
as channels-redis does. ``_maintain`` keeps Redis holding what this process holds.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)


class ProcessGroupsLayer(RedisChannelLayer):
    """``RedisChannelLayer`` whose groups hold this process once, with its members kept in memory.

    A part of ``PumpedRedisChannelLayer``, not a layer to configure on its own: nothing
    here receives the messages sent to the process (the pump does).
    """

    # How often the pump checks that Redis still holds this process's group memberships.
    MAINTENANCE_SECONDS = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This process's name in Redis groups, and the key its pump pops.
        self.process_channel = f"specific.{self.client_prefix}!"
        self._local_groups: dict[str, set[str]] = {}  # group -> this process's member channels
        self._groups_in_redis: set[str] = set()  # groups whose Redis set holds process_channel
        self._membership_dirty: set[str] = set()  # groups whose Redis set may not match _local_groups
        self._membership_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._next_maintenance = 0.0

    def is_local(self, channel: str) -> bool:
        """True for a socket's channel of this process (``new_channel()``): it joins groups through the process.

        Channels this process made with another prefix (``new_channel(prefix="readyz.")``)
        are group members one by one, as other processes' channels are: their messages go
        to their own prefix's queue, which that prefix's pump pops.
        """
        return channel.startswith(self.process_channel)

    async def group_add(self, group: str, channel: str) -> None:
        await self.group_add_many([group], channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self.group_discard_many([group], channel)

    async def group_add_many(self, groups: Iterable[str], channel: str) -> None:
        """``group_add`` for several groups at once (a socket's handshake).

        A local channel joins in this process; Redis is written only for a group no
        other local socket is in yet. When this returns, a ``group_send`` to any of
        the groups, from any process, reaches the channel.
        """
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        groups = list(groups)
        if not self.is_local(channel):
            await self._add_remote_channel(groups, channel)
            return
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            self._local_groups.setdefault(group, set()).add(channel)
        missing = [group for group in groups if group not in self._groups_in_redis]
        if missing:
            await self._sync_membership(missing)

    async def group_discard_many(self, groups: Iterable[str], channel: str) -> None:
        """``group_discard`` for several groups at once (a socket closing).

        A local channel leaves at once (nothing more is handed to it); the process
        leaves a group in Redis when its last local member has.
        """
        groups = list(groups)
        if not self.is_local(channel):
            await self._discard_remote_channel(groups, channel)
            return
        emptied = []
        for group in groups:
            members = self._local_groups.get(group)
            if members is None:
                continue
            members.discard(channel)
            if not members:
                del self._local_groups[group]
                emptied.append(group)
        if emptied:
            await self._sync_membership(emptied)

    def local_members(self, group: str) -> frozenset[str]:
        """The channels of this process in ``group`` (for tests and diagnostics)."""
        return frozenset(self._local_groups.get(group, ()))

    async def _sync_membership(self, groups: Iterable[str]) -> None:
        """Make Redis hold this process in exactly the given groups that have local members.

        Joins and leaves of different sockets interleave: the last local member of a
        group leaves while another socket joins it. Whichever call holds the lock writes
        every group marked since, as the local state is *then*; so the final write of a
        group always matches its final local state, whatever order the calls ran in.
        """
        self._membership_dirty.update(groups)
        lock = self._membership_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            dirty, self._membership_dirty = self._membership_dirty, set()
            if not dirty:
                return  # an earlier holder of the lock wrote them
            joining = [group for group in dirty if group in self._local_groups]
            leaving = [group for group in dirty if group not in self._local_groups]
            # Before the await: a socket joining meanwhile must not take a group that is
            # being left for one that is still there.
            self._groups_in_redis.difference_update(leaving)
            try:
                await self._write_membership(joining, leaving)
            except BaseException:
                self._membership_dirty |= dirty  # retried by the next call or the maintenance
                raise
            self._groups_in_redis.update(group for group in joining if group in self._local_groups)

    async def _write_membership(self, joining: Iterable[str], leaving: Iterable[str]) -> None:
        stamp = time.time()
        by_host: dict[int, list[tuple[str, bool]]] = collections.defaultdict(list)
        for group in joining:
            by_host[self.consistent_hash(group)].append((group, True))
        for group in leaving:
            by_host[self.consistent_hash(group)].append((group, False))
        for index, changes in by_host.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group, join in changes:
                key = self._group_key(group)
                if join:
                    pipe.zadd(key, {self.process_channel: stamp})
                    pipe.expire(key, self.group_expiry)
                else:
                    pipe.zrem(key, self.process_channel)
            pipe.set(self._alive_key(), stamp, ex=self.group_expiry)
            await pipe.execute()

    def _alive_key(self) -> str:
        # Present while Redis remembers this process's memberships; gone after a restart.
        return f"{self.prefix}:process:{self.process_channel}"

    async def _maintain(self) -> None:
        """Keep this process's memberships in Redis: refresh them, and restore them after a restart.

        Redis forgets everything when it restarts without persistence (the machine's
        own Redis keeps nothing on disk), and channels-redis drops group members older
        than ``group_expiry``. Both are checked from the pump, every few seconds.
        """
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_maintenance:
            return
        self._next_maintenance = loop.time() + self.MAINTENANCE_SECONDS
        groups = list(self._local_groups)
        stale = self._membership_dirty | {group for group in self._groups_in_redis if group not in self._local_groups}
        due = loop.time() >= getattr(self, "_next_refresh", 0.0)
        if not due and groups:  # with no local groups, nothing to restore
            for index in range(self.ring_size):
                if not await self.connection(index).exists(self._alive_key()):
                    due = True
                    logger.warning("Redis forgot this process's groups; joining %d group(s) again", len(groups))
                    break
        if due:
            self._next_refresh = loop.time() + self.group_expiry / 3
            self._groups_in_redis.clear()
            await self._sync_membership(groups + list(stale))
            for index in range(self.ring_size):
                await self.connection(index).set(self._alive_key(), time.time(), ex=self.group_expiry)
        elif stale:
            await self._sync_membership(stale)

    async def flush(self) -> None:
        """channels-redis's flush, and this process forgets its groups: the maintenance finds none to restore.

        Under the membership lock: a join being written meanwhile lands before the keys
        are deleted, and one made later is written after, from the emptied local state.
        """
        lock = self._membership_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            self._local_groups.clear()
            self._groups_in_redis.clear()
            self._membership_dirty.clear()
            await super().flush()

    async def _add_remote_channel(self, groups: list[str], channel: str) -> None:
        stamp = time.time()
        for index, host_groups in self._groups_by_host(groups).items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in host_groups:
                key = self._group_key(group)
                pipe.zadd(key, {channel: stamp})
                pipe.expire(key, self.group_expiry)
            await pipe.execute()

    async def _discard_remote_channel(self, groups: list[str], channel: str) -> None:
        for index, host_groups in self._groups_by_host(groups).items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in host_groups:
                pipe.zrem(self._group_key(group), channel)
            await pipe.execute()

    def _groups_by_host(self, groups: Iterable[str]) -> dict[int, list[str]]:
        """Valid group names, by the index of the Redis host that holds each."""
        by_host: dict[int, list[str]] = collections.defaultdict(list)
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            by_host[self.consistent_hash(group)].append(group)
        return by_host
