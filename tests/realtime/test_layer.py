"""The fan-out channel layer (realtime.layers): the channel-layer contract, then the real stack.

Two layer instances stand for two server processes: each has its own Redis
connections, local channels and local group membership.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from accounts.services import do_remove_member
from realtime.audience import Audience
from realtime.events import publish
from realtime.layers import GroupFanoutChannelLayer
from tests.support.processes import Daphne, RedisServer
from tests.support.ws import open_socket, session_cookie_for

pytestmark = [pytest.mark.stack]

RECEIVE_TIMEOUT = 10.0


def make_layer(*urls: str, **config) -> GroupFanoutChannelLayer:
    return GroupFanoutChannelLayer(hosts=[{"address": url} for url in urls], **config)


def channel_url() -> str:
    return settings.CHANNEL_LAYER_REDIS_URLS[0]


async def receive(layer: GroupFanoutChannelLayer, channel: str, timeout: float = RECEIVE_TIMEOUT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_arrives(layer: GroupFanoutChannelLayer, channel: str, within: float = 0.3) -> bool:
    """True when no message reaches ``channel`` within ``within`` seconds (a bounded read)."""
    try:
        await asyncio.wait_for(layer.receive(channel), within)
    except TimeoutError:
        return True
    return False


# ------------------------------------------------------------------------------
# The channel-layer contract, against a real Redis
# ------------------------------------------------------------------------------
def test_one_group_send_reaches_every_member_in_every_process_once():
    """Tests that a group message reaches members in this process and in another, once each."""

    async def scenario() -> None:
        here, there = make_layer(channel_url()), make_layer(channel_url())
        try:
            local = [await here.new_channel() for _ in range(3)]
            remote = await there.new_channel()
            for channel in local:
                await here.group_add("tenant.1", channel)
            await there.group_add("tenant.1", remote)
            await here.group_send("tenant.1", {"type": "realtime.event", "text": "hi"})
            for layer, channel in [*((here, c) for c in local), (there, remote)]:
                assert (await receive(layer, channel))["text"] == "hi"
                assert await nothing_arrives(layer, channel)
        finally:
            await here.flush()
            await there.flush()

    async_to_sync(scenario)()


def test_group_discard_stops_delivery_and_point_to_point_send_crosses_processes():
    """Tests that a discarded channel gets nothing more, and send() reaches a channel in another process."""

    async def scenario() -> None:
        here, there = make_layer(channel_url()), make_layer(channel_url())
        try:
            kept, dropped = await here.new_channel(), await here.new_channel()
            await here.group_add("tenant.2", kept)
            await here.group_add("tenant.2", dropped)
            await here.group_discard("tenant.2", dropped)
            await there.group_send("tenant.2", {"type": "realtime.event", "text": "after"})
            assert (await receive(here, kept))["text"] == "after"
            assert await nothing_arrives(here, dropped)
            await there.send(kept, {"type": "realtime.control", "action": "resubscribe"})
            assert (await receive(here, kept))["action"] == "resubscribe"
        finally:
            await here.flush()
            await there.flush()

    async_to_sync(scenario)()


def test_messages_arrive_in_the_order_they_were_sent():
    """Tests that a burst of group messages reaches each member in send order (durable cursor order)."""

    async def scenario() -> None:
        here, there = make_layer(channel_url()), make_layer(channel_url())
        try:
            members = [await here.new_channel() for _ in range(2)]
            for channel in members:
                await here.group_add("tenant.3", channel)
            for n in range(200):
                await there.group_send("tenant.3", {"type": "realtime.event", "id": n})
            for channel in members:
                assert [(await receive(here, channel))["id"] for _ in range(200)] == list(range(200))
        finally:
            await here.flush()
            await there.flush()

    async_to_sync(scenario)()


def test_a_full_channel_drops_instead_of_growing_without_end():
    """Tests that a member that does not read keeps at most ``capacity`` messages; others are unaffected."""

    async def scenario() -> None:
        here = make_layer(channel_url(), capacity=5)
        try:
            slow, fast = await here.new_channel(), await here.new_channel()
            await here.group_add("tenant.4", slow)
            await here.group_add("tenant.4", fast)
            got = []
            for n in range(8):
                await here.group_send("tenant.4", {"type": "realtime.event", "id": n})
                got.append((await receive(here, fast))["id"])
            assert got == list(range(8))
            assert [(await receive(here, slow))["id"] for _ in range(5)] == [0, 1, 2, 3, 4]
            assert await nothing_arrives(here, slow)
            assert here._get_layer().dropped == 3
        finally:
            await here.flush()

    async_to_sync(scenario)()


def test_groups_are_sharded_over_several_redis_servers():
    """Tests that with two Redis hosts every group still reaches its members (CHANNEL_LAYER_REDIS_URLS)."""
    second = RedisServer().start()
    try:

        async def scenario() -> None:
            hosts = (channel_url(), second.url)
            here, there = make_layer(*hosts), make_layer(*hosts)
            try:
                channel = await here.new_channel()
                groups = [f"tenant.{n}" for n in range(20)]
                shards = {here._get_layer()._get_shard(f"asgi__group__{g}") for g in groups}
                assert len(shards) == 2  # the groups really are spread over both servers
                for group in groups:
                    await here.group_add(group, channel)
                for group in groups:
                    await there.group_send(group, {"type": "realtime.event", "text": group})
                assert sorted([(await receive(here, channel))["text"] for _ in groups]) == sorted(groups)
            finally:
                await here.flush()
                await there.flush()

        async_to_sync(scenario)()
    finally:
        second.stop()


def test_a_process_that_loses_redis_resubscribes_its_groups_when_it_returns():
    """Tests that after Redis is killed and restarted, group messages reach the old members again."""
    redis = RedisServer().start()
    try:

        async def scenario() -> None:
            here = make_layer(redis.url)
            try:
                channel = await here.new_channel()
                await here.group_add("tenant.5", channel)
                await here.group_send("tenant.5", {"type": "realtime.event", "text": "before"})
                assert (await receive(here, channel))["text"] == "before"

                await asyncio.to_thread(redis.kill)
                await asyncio.to_thread(redis.start)

                # Publishers cannot know when the subscriber is back: send until it hears one.
                deadline = asyncio.get_running_loop().time() + 30
                while True:
                    sender = make_layer(redis.url)
                    try:
                        await sender.group_send("tenant.5", {"type": "realtime.event", "text": "after"})
                    finally:
                        await sender.flush()
                    try:
                        assert (await receive(here, channel, timeout=0.5))["text"] == "after"
                        break
                    except TimeoutError:
                        assert asyncio.get_running_loop().time() < deadline, "never re-subscribed"
            finally:
                await here.flush()

        async_to_sync(scenario)()
    finally:
        redis.stop()


# ------------------------------------------------------------------------------
# Through the real stack: daphne serving the platform on the fan-out layer
# ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fanout_daphne(subprocess_env) -> Iterator[Daphne]:
    """A daphne of this module's own, configured with CHANNEL_LAYER_BACKEND=fanout."""
    server = Daphne({**subprocess_env, "CHANNEL_LAYER_BACKEND": "fanout"}).start()
    yield server
    server.stop()


