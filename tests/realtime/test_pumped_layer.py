"""The default channel layer (realtime.layers.PumpedRedisChannelLayer) on a real Redis.

channels-redis's own receive lets whichever consumer holds its lock pop the next
message for the whole process; cancelling that consumer (its socket closed) could
lose a message meant for another one (django/channels#1683). These tests close
sockets while others are being sent to, and count.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from asgiref.sync import async_to_sync

from realtime.layers import PumpedRedisChannelLayer

pytestmark = [pytest.mark.stack]


@pytest.fixture
def own_redis():
    """A Redis of this test's own: nobody else's receive is blocked in it."""
    from tests.support.processes import RedisServer

    server = RedisServer().start()  # answers PING when start() returns
    yield server
    server.stop()


def test_closing_sockets_never_lose_a_message_meant_for_a_socket_that_stays(own_redis):
    """Tests 50 rounds of: a socket's receive is cancelled just as a message for another socket is popped.

    The message is written by a blocking Redis client, so the event loop cannot read
    the pop's reply before the cancel: the exact moment channels-redis loses it.
    """
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])
    writer = redis.Redis.from_url(own_redis.url)

    def send_from_another_process(channel: str, message: dict) -> None:
        key = layer.prefix + layer.non_local_name(channel)
        writer.zadd(key, {layer.serialize({**message, "__asgi_channel__": channel}): time.time()})

    async def popping_in_redis() -> None:
        """Wait (bounded) until a receive of this process is blocked in BZPOPMIN on the server."""
        deadline = time.monotonic() + 5
        while not any(client.get("cmd") == "bzpopmin" for client in writer.client_list()):
            assert time.monotonic() < deadline, "no receive reached BZPOPMIN"
            await asyncio.sleep(0.005)

    async def rounds() -> list[int]:
        stayer = await layer.new_channel()
        lost = []
        try:
            for n in range(50):
                leaver = await layer.new_channel()
                leaving = asyncio.ensure_future(layer.receive(leaver))
                staying = asyncio.ensure_future(layer.receive(stayer))
                await popping_in_redis()
                send_from_another_process(stayer, {"type": "room.message", "n": n})
                leaving.cancel()  # the leaver's socket closes before the loop runs again
                try:
                    message = await asyncio.wait_for(staying, 3)
                except TimeoutError:
                    lost.append(n)
                    continue
                assert message["n"] == n
        finally:
            await layer.flush()
        return lost

    assert async_to_sync(rounds)() == []


def test_receive_raises_for_every_waiting_socket_when_redis_goes_away(own_redis):
    """Tests that a receive error still reaches the consumers (they close and their clients reconnect)."""
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])

    async def scenario() -> list:
        first, second = await layer.new_channel(), await layer.new_channel()
        waiting = [asyncio.ensure_future(layer.receive(first)), asyncio.ensure_future(layer.receive(second))]
        await asyncio.sleep(0)  # both receives start (and with them the pump)
        own_redis.kill()
        return await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 30)

    outcomes = async_to_sync(scenario)()
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes


# ------------------------------------------------------------------------------
# Batched writes: what the publish path and the sockets' group changes use
# ------------------------------------------------------------------------------
async def _drain(layer: PumpedRedisChannelLayer, channel: str, count: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]


def test_a_batch_of_group_sends_reaches_every_member_in_the_order_given(own_redis, monkeypatch):
    """Tests 300 group_send calls to users' and a tenant's groups: one batch, each socket gets its own in order."""
    from realtime.layers import send_to_groups

    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}], capacity=1000)
    batches = []
    send_many = layer.group_send_many

    async def counted(messages):
        batches.append(len(messages))
        await send_many(messages)

    monkeypatch.setattr(layer, "group_send_many", counted)

    async def scenario() -> dict[str, list[int]]:
        alice, bob, carol = [await layer.new_channel() for _ in range(3)]
        await layer.group_add_many(["user.1", "tenant.1"], alice)
        await layer.group_add_many(["user.2", "tenant.1"], bob)
        await layer.group_add_many(["user.3"], carol)  # not in the tenant
        groups = ["user.1", "user.2", "tenant.1", "user.3", "user.4"]  # nobody in user.4
        batch = [(groups[n % len(groups)], {"type": "realtime.event", "n": n}) for n in range(300)]
        await send_to_groups(layer, batch)  # what the publish path calls
        try:
            return {
                name: [message["n"] for message in await _drain(layer, channel, expected)]
                for name, channel, expected in (("alice", alice, 120), ("bob", bob, 120), ("carol", carol, 60))
            }
        finally:
            await layer.flush()

    got = async_to_sync(scenario)()
    assert batches == [300]
    assert got["alice"] == [n for n in range(300) if n % 5 in (0, 2)]
    assert got["bob"] == [n for n in range(300) if n % 5 in (1, 2)]
    assert got["carol"] == [n for n in range(300) if n % 5 == 3]


def test_a_batch_stays_in_order_when_the_clock_goes_backwards(own_redis, monkeypatch):
    """Tests first-in first-out per socket even if the sender's clock steps back (NTP, another host)."""
    import realtime.layers.pumped

    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])
    clock = iter(range(2_000_000_000, 0, -1))
    monkeypatch.setattr(realtime.layers.pumped.time, "time", lambda: float(next(clock)))

    async def scenario() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add_many(["user.1"], channel)
        await layer.group_send_many([("user.1", {"type": "realtime.event", "n": n}) for n in range(50)])
        await layer.group_send_many([("user.1", {"type": "realtime.event", "n": n}) for n in range(50, 60)])
        try:
            return [message["n"] for message in await _drain(layer, channel, 60)]
        finally:
            await layer.flush()

    assert async_to_sync(scenario)() == list(range(60))


