"""Per-stream offsets, epochs and history (realtime.streams), on a real Redis and in memory.

The same behaviour is asked of both stores, as Centrifuge runs its broker tests
against its in-memory and Redis engines: what a resuming client is told must not
depend on where the history lives.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import async_to_sync

from realtime.streams import InMemoryStreamStore, Position, RedisStreamStore, StreamMessage
from tests.support.processes import RedisServer

pytestmark = [pytest.mark.stack]


def _started_redis(port: int | None = None) -> RedisServer:
    """A Redis of the test's own, answering PING (``RedisServer.start`` waits for it)."""
    return RedisServer(port).start()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this module's own: tests flush it freely."""
    server = _started_redis()
    yield server
    server.stop()


class Clock:
    """A clock the test moves: history entries are stamped with it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def make_store(request):
    """Build a store of each kind with the given history limits."""
    made = []

    def make(**options):
        if request.param == "memory":
            return InMemoryStreamStore(**options)
        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushall()
        store = RedisStreamStore([server.url], **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def message(stream: str, n: int, **extra) -> StreamMessage:
    return StreamMessage(stream, f'"type":"test.event","data":{{"n":{n}}}}}', event_type="test.event", **extra)


def test_offsets_increase_per_stream_without_gaps(make_store):
    """Tests that each stream counts its own events from 1, whatever other streams do."""
    store = make_store()
    published = store.publish_many([message(stream, n) for n in range(5) for stream in ("user.1", "tenant.7")])
    by_stream: dict[str, list[int]] = {}
    for publication in published:
        by_stream.setdefault(publication.stream, []).append(publication.offset)
    assert by_stream == {"user.1": [1, 2, 3, 4, 5], "tenant.7": [1, 2, 3, 4, 5]}
    assert store.positions(["user.1", "tenant.7", "user.2"])["user.2"].offset == 0


def test_a_client_behind_gets_exactly_what_it_missed_in_order(make_store):
    """Tests that recovering from a position returns the events after it, once, in order, as the same frames."""
    store = make_store()
    store.publish_many([message("user.1", n) for n in range(3)])
    seen = store.positions(["user.1"])["user.1"]
    store.publish_many([message("user.1", n) for n in range(3, 7)])
    recovery = store.recover("user.1", seen, limit=100)
    assert recovery.recovered
    assert [entry.offset for entry in recovery.entries] == [4, 5, 6, 7]
    frames = [entry.frame("user.1", recovery.top.epoch) for entry in recovery.entries]
    assert frames[0] == (
        f'{{"stream":"user.1","offset":4,"epoch":"{seen.epoch}","type":"test.event","data":{{"n":3}}}}'
    )
    assert store.recover("user.1", recovery.top, limit=100).entries == []


def test_lost_history_changes_the_epoch_and_only_that_stream_is_not_recovered(make_store):
    """Tests that a stream whose history was lost answers recovered=False while the others replay."""
    store = make_store()
    store.publish_many([message(stream, 0) for stream in ("user.1", "tenant.7", "platform")])
    before = store.positions(["user.1", "tenant.7", "platform"])
    store.publish_many([message(stream, 1) for stream in ("user.1", "tenant.7", "platform")])
    store.forget("tenant.7")
    store.publish_many([message("tenant.7", 2)])

    after = store.positions(["user.1", "tenant.7", "platform"])
    assert after["tenant.7"].epoch != before["tenant.7"].epoch
    assert after["user.1"].epoch == before["user.1"].epoch
    lost = store.recover("tenant.7", before["tenant.7"], limit=100)
    assert not lost.recovered and lost.top == after["tenant.7"] and lost.entries == []
    for stream in ("user.1", "platform"):
        kept = store.recover(stream, before[stream], limit=100)
        assert kept.recovered and [entry.offset for entry in kept.entries] == [2]


def test_two_platforms_sharing_one_redis_keep_their_streams_apart(redis_server):
    """Tests that stores with different key prefixes on one Redis never replay each other's history.

    A test run on CI's long-lived Redis starts from a fresh database whose user ids the
    previous run used too; with a prefix of its own it replays none of that run's events.
    """
    redis.Redis.from_url(redis_server.url).flushall()
    earlier, later = (
        RedisStreamStore([redis_server.url], key_prefix=prefix) for prefix in ("run-1:streams", "run-2:streams")
    )
    try:
        earlier.publish_many([message("user.1", n) for n in range(3)])
        later.publish_many([message("user.1", 7)])

        def from_the_start(store: RedisStreamStore):
            return store.recover("user.1", Position(0, store.positions(["user.1"])["user.1"].epoch), limit=100)

        recovery = from_the_start(later)
        assert [entry.frame("user.1", recovery.top.epoch) for entry in recovery.entries] == [
            f'{{"stream":"user.1","offset":1,"epoch":"{recovery.top.epoch}","type":"test.event","data":{{"n":7}}}}'
        ]
        assert [entry.offset for entry in from_the_start(earlier).entries] == [1, 2, 3]
    finally:
        earlier.close()
        later.close()


def test_history_is_bounded_by_size(make_store):
    """Tests that a position older than the kept history is told recovered=False, a recent one is replayed."""
    store = make_store(history_size=5)
    store.publish_many([message("user.1", n) for n in range(10)])
    epoch = store.positions(["user.1"])["user.1"].epoch
    assert not store.recover("user.1", Position(2, epoch), limit=100).recovered
    recent = store.recover("user.1", Position(6, epoch), limit=100)
    assert recent.recovered and [entry.offset for entry in recent.entries] == [7, 8, 9, 10]


def test_history_is_bounded_by_age(make_store):
    """Tests that events older than the history's age limit are not replayed: the client resyncs."""
    clock = Clock()
    store = make_store(history_seconds=3600, clock=clock)
    clock.now -= 7200
    store.publish_many([message("user.1", 0), message("user.1", 1)])
    clock.now += 7200
    store.publish_many([message("user.1", 2)])
    epoch = store.positions(["user.1"])["user.1"].epoch
    assert not store.recover("user.1", Position(0, epoch), limit=100).recovered
    assert [entry.offset for entry in store.recover("user.1", Position(2, epoch), limit=100).entries] == [3]


