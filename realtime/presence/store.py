"""Who is online, per tenant, in Redis: entries per user and web process that expire unless refreshed.

Each web process writes an entry ``<user>|<process>`` for every member it holds a socket
of, with an expiry ``ttl`` seconds ahead, and refreshes it well before then. A process
that dies without a word (kill -9, a lost machine) stops refreshing: its entries expire,
and the next tick of any other process in that tenant removes them and announces the
leave. The tenant's entries live on the Redis host that owns the tenant's stream, so
presence shards with the rest of the tenant's traffic.

One Lua script per tenant and tick (``presence_tick.lua``) does the bookkeeping and
hands out the pending diff at most once per throttle period, to one process: the diff
frames a tenant's sockets get are bounded whatever the number of members or processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ..streams.redis_store import _Script

_tick = _Script(Path(__file__).with_name("presence_tick.lua").read_text())


@dataclass
class TenantTick:
    """What one process tells the store about one tenant in one tick."""

    tenant_id: int  # 0: the platform-wide count of connected users, which keeps no diffs
    present: Sequence[int] = ()  # members with a socket here (all of them when refreshing)
    gone: Sequence[int] = ()  # members whose last socket here closed (after the grace period)


@dataclass
class Diff:
    """Who came online (user id -> since, in ms) and who went offline, for one tenant."""

    tenant_id: int
    joined: dict[int, int] = field(default_factory=dict)
    left: list[int] = field(default_factory=list)
    at_ms: int = 0  # when the store handed it out

    def __bool__(self) -> bool:
        return bool(self.joined or self.left)


class PresenceStore:
    """Presence entries on the given Redis clients, placed by ``shard(tenant_id)``."""

    def __init__(
        self,
        clients: Sequence[redis.Redis],
        shard: Callable[[int], int],
        *,
        key_prefix: str = "presence",
        ttl_seconds: float = 20.0,
        throttle_seconds: float = 1.0,
    ) -> None:
        self.clients = list(clients)
        self.shard = shard
        self.key_prefix = key_prefix
        self.ttl_ms = int(ttl_seconds * 1000)
        self.throttle_ms = max(1, int(throttle_seconds * 1000))

    def _keys(self, tenant_id: int) -> list[str]:
        base = f"{self.key_prefix}:{{tenant.{tenant_id}}}"
        return [f"{base}:{part}" for part in ("entries", "counts", "since", "pending", "sent")]

    def tick(self, process: str, ticks: Iterable[TenantTick], now: float | None = None) -> list[Diff]:
        """Write this process's entries, sweep expired ones, and collect the diffs this process should send.

        One pipelined round trip per Redis host for all the tenants.
        """
        now_ms = int((time.time() if now is None else now) * 1000)
        by_client: dict[int, list[TenantTick]] = {}
        for tenant_tick in ticks:
            by_client.setdefault(self.shard(tenant_tick.tenant_id), []).append(tenant_tick)
        diffs = []
        for index, tenant_ticks in by_client.items():
            calls = [
                (
                    self._keys(t.tenant_id),
                    [now_ms, now_ms + self.ttl_ms, self.throttle_ms, self.ttl_ms * 3, process, int(t.tenant_id != 0)]
                    + [len(t.present), *t.present, len(t.gone), *t.gone],
                )
                for t in tenant_ticks
            ]
            for tenant_tick, reply in zip(tenant_ticks, _tick.run_many(self.clients[index], calls), strict=True):
                diff = Diff(tenant_tick.tenant_id, at_ms=now_ms)
                for user, change in zip(reply[::2], reply[1::2], strict=True):
                    change = change.decode() if isinstance(change, bytes) else change
                    if change == "-":
                        diff.left.append(int(user))
                    else:
                        diff.joined[int(user)] = int(change[1:])
                if diff:
                    diffs.append(diff)
        return diffs

    def connected(self, user_ids: Iterable[int]) -> set[int]:
        """Which of these users have an open socket on any process (tenant 0: every socket, hidden or not)."""
        users = list(user_ids)
        if not users:
            return set()
        counts = self.clients[self.shard(0)].hmget(self._keys(0)[1], users)
        return {user for user, count in zip(users, counts, strict=True) if count and int(count) > 0}

    def online(self, tenant_id: int, now: float | None = None) -> dict[int, int]:
        """The tenant's members online now (any process): user id -> since (ms)."""
        now_ms = int((time.time() if now is None else now) * 1000)
        entries_key, _counts, since_key, *_ = self._keys(tenant_id)
        pipe = self.clients[self.shard(tenant_id)].pipeline(transaction=False)
        pipe.zrangebyscore(entries_key, f"({now_ms}", "+inf")
        pipe.hgetall(since_key)
        members, since = pipe.execute()
        users = {int(member.split(b"|", 1)[0]) for member in members}
        return {user: int(since.get(str(user).encode(), now_ms)) for user in users}
