"""Presence entries in a real Redis: one presence per user across processes, expiry, the throttle."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from realtime.presence.store import PresenceStore, TenantTick
from tests.support.processes import RedisServer

pytestmark = [pytest.mark.stack]

T0 = 1_800_000_000.0
ACME = 7


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this module's own: tests flush it freely."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def store(redis_server) -> PresenceStore:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    return PresenceStore([client], lambda tenant_id: 0, ttl_seconds=20, throttle_seconds=1)


def changes(diffs) -> tuple[dict[int, int], list[int]]:
    """(joined, left) of the one tenant's diff in a tick's answer, or ({}, [])."""
    assert len(diffs) <= 1
    return (diffs[0].joined, diffs[0].left) if diffs else ({}, [])


def test_a_user_on_two_processes_is_one_presence_until_both_let_go(store):
    """Tests that a second process holding the user joins nobody, and only the last one's leave is a leave."""
    assert changes(store.tick("a", [TenantTick(ACME, present=[1])], now=T0)) == ({1: int(T0 * 1000)}, [])
    assert changes(store.tick("b", [TenantTick(ACME, present=[1, 2])], now=T0 + 2)) == ({2: int((T0 + 2) * 1000)}, [])
    assert set(store.online(ACME, now=T0 + 2)) == {1, 2}
    assert changes(store.tick("a", [TenantTick(ACME, gone=[1])], now=T0 + 4)) == ({}, [])
    assert set(store.online(ACME, now=T0 + 4)) == {1, 2}
    assert changes(store.tick("b", [TenantTick(ACME, gone=[1])], now=T0 + 6)) == ({}, [1])
    assert store.online(ACME, now=T0 + 6) == {2: int((T0 + 2) * 1000)}


def test_a_process_that_stops_refreshing_takes_its_users_offline_after_the_ttl(store):
    """Tests that a dead process's entries expire and the next tick of another process announces the leave."""
    store.tick("dead", [TenantTick(ACME, present=[1, 2])], now=T0)
    assert changes(store.tick("alive", [TenantTick(ACME, present=[3])], now=T0 + 1)) == ({3: int((T0 + 1) * 1000)}, [])
    assert changes(store.tick("alive", [TenantTick(ACME, present=[3])], now=T0 + 19)) == ({}, [])  # a refresh
    assert set(store.online(ACME, now=T0 + 19)) == {1, 2, 3}
    assert set(store.online(ACME, now=T0 + 20.5)) == {3}  # expired entries are not read, even unswept
    assert changes(store.tick("alive", [TenantTick(ACME, present=[3])], now=T0 + 21)) == ({}, [1, 2])
    assert set(store.online(ACME, now=T0 + 30)) == {3}


def test_diffs_are_handed_out_at_most_once_per_throttle_period_and_nothing_is_lost(store):
    """Tests that a storm of joins from two processes comes out as one diff per second, all of it."""
    handed_out = []
    for n in range(300):  # 300 members arriving over 0.3 s on two processes, one tick each
        diffs = store.tick("ab"[n % 2], [TenantTick(ACME, present=[n])], now=T0 + n / 1000)
        handed_out += [diff.joined for diff in diffs]
    assert len(handed_out) == 1
    rest = store.tick("a", [TenantTick(ACME)], now=T0 + 1)
    assert len(rest) == 1
    assert set(handed_out[0]) | set(rest[0].joined) == set(range(300))


def test_tenants_are_apart(store):
    """Tests that a member online in one tenant is not online in another."""
    store.tick("a", [TenantTick(ACME, present=[1]), TenantTick(8, present=[2])], now=T0)
    assert set(store.online(ACME, now=T0)) == {1}
    assert set(store.online(8, now=T0)) == {2}


def test_tenant_zero_counts_every_connected_user_and_hands_out_no_diffs(store):
    """Tests the platform-wide count Web Push asks: who has a socket at all, with no presence frames for it."""
    assert store.tick("a", [TenantTick(0, present=[1, 2])], now=T0) == []
    assert store.tick("b", [TenantTick(0, present=[2, 3])], now=T0 + 2) == []
    assert store.connected([1, 2, 3, 4]) == {1, 2, 3}
    store.tick("a", [TenantTick(0, gone=[1, 2])], now=T0 + 4)
    assert store.connected([1, 2, 3, 4]) == {2, 3}
    store.tick("b", [TenantTick(0, present=[2, 3])], now=T0 + 30)  # a's entries would have expired too
    assert store.connected([1, 2, 3, 4]) == {2, 3}