def test_too_much_to_replay_is_not_recovered(make_store):
    """Tests that a client further behind than the replay limit resyncs instead of getting a partial replay."""
    store = make_store()
    store.publish_many([message("user.1", n) for n in range(20)])
    epoch = store.positions(["user.1"])["user.1"].epoch
    assert not store.recover("user.1", Position(0, epoch), limit=10).recovered
    assert store.recover("user.1", Position(10, epoch), limit=10).recovered


def test_a_position_from_another_epoch_or_the_future_is_not_recovered(make_store):
    """Tests that a forged or stale position never replays: wrong epoch, or an offset past the top."""
    store = make_store()
    store.publish_many([message("user.1", n) for n in range(3)])
    top = store.positions(["user.1"])["user.1"]
    assert not store.recover("user.1", Position(1, "not-the-epoch"), limit=100).recovered
    assert not store.recover("user.1", Position(99, top.epoch), limit=100).recovered


def test_the_same_idempotency_key_publishes_once(make_store):
    """Tests that a resent publish (the outbox relay after a crash) lands once, at the first offset."""
    store = make_store()
    first = store.publish_many([message("user.1", 0, idempotency_key="outbox-1")])[0]
    again = store.publish_many([message("user.1", 0, idempotency_key="outbox-1")])[0]
    assert (again.offset, again.epoch, again.duplicate) == (first.offset, first.epoch, True)
    assert store.positions(["user.1"])["user.1"].offset == 1


