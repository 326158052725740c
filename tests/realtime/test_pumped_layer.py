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
    from tests.support.processes import RedisServer, wait_for

    server = RedisServer().start()
    try:
        wait_for(lambda: redis.Redis.from_url(server.url, socket_timeout=1).ping(), timeout=20, message="own redis")
        yield server
    finally:
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
