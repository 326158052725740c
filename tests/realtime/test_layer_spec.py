"""The default channel layer against the Channels layer specification, on a real Redis.

The specification (channels.readthedocs.io, channel_layer_spec) is what Channels and
code written for it expect of any layer. ``PumpedRedisChannelLayer``'s docstring says
where the layer departs from it for the fan-out design; these tests hold it to the
rest: channels of any prefix, channels of other processes, and ``flush()``.

Each layer instance stands for one server process; all of a test's layers share a
key prefix of their own on this module's Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from asgiref.sync import async_to_sync

from realtime.layers import ForeignChannel, PumpedRedisChannelLayer, ReceiveAborted
from tests.support.processes import RedisServer

pytestmark = [pytest.mark.stack]

RECEIVE_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def spec_redis() -> Iterator[RedisServer]:
    """A Redis of this module's own: flush() and blocked pops touch nobody else's keys."""
    server = RedisServer().start()  # answers PING when start() returns
    yield server
    server.stop()


@pytest.fixture
def store(spec_redis: RedisServer) -> redis.Redis:
    """A plain client on the same Redis, to look at what the layer left there."""
    return redis.Redis.from_url(spec_redis.url)


@pytest.fixture
def make_layer(spec_redis: RedisServer) -> Callable[..., PumpedRedisChannelLayer]:
    """``make_layer()``: a layer standing for one server process, under this test's key prefix."""
    prefix = f"spec{uuid.uuid4().hex[:12]}"

    def make(**config) -> PumpedRedisChannelLayer:
        return PumpedRedisChannelLayer(hosts=[{"address": spec_redis.url}], prefix=prefix, **config)

    return make


async def receive(layer: PumpedRedisChannelLayer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), RECEIVE_TIMEOUT)


async def until(condition: Callable[[], bool], message: str) -> None:
    """Wait (bounded) for ``condition`` while the event loop runs the layer's tasks."""
    deadline = asyncio.get_running_loop().time() + RECEIVE_TIMEOUT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, message
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------
# new_channel(prefix=...): any prefix, several per process
# ------------------------------------------------------------------------------
def test_a_channel_of_another_prefix_receives_beside_the_sockets_as_readyz_does(make_layer):
    """Tests /readyz's round trip on the loop of a process whose sockets are receiving, and the other way round.

    A web process's pump pops its sockets' messages; /readyz makes a ``readyz.`` channel,
    sends to it and waits. Neither may starve the other, whichever receives first.
    """
    layer = make_layer()

    async def scenario() -> list[str]:
        heard: list[str] = []
        try:
            # A check before any socket: the first receive of the loop is on the readyz prefix.
            check = await layer.new_channel(prefix="readyz.")
            await layer.send(check, {"type": "readyz.ping", "token": "first"})
            heard.append((await receive(layer, check))["token"])
            # A socket joins its group (attached, as the consumer is) and still hears its group.
            socket = await layer.new_channel()
            await layer.attach(socket, lambda message: heard.append(message["token"]), lambda error: None)
            await layer.group_add("tenant.1", socket)
            await layer.group_send("tenant.1", {"type": "realtime.event", "token": "to the socket"})
            await until(lambda: len(heard) == 2, "the socket never heard its group")
            # A check while the sockets' pump runs.
            check = await layer.new_channel(prefix="readyz.")
            await layer.send(check, {"type": "readyz.ping", "token": "second"})
            heard.append((await receive(layer, check))["token"])
        finally:
            await layer.flush()
        return heard

    assert async_to_sync(scenario)() == ["first", "to the socket", "second"]


def test_channels_of_several_prefixes_each_get_their_direct_and_group_messages(make_layer):
    """Tests three prefixes, two channels each, on one loop: every channel gets its own message and the group's."""
    layer = make_layer()

    async def scenario() -> dict[str, list]:
        channels = [
            await layer.new_channel(prefix=prefix) for prefix in ("specific", "readyz.", "jobs") for _ in (1, 2)
        ]
        try:
            for channel in channels:
                await layer.group_add("tenant.1", channel)
                await layer.send(channel, {"type": "direct", "to": channel})
            await layer.group_send("tenant.1", {"type": "group"})
            return {channel: [await receive(layer, channel) for _ in (1, 2)] for channel in channels}
        finally:
            await layer.flush()

    got = async_to_sync(scenario)()
    assert len(got) == 6
    for channel, messages in got.items():
        assert messages == [{"type": "direct", "to": channel}, {"type": "group"}], channel


