"""Publishing from Celery workers must not leak Redis connections."""

import time

import pytest
import redis
from django.conf import settings

from realtime.models import Event
from realtime.tasks import publish_event
from tests.support.processes import wait_for

pytestmark = [pytest.mark.stack]


def test_a_thousand_publishes_from_a_worker_keep_redis_connections_bounded(live, celery_worker, make_member):
    """Each async_to_sync call gets a fresh event loop; its pool must be closed with it."""
    alice = make_member()
    client = redis.Redis.from_url(settings.REDIS_URL)
    publish_event.delay("test.warmup", {}, audience_kind="user", user_id=alice.pk).get(timeout=30)
    baseline = client.info("clients")["connected_clients"]
    results = [publish_event.delay("test.bulk", {"n": n}, audience_kind="user", user_id=alice.pk) for n in range(1000)]
    peak = baseline
    deadline = time.monotonic() + 120
    while not all(result.ready() for result in results[-50:]) and time.monotonic() < deadline:
        peak = max(peak, client.info("clients")["connected_clients"])
        time.sleep(0.05)  # sampling interval of the measurement, not synchronisation
    wait_for(lambda: Event.objects.filter(type="test.bulk").count() == 1000, timeout=60, message="1000 events stored")
    after = wait_for(
        lambda: (n := client.info("clients")["connected_clients"]) <= baseline + 5 and n,
        timeout=15,
        message="connections back near the baseline",
    )
    assert peak - baseline <= 20, f"connections grew from {baseline} to {peak} during 1000 publishes"
    assert after <= baseline + 5