@pytest.fixture
def fanout(transactional_db, fanout_daphne, settings) -> Iterator[Daphne]:
    """The stack on the fan-out layer, with this test process publishing through the same layer."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {**settings.CHANNEL_LAYERS["default"], "BACKEND": "realtime.layers.GroupFanoutChannelLayer"}
    }
    channel_layers.backends.clear()
    yield fanout_daphne
    channel_layers.backends.clear()


def test_tenant_broadcast_reaches_every_member_in_stream_order(fanout, make_tenant, make_member):
    """Tests that members' sockets get every durable tenant event once, in offset order, through daphne."""
    acme = make_tenant("acme")
    members = [make_member(acme, email=f"m{n}@acme.test") for n in range(3)]
    sockets = [open_socket(fanout.ws_url, session=session_cookie_for(user)) for user in members]
    try:
        for sock in sockets:
            sock.wait_type("hello")
        for n in range(30):
            publish("test.tick", {"n": n}, audience=Audience.tenant(acme.pk), tenant=acme)
        for sock in sockets:
            frames = [sock.wait_type("test.tick") for _ in range(30)]
            assert [f["data"]["n"] for f in frames] == list(range(30))
            offsets = [f["offset"] for f in frames]
            assert offsets == list(range(offsets[0], offsets[0] + 30))
            assert [f for f in sock.drain(0.3) if f["type"] == "test.tick"] == []
    finally:
        for sock in sockets:
            sock.close()


def test_removed_member_stops_receiving_at_once_on_the_fanout_layer(fanout, make_tenant, make_member):
    """Tests that revocation (realtime_control resubscribe -> group_discard) works on this layer."""
    acme = make_tenant("acme")
    alice, bob = make_member(acme, email="alice@acme.test"), make_member(acme, email="bob@acme.test")
    with (
        open_socket(fanout.ws_url, session=session_cookie_for(alice)) as alice_sock,
        open_socket(fanout.ws_url, session=session_cookie_for(bob)) as bob_sock,
    ):
        alice_sock.wait_type("hello")
        bob_sock.wait_type("hello")
        do_remove_member(alice.memberships.get(tenant=acme))
        assert alice_sock.wait_type("membership.changed")["data"]["tenants"] == []
        publish("test.after", {"secret": True}, audience=Audience.tenant(acme.pk), tenant=acme)
        assert bob_sock.wait_type("test.after")["data"] == {"secret": True}
        assert [f for f in alice_sock.drain(0.5) if f["type"] == "test.after"] == []


def test_per_user_events_reach_only_their_user(fanout, make_tenant, make_member):
    """Tests that a user-audience event reaches that user's sockets and nobody else's."""
    acme = make_tenant("acme")
    alice, bob = make_member(acme, email="alice@acme.test"), make_member(acme, email="bob@acme.test")
    with (
        open_socket(fanout.ws_url, session=session_cookie_for(alice)) as first,
        open_socket(fanout.ws_url, session=session_cookie_for(alice)) as second,
        open_socket(fanout.ws_url, session=session_cookie_for(bob)) as bob_sock,
    ):
        for sock in (first, second, bob_sock):
            sock.wait_type("hello")
        publish("test.private", {"to": "alice"}, audience=Audience.user(alice.pk), tenant=acme)
        assert first.wait_type("test.private")["data"] == {"to": "alice"}
        assert second.wait_type("test.private")["data"] == {"to": "alice"}
        assert [f for f in bob_sock.drain(0.5) if f["type"] == "test.private"] == []


def test_setting_selects_the_layer():
    """Tests that CHANNEL_LAYER_BACKEND names a backend the settings know (the bench switches with it)."""
    assert settings.CHANNEL_LAYER_BACKENDS["fanout"] == "realtime.layers.GroupFanoutChannelLayer"
    assert (
        settings.CHANNEL_LAYERS["default"]["BACKEND"]
        == settings.CHANNEL_LAYER_BACKENDS[os.environ.get("CHANNEL_LAYER_BACKEND", "redis")]
    )