# ------------------------------------------------------------------------------
# A process receives only its own channels
# ------------------------------------------------------------------------------
def test_receiving_another_processs_channel_raises_and_leaves_its_messages_to_it(make_layer):
    """Tests receive() and attach() of a channel another process made: refused, and that process still gets it."""
    here, there = make_layer(), make_layer()

    async def scenario() -> dict:
        theirs = await there.new_channel()
        readyz_of_theirs = await there.new_channel(prefix="readyz.")
        try:
            await here.send(theirs, {"type": "realtime.event", "n": 1})
            for channel in (theirs, readyz_of_theirs):
                with pytest.raises(ForeignChannel):
                    await asyncio.wait_for(here.receive(channel), RECEIVE_TIMEOUT)
                with pytest.raises(ForeignChannel):
                    await here.attach(channel, lambda message: None, lambda error: None)
            return await receive(there, theirs)
        finally:
            await there.flush()

    assert async_to_sync(scenario)() == {"type": "realtime.event", "n": 1}


# ------------------------------------------------------------------------------
# flush()
# ------------------------------------------------------------------------------
def test_flush_forgets_every_group_membership_and_the_maintenance_does_not_restore_them(make_layer, store, monkeypatch):
    """Tests flush() with local and per-channel members: no group reaches them, even after the maintenance runs.

    The pump checks every few seconds that Redis still holds this process's groups, and
    joins them again if it lost them (a Redis restart): a flush must not look like one.
    """
    monkeypatch.setattr(PumpedRedisChannelLayer, "MAINTENANCE_SECONDS", 0.0)
    layer = make_layer()
    layer.brpop_timeout = 0.05  # an idle pump goes round (and maintains) every 50 ms

    def pops() -> int:
        return store.info("commandstats").get("cmdstat_bzpopmin", {}).get("calls", 0)

    async def scenario() -> tuple[list, list, int]:
        heard: list[dict] = []
        socket = await layer.new_channel()
        await layer.attach(socket, heard.append, lambda error: None)
        await layer.group_add_many(["tenant.1", "user.1"], socket)
        check = await layer.new_channel(prefix="readyz.")
        await layer.group_add("tenant.1", check)  # stored per channel, as channels-redis does
        await layer.flush()

        # The process goes on serving: a new socket's pump runs its maintenance, round after round.
        fresh = await layer.new_channel()
        fresh_heard: list[dict] = []
        await layer.attach(fresh, fresh_heard.append, lambda error: None)
        rounds = pops() + 5
        await until(lambda: pops() >= rounds, "the pump did not go round")
        groups_left = store.keys(f"{layer.prefix}:group:*")

        await layer.group_send("tenant.1", {"type": "realtime.event", "n": 1})
        await layer.group_send("user.1", {"type": "realtime.event", "n": 2})
        # Sent after the group messages, to the same process's queue: once it arrives, they would have.
        await layer.send(fresh, {"type": "realtime.event", "n": "marker"})
        await until(lambda: fresh_heard, "the marker never arrived")
        queued = layer.receive_buffer.get(socket)
        heard += [queued.get_nowait() for _ in range(queued.qsize())] if queued else []
        waiting_for_check = store.zcard(layer.prefix + layer.non_local_name(check))
        await layer.flush()
        return groups_left, heard, waiting_for_check

    groups_left, heard, waiting_for_check = async_to_sync(scenario)()
    assert groups_left == []
    assert heard == []  # neither handed to the old socket nor queued for it
    assert waiting_for_check == 0


def test_a_receive_waiting_across_flush_is_woken_with_an_error(make_layer, store):
    """Tests receives of every kind waiting when flush() runs: each raises, none hangs; the layer works after it."""
    layer = make_layer()

    def blocked_pops() -> int:
        return sum(1 for client in store.client_list() if client.get("cmd") == "bzpopmin")

    async def scenario() -> tuple[list, list, dict]:
        socket, check = await layer.new_channel(), await layer.new_channel(prefix="readyz.")
        attached = await layer.new_channel()
        failures: list[BaseException] = []
        await layer.attach(attached, lambda message: None, failures.append)
        waiting = [
            asyncio.ensure_future(layer.receive(socket)),
            asyncio.ensure_future(layer.receive(check)),
            asyncio.ensure_future(layer.receive("plain.channel")),  # no "!": channels-redis's own receive
        ]
        # Every receive is blocked in Redis: the two prefixes' pumps and the plain channel's pop.
        await until(lambda: blocked_pops() >= 3, "the receives never blocked in Redis")
        await layer.flush()
        outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), RECEIVE_TIMEOUT)
        try:
            after = await layer.new_channel()
            await layer.send(after, {"type": "realtime.event", "n": "after the flush"})
            return outcomes, failures, await receive(layer, after)
        finally:
            await layer.flush()

    outcomes, failures, after = async_to_sync(scenario)()
    assert [type(outcome) for outcome in outcomes[:2]] == [ReceiveAborted, ReceiveAborted], outcomes
    assert isinstance(outcomes[2], redis.ConnectionError), outcomes  # its connection was closed under it
    assert [type(failure) for failure in failures] == [ReceiveAborted]
    assert after["n"] == "after the flush"
