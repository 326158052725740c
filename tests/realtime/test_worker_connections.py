"""Publishing from Celery workers must not leak Redis connections."""

import time

import pytest
import redis
from django.conf import settings

from realtime.audience import user_group
from realtime.streams import stream_store
from realtime.tasks import publish_event
from tests.support.processes import wait_for

pytestmark = [pytest.mark.stack]


def test_a_thousand_publishes_from_a_worker_keep_redis_connections_bounded(live, celery_worker, make_member):
    """Tests that a worker publishes over its kept connections: 1000 tasks do not open one each."""
    alice = make_member()
    client = redis.Redis.from_url(settings.REDIS_URL)
    stream = user_group(alice.pk)
    start = stream_store().positions([stream])[stream].offset
    publish_event.delay("test.warmup", {}, audience_kind="user", user_id=alice.pk)
    wait_for(lambda: stream_store().positions([stream])[stream].offset == start + 1, timeout=30, message="warm-up")
    baseline = client.info("clients")["connected_clients"]
    for n in range(1000):
        publish_event.delay("test.bulk", {"n": n}, audience_kind="user", user_id=alice.pk)
    peak = baseline
    deadline = time.monotonic() + 120
    while stream_store().positions([stream])[stream].offset < start + 1001 and time.monotonic() < deadline:
        peak = max(peak, client.info("clients")["connected_clients"])
        time.sleep(0.05)  # sampling interval of the measurement, not synchronisation
    wait_for(
        lambda: stream_store().positions([stream])[stream].offset == start + 1001,
        timeout=60,
        message="1000 events in the stream",
    )
    after = wait_for(
        lambda: (n := client.info("clients")["connected_clients"]) <= baseline + 5 and n,
        timeout=15,
        message="connections back near the baseline",
    )
    assert peak - baseline <= 20, f"connections grew from {baseline} to {peak} during 1000 publishes"
    assert after <= baseline + 5


def test_open_sockets_do_not_each_hold_a_redis_connection(live, make_tenant, make_member):
    """Tests 40 sockets on the real server: Redis sees a few more clients, not one per socket.

    Each consumer runs in a context of its own, and Django's ``cache`` is per context: the
    handshake's rate-limit counter once gave every open socket a Redis connection of its own.
    """
    acme = make_tenant("acme")
    members = [make_member(acme, email=f"m{n}@acme.test") for n in range(40)]
    client = redis.Redis.from_url(settings.REDIS_URL)
    with live.socket(members[0]) as first:  # warm-up: the server's pools exist
        first.wait_type("hello")
        baseline = client.info("clients")["connected_clients"]
        sockets = [live.socket(member) for member in members[1:]]
        try:
            for sock in sockets:
                sock.wait_type("hello")
            grown = client.info("clients")["connected_clients"] - baseline
        finally:
            for sock in sockets:
                sock.close()
    assert grown <= 10, f"39 more sockets opened {grown} more Redis connections"