def test_concurrent_producer_threads_share_one_gapless_sequence(make_store):
    """Tests that four producers on one stream get every offset exactly once, each in increasing order."""
    store = make_store()
    results: list[list[int]] = [[] for _ in range(4)]

    def produce(index: int) -> None:
        for n in range(50):
            results[index].append(store.publish_many([message("tenant.1", n)])[0].offset)

    threads = [threading.Thread(target=produce, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(offset for offsets in results for offset in offsets) == list(range(1, 201))
    assert all(offsets == sorted(offsets) for offsets in results)


def _produce_in_process(url: str, streams: list[str], count: int, queue) -> None:
    store = RedisStreamStore([url])
    offsets = {stream: [] for stream in streams}
    for n in range(count):
        for publication in store.publish_many([message(stream, n) for stream in streams]):
            offsets[publication.stream].append(publication.offset)
    queue.put(offsets)


def test_producer_processes_share_gapless_sequences_per_stream(redis_server):
    """Tests four OS processes publishing to one shared stream and one stream each: no gap, no duplicate."""
    redis.Redis.from_url(redis_server.url).flushall()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_produce_in_process, args=(redis_server.url, ["tenant.1", f"user.{i}"], 100, queue))
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    shared = sorted(offset for result in results for offset in result["tenant.1"])
    assert shared == list(range(1, 401))
    for result in results:
        assert result["tenant.1"] == sorted(result["tenant.1"])
        (own,) = [stream for stream in result if stream != "tenant.1"]
        assert result[own] == list(range(1, 101))


def test_a_publish_reaches_the_channel_layer_group_with_its_position(redis_server):
    """Tests that the one script both stores the event and queues it for the group's sockets, as the pump reads it."""
    from realtime.layers import PumpedRedisChannelLayer

    redis.Redis.from_url(redis_server.url).flushall()
    layer = PumpedRedisChannelLayer(hosts=[{"address": redis_server.url}])
    store = RedisStreamStore([redis_server.url], layer_prefix=layer.prefix)

    async def receive_published() -> dict:
        channel = await layer.new_channel()
        other = await layer.new_channel()
        await layer.group_add("user.5", channel)
        await layer.group_add("user.6", other)
        try:
            publication = store.publish_many([message("user.5", 0), message("user.6", 0), message("user.5", 1)])[-1]
            first = await asyncio_wait(layer.receive(channel))
            second = await asyncio_wait(layer.receive(channel))
            return {"publication": publication, "first": first, "second": second}
        finally:
            await layer.flush()
            await layer.close_pools()

    got = async_to_sync(receive_published)()
    epoch = got["publication"].epoch
    assert [got["first"]["offset"], got["second"]["offset"]] == [1, 2]
    assert got["second"]["stream"] == "user.5" and got["second"]["epoch"] == epoch
    assert got["second"]["text"] == (
        f'{{"stream":"user.5","offset":2,"epoch":"{epoch}","type":"test.event","data":{{"n":1}}}}'
    )
    store.close()


async def asyncio_wait(awaitable):
    import asyncio

    return await asyncio.wait_for(awaitable, 5)


def test_two_shards_hold_streams_and_a_restarted_shard_changes_only_its_epochs():
    """Tests streams placed on two Redis hosts by the layer's hash; restarting one loses only its streams' history."""
    shards = [_started_redis(), _started_redis()]
    try:
        store = RedisStreamStore([shard.url for shard in shards])
        streams = [f"user.{n}" for n in range(40)]
        placed = {stream: store.shard(stream) for stream in streams}
        assert set(placed.values()) == {0, 1}
        store.publish_many([message(stream, 0) for stream in streams])
        before = store.positions(streams)
        for index, shard in enumerate(shards):
            keys = redis.Redis.from_url(shard.url).keys("streams:*:meta")
            assert {key.decode().split("{")[1].split("}")[0] for key in keys} == {
                stream for stream, where in placed.items() if where == index
            }

        port = shards[1].port
        shards[1].kill()
        shards[1] = _started_redis(port)  # a restart without persistence: its history is gone
        store.close()
        store = RedisStreamStore([shard.url for shard in shards])
        after = store.positions(streams)
        for stream in streams:
            recovery = store.recover(stream, before[stream], limit=100)
            if placed[stream] == 1:
                assert after[stream].epoch != before[stream].epoch and not recovery.recovered
            else:
                assert after[stream] == before[stream] and recovery.recovered
        store.close()
    finally:
        for shard in shards:
            shard.stop()


def test_a_process_hears_its_streams_on_every_shard_in_order_per_stream():
    """Tests the pump on two Redis hosts: events of streams owned by either host reach the process's channel."""
    from realtime.layers import PumpedRedisChannelLayer

    shards = [_started_redis(), _started_redis()]
    try:
        urls = [shard.url for shard in shards]
        layer = PumpedRedisChannelLayer(hosts=[{"address": url} for url in urls])
        store = RedisStreamStore(urls, layer_prefix=layer.prefix)
        streams = [f"user.{n}" for n in range(12)]
        assert {store.shard(stream) for stream in streams} == {0, 1}

        async def receive_everything() -> list[dict]:
            channel = await layer.new_channel()
            for stream in streams:
                await layer.group_add(stream, channel)
            try:
                store.publish_many([message(stream, n) for n in range(3) for stream in streams])
                return [await asyncio_wait(layer.receive(channel)) for _ in range(3 * len(streams))]
            finally:
                await layer.flush()
                await layer.close_pools()

        got = async_to_sync(receive_everything)()
        for stream in streams:
            assert [frame["offset"] for frame in got if frame["stream"] == stream] == [1, 2, 3]
        store.close()
    finally:
        for shard in shards:
            shard.stop()


def test_durable_publishes_are_counted_per_minute_on_every_host_and_ephemeral_ones_not():
    """Tests the platform page's figure: events per whole minute, summed over the shards."""
    shards = [_started_redis(), _started_redis()]
    try:
        clock = Clock()
        store = RedisStreamStore([shard.url for shard in shards], clock=clock)
        clock.now = (int(clock.now) // 60) * 60 - 90  # the middle of the minute before last
        store.publish_many([message(f"user.{n}", 0) for n in range(20)])
        store.publish_many([StreamMessage("user.1", '{"id":null}', durable=False)])
        clock.now += 60
        store.publish_many([message("tenant.1", 0), message("tenant.2", 0)])
        assert store.published_per_minute(3) == [0, 20, 2]  # the last is the minute now running
        store.close()
    finally:
        for shard in shards:
            shard.stop()