def test_a_batch_over_a_sockets_capacity_is_counted_and_later_sockets_still_get_theirs(own_redis):
    """Tests that a full queue drops (and counts) what does not fit, and does not stop the batch."""
    from realtime import metrics

    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}], capacity=5)
    before = metrics.OVER_CAPACITY_DROPS._value.get()

    async def scenario() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add_many(["user.1"], channel)
        await layer.group_send_many([("user.1", {"type": "realtime.event", "n": n}) for n in range(8)])
        try:
            return [message["n"] for message in await _drain(layer, channel, 5)]
        finally:
            await layer.flush()

    assert async_to_sync(scenario)() == [0, 1, 2, 3, 4]
    assert metrics.OVER_CAPACITY_DROPS._value.get() - before == 3


def test_a_socket_that_left_its_groups_in_one_batch_gets_nothing_more(own_redis):
    """Tests group_discard_many: after it, the socket's groups no longer reach it."""
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])
    store = redis.Redis.from_url(own_redis.url)

    async def scenario() -> list[int]:
        leaver, stayer = await layer.new_channel(), await layer.new_channel()
        await layer.group_add_many(["user.1", "tenant.1"], leaver)
        await layer.group_add_many(["tenant.1"], stayer)
        await layer.group_discard_many(["user.1", "tenant.1"], leaver)
        await layer.group_send_many(
            [("user.1", {"type": "realtime.event", "n": 1}), ("tenant.1", {"type": "realtime.event", "n": 2})]
        )
        try:
            assert [m["n"] for m in await _drain(layer, stayer, 1)] == [2]
            # Both sockets share this process's queue, first in first out: a message for the
            # leaver would have been popped before the stayer's, into the leaver's buffer.
            assert store.zcard(layer.prefix + layer.non_local_name(leaver)) == 0
            buffered = layer.receive_buffer.get(leaver)
            return [buffered.get_nowait()["n"] for _ in range(buffered.qsize())] if buffered else []
        finally:
            await layer.flush()

    assert async_to_sync(scenario)() == []


