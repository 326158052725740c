"""The Prometheus endpoints: what an operator sees after a few sockets, events, jobs and API calls.

The worker's own metrics port (multiprocess mode over its pool) is checked in
``test_scale_out``, which already runs a worker.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from realtime.audience import Audience
from realtime.events import publish
from tests.support.processes import wait_for
from tests.support.ws import open_socket, session_cookie_for

TOKEN = "metrics-token-for-tests-0123456789"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if it is absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return item.value
    return None


def scrape(url: str, token: str | None = TOKEN) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def test_metrics_need_the_bearer_token_and_are_off_without_one(client, db, settings):
    """Tests that the endpoint is disabled without a token and refuses a wrong one."""
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert "liveplatform_open_sockets" in response.content.decode()


def test_api_requests_and_jobs_by_state_are_counted(client, db, settings, make_tenant, make_member):
    """Tests API requests by status (middleware) and jobs by state and duration (database)."""
    from workers.models import Job, JobState

    settings.METRICS_TOKEN = TOKEN
    acme = make_tenant("acme")
    owner = make_member(acme, email="owner@acme.test")
    now = timezone.now()
    Job.objects.create(tenant=acme, owner=owner, kind="ops.export")
    Job.objects.create(tenant=acme, owner=owner, kind="ops.export", state=JobState.RUNNING, started_at=now)
    for seconds in (2, 4):
        Job.objects.create(
            tenant=acme,
            owner=owner,
            kind="ops.export",
            state=JobState.SUCCEEDED,
            started_at=now - timedelta(seconds=seconds + 1),
            finished_at=now - timedelta(seconds=1),
        )
    before = REGISTRY.get_sample_value("liveplatform_api_requests_total", {"method": "POST", "status": "401"}) or 0
    assert client.post("/api/v1/notifications", {}, content_type="application/json").status_code == 401

    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert sample(text, "liveplatform_api_requests_total", method="POST", status="401") == before + 1
    assert sample(text, "liveplatform_jobs", state="queued", kind="ops.export") == 1
    assert sample(text, "liveplatform_jobs", state="running", kind="ops.export") == 1
    assert sample(text, "liveplatform_jobs", state="succeeded", kind="ops.export") == 2
    assert sample(text, "liveplatform_job_recent_finished", kind="ops.export", state="succeeded") == 2
    assert sample(text, "liveplatform_job_recent_duration_avg_seconds", kind="ops.export", state="succeeded") == 3
    assert sample(text, "liveplatform_job_recent_duration_max_seconds", kind="ops.export", state="succeeded") == 4


def test_group_messages_dropped_over_capacity_are_counted(db, settings):
    """Tests that channels-redis's silent group_send drops reach a counter."""
    from channels_redis.core import RedisChannelLayer

    # A prefix of its own: flush() below deletes only these keys, never the session's.
    layer = RedisChannelLayer(hosts=[settings.CHANNEL_LAYER_REDIS_URLS[0]], prefix="ops-capacity-test", capacity=2)
    before = REGISTRY.get_sample_value("liveplatform_channel_layer_dropped_total") or 0

    async def overfill() -> None:
        channel = await layer.new_channel()
        await layer.group_add("ops-capacity", channel)
        for n in range(5):  # nobody reads: 2 fit, 3 are dropped
            await layer.group_send("ops-capacity", {"type": "x", "n": n})
        await layer.flush()

    async_to_sync(overfill)()
    assert REGISTRY.get_sample_value("liveplatform_channel_layer_dropped_total") == before + 3


def test_the_fanout_layer_counts_its_drops_too():
    """Tests the opt-in fan-out layer (realtime.layers) feeds the same counter when a socket lags."""
    import asyncio

    from realtime.layers import GroupFanoutLoopLayer

    layer = object.__new__(GroupFanoutLoopLayer)  # only the queueing part is under test
    layer.capacity, layer.dropped, layer.attached = 1, 0, {}
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)
    before = REGISTRY.get_sample_value("liveplatform_channel_layer_dropped_total") or 0
    for n in range(3):
        layer.deliver("lagging-socket", queue, {"n": n})
    assert queue.qsize() == 1 and layer.dropped == 2
    assert REGISTRY.get_sample_value("liveplatform_channel_layer_dropped_total") == before + 2


@pytest.mark.stack
def test_web_metrics_after_sockets_events_replay_and_resync(transactional_db, ops_env, started, make_member):
    """Tests a daphne's /metrics: open sockets, connects, deliveries, latency, replay, resync."""
    alice = make_member(email="alice@acme.test")
    (server,) = started.daphnes({**ops_env, "METRICS_TOKEN": TOKEN})
    cookie = session_cookie_for(alice)
    first = started.add(open_socket(server.ws_url, session=cookie))
    first.wait_type("hello")
    positions = first.positions()  # each stream's position before the three events
    for n in range(3):
        publish("ops.metric", {"n": n}, audience=Audience.user(alice.pk))
    for _ in range(3):
        first.wait_type("ops.metric")

    replaying = started.add(open_socket(server.ws_url, session=cookie, positions=positions))
    assert [f["data"]["n"] for f in (replaying.wait_type("ops.metric") for _ in range(3))] == [0, 1, 2]
    # A position in an epoch the user stream never had (its history lost): that stream resyncs.
    lost = f"user.{alice.pk}:1:0badc0de"
    resyncing = started.add(open_socket(server.ws_url, session=cookie, positions=lost))
    assert resyncing.wait_type("resync")["data"]["stream"] == f"user.{alice.pk}"
    resyncing.close()

    url = f"{server.http_url}/metrics"

    def settled() -> str | None:
        text = scrape(url)
        return text if sample(text, "liveplatform_socket_disconnects_total", route="browser") == 1 else None

    text = wait_for(settled, timeout=10, message="the resyncing socket's disconnect")
    assert sample(text, "liveplatform_open_sockets", route="browser") == 2
    assert sample(text, "liveplatform_socket_connects_total", route="browser") == 3
    assert sample(text, "liveplatform_events_delivered_total", type="ops.metric") == 3
    assert sample(text, "liveplatform_publish_to_send_seconds_count") >= 3
    assert sample(text, "liveplatform_events_replayed_total") == 3
    assert sample(text, "liveplatform_resyncs_total") == 1
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(url, token="wrong")
    assert refused.value.code == 401