def test_group_sends_one_after_another_still_arrive_in_order(own_redis):
    """Tests plain sequential ``group_send`` calls (batches of one) on the coalescing layer."""
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])

    async def scenario() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add("user.1", channel)
        for n in range(20):
            await layer.group_send("user.1", {"type": "realtime.event", "n": n})
        try:
            return [message["n"] for message in await _drain(layer, channel, 20)]
        finally:
            await layer.flush()

    assert async_to_sync(scenario)() == list(range(20))


def test_more_sockets_closing_at_once_than_the_pool_holds_wait_for_a_connection(own_redis):
    """Tests 300 sockets leaving their groups at once through a pool of 5: none fails, all have left."""
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url, "max_connections": 5}])
    store = redis.Redis.from_url(own_redis.url)

    async def scenario() -> None:
        channels = [f"specific.test!{n}" for n in range(300)]
        await asyncio.gather(*(layer.group_add_many([f"user.{n}", "tenant.1"], c) for n, c in enumerate(channels)))
        await asyncio.gather(*(layer.group_discard_many([f"user.{n}", "tenant.1"], c) for n, c in enumerate(channels)))
        await layer.flush()

    async_to_sync(scenario)()
    assert store.zcard(layer._group_key("tenant.1")) == 0
    assert store.client_list() and len(store.client_list()) <= 1 + 5  # this client and the pool's


def test_a_backlog_is_popped_in_batches_and_delivered_in_order(own_redis):
    """Tests 1,200 messages already waiting for a process (more than one pop takes): all arrive, in order."""
    from realtime.layers import send_to_groups

    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}], capacity=2000)
    assert layer.PUMP_BATCH < 1200

    async def scenario() -> tuple[list[int], list[int]]:
        first, second = await layer.new_channel(), await layer.new_channel()
        await layer.group_add_many(["user.1"], first)
        await layer.group_add_many(["user.2"], second)
        # Queued before either socket receives: the pump starts on a backlog.
        await send_to_groups(layer, [(f"user.{1 + n % 2}", {"type": "realtime.event", "n": n}) for n in range(1200)])
        try:
            got_first = [m["n"] for m in await _drain(layer, first, 600)]
            got_second = [m["n"] for m in await _drain(layer, second, 600)]
            return got_first, got_second
        finally:
            await layer.flush()

    got_first, got_second = async_to_sync(scenario)()
    assert got_first == list(range(0, 1200, 2))
    assert got_second == list(range(1, 1200, 2))


# ------------------------------------------------------------------------------
# Groups per process, fanned out inside it; attached channels
# ------------------------------------------------------------------------------
def test_a_process_is_in_a_group_once_however_many_of_its_sockets_are(own_redis):
    """Tests that 200 local sockets of one tenant make one Redis member, one message per send, 200 deliveries."""
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])
    store = redis.Redis.from_url(own_redis.url)
    group_key = layer._group_key("tenant.1")

    async def scenario() -> tuple[list[bytes], list[int], list[bytes]]:
        channels = [await layer.new_channel() for _ in range(200)]
        for channel in channels:
            await layer.group_add_many(["tenant.1", f"user.{channel[-6:]}"], channel)
        members = store.zrange(group_key, 0, -1)
        await layer.group_send("tenant.1", {"type": "realtime.event", "n": 7})
        queued = store.zcard(layer.prefix + layer.process_channel)
        try:
            got = [(await _drain(layer, channel, 1))[0]["n"] for channel in channels]
        finally:
            for channel in channels:
                await layer.group_discard_many(["tenant.1", f"user.{channel[-6:]}"], channel)
        return members, [queued, *got], store.zrange(group_key, 0, -1)

    members, (queued, *got), after_leaving = async_to_sync(scenario)()
    assert members == [layer.process_channel.encode()]
    assert queued == 1  # one message for the whole process, not one naming 200 channels
    assert got == [7] * 200
    assert after_leaving == []  # the last local member left: so did the process


def test_a_leave_and_a_join_racing_never_leave_the_process_out_of_the_group(own_redis):
    """Tests 100 rounds of the group's last local socket leaving while a new one joins: the newcomer still hears."""
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])

    async def scenario() -> list[int]:
        unheard = []
        current = await layer.new_channel()
        await layer.group_add("tenant.2", current)
        try:
            for n in range(100):
                newcomer = await layer.new_channel()
                await asyncio.gather(layer.group_discard("tenant.2", current), layer.group_add("tenant.2", newcomer))
                await layer.group_send("tenant.2", {"type": "realtime.event", "n": n})
                try:
                    assert (await asyncio.wait_for(layer.receive(newcomer), 3))["n"] == n
                except TimeoutError:
                    unheard.append(n)
                layer.receive_buffer.pop(current, None)
                current = newcomer
        finally:
            await layer.flush()
        return unheard

    assert async_to_sync(scenario)() == []


def test_memberships_redis_forgot_are_restored_and_messages_flow_again(own_redis, monkeypatch):
    """Tests Redis losing every key (a restart without persistence): the pump notices and joins again."""
    monkeypatch.setattr(PumpedRedisChannelLayer, "MAINTENANCE_SECONDS", 0.2)
    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])
    store = redis.Redis.from_url(own_redis.url)

    async def scenario() -> str:
        channel = await layer.new_channel()
        heard: list[dict] = []
        await layer.attach(channel, heard.append, lambda error: None)
        await layer.group_add_many(["tenant.3", "user.3"], channel)
        store.flushall()
        deadline = asyncio.get_running_loop().time() + 10
        while not store.exists(layer._group_key("tenant.3")):
            assert asyncio.get_running_loop().time() < deadline, "the membership was never restored"
            await asyncio.sleep(0.05)
        await layer.group_send("tenant.3", {"type": "realtime.event", "text": "after the restart"})
        while not heard:
            assert asyncio.get_running_loop().time() < deadline, "nothing reached the socket"
            await asyncio.sleep(0.01)
        await layer.detach(channel)
        await layer.flush()
        return heard[0]["text"]

    assert async_to_sync(scenario)() == "after the restart"


def test_an_attached_channel_gets_its_messages_by_call_in_order_and_nothing_is_queued(own_redis):
    """Tests attach(): 300 group and direct messages reach the function in send order; receive() is never needed."""
    from realtime.layers import send_to_groups

    layer = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}], capacity=1000)

    async def scenario() -> tuple[list[int], bool]:
        channel = await layer.new_channel()
        heard: list[int] = []
        await layer.attach(channel, lambda message: heard.append(message["n"]), lambda error: None)
        await layer.group_add_many(["tenant.4", "user.4"], channel)
        messages = [("tenant.4" if n % 2 else "user.4", {"type": "realtime.event", "n": n}) for n in range(300)]
        await send_to_groups(layer, messages[:150])
        await layer.send(channel, {"type": "realtime.event", "n": 150})
        await send_to_groups(layer, messages[151:])
        deadline = asyncio.get_running_loop().time() + 10
        while len(heard) < 300:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(heard)} arrived"
            await asyncio.sleep(0.01)
        queued = channel in layer.receive_buffer
        await layer.detach(channel)
        await layer.flush()
        return heard, queued

    heard, queued = async_to_sync(scenario)()
    assert heard == list(range(300))
    assert not queued


def test_a_group_shared_with_a_channel_of_another_process_reaches_both(own_redis):
    """Tests a group holding this process and a single channel of an older process (a rolling deploy)."""
    here = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])
    older = PumpedRedisChannelLayer(hosts=[{"address": own_redis.url}])

    async def scenario() -> tuple[int, int]:
        local, remote = await here.new_channel(), await older.new_channel()
        await here.group_add("tenant.6", local)
        await here.group_add("tenant.6", remote)  # not this process's: stored per channel, as channels-redis does
        await here.group_send("tenant.6", {"type": "realtime.event", "n": 1})
        try:
            return (await _drain(here, local, 1))[0]["n"], (await _drain(older, remote, 1))[0]["n"]
        finally:
            await here.flush()

    assert async_to_sync(scenario)() == (1, 1)
