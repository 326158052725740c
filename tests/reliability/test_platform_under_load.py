"""Issue 15's run, against ``manage.py runplatform`` itself: traffic flowing, its children killed, nobody helping.

200 members of two tenants on sockets that behave as ``realtime.js`` does, 20
notifications a second through the HTTP API (one recipient each), a Celery task
every half second; then, one after the other, ``kill -9`` of the embedded Redis, of
the worker's main process and of daphne, all children of runplatform. No test code
restarts anything. The targets (issue 15, docs/reliability.md):

- each child back by itself within 10 s, Redis on the same port with its data;
- while Redis is away, a socket is told to try again later (1013); no handshake gets a 5xx;
- every socket back within 30 s, and every durable event of its streams received
  once, in order, with no resync (the data survived, so did the epochs);
- every notification the API accepted reaches its recipient's stream once; every
  Celery task the broker took runs; the API answers in under 1 s (p99) throughout
  (but for the moment daphne itself is dead);
- the log grows by less than 5 MB (one line per outage, not a traceback per socket).
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from django.conf import settings

from realtime.streams import Position, RedisStreamStore
from tests.reliability.clients import Fleet
from tests.reliability.harness import make_cast
from tests.reliability.load import ApiPublisher, TaskPublisher
from tests.reliability.running_platform import RunningPlatform
from tests.reliability.verdict import assert_exact_sequences, describe, missed
from tests.support.processes import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.stack, pytest.mark.slow]

PER_TENANT = 100  # 200 sockets, as in the run, beside runplatform's daphne, worker, beat and Redis on two cores
API_INTERVAL = 0.05  # one caller, 20 calls/s offered
TASK_INTERVAL = 0.5
TRY_AGAIN_LATER = 1013
KEEP_GOING_CALLS = 60  # API calls between one fault and the next


@pytest.fixture
def platform(subprocess_env, tmp_path):
    running = RunningPlatform(subprocess_env, tmp_path / "var").start()
    yield running
    running.stop()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_redis_worker_and_daphne_killed_under_load_come_back_by_themselves_and_no_socket_loses_an_event(
    transactional_db, platform, make_tenant, make_member
):
    from notifications.models import Notification

    cast = make_cast(make_tenant, make_member, PER_TENANT)
    store = RedisStreamStore(
        [f"{platform.redis_url}/0"],
        history_size=settings.REALTIME["STREAM_HISTORY_SIZE"],
        history_seconds=settings.REALTIME["STREAM_HISTORY_SECONDS"],
        key_prefix=settings.REALTIME["STREAM_KEY_PREFIX"],
        layer_prefix="",
    )
    recipients = {tenant_pk: [u.pk for u, t in cast.members if t.pk == tenant_pk] for tenant_pk in cast.keys}
    tenant_order = list(cast.keys)  # ApiPublisher takes the keys in this order, one per call

    def one_recipient(n: int) -> dict:
        members = recipients[tenant_order[n % len(tenant_order)]]
        return {"user_ids": [members[(n // 2) % len(members)]], "title": f"load {n}", "category": "load"}

    fleet = Fleet(platform.ws_url, [user for user, _ in cast.members], store).start()
    api = ApiPublisher(platform.http_url, cast.keys, interval=API_INTERVAL, payload=one_recipient)
    tasks = TaskPublisher(platform.broker_url, [t.pk for t in cast.tenants], interval=TASK_INTERVAL)
    client = redis.Redis.from_url(f"{platform.redis_url}/5", socket_timeout=1)
    client.set("platform-under-load-marker", "kept")
    seen: dict[str, float] = {}
    try:
        api.start()
        tasks.start()
        wait_for(lambda: all(c.accepted for c in fleet.clients), timeout=60, message="live events at every socket")
        log_before = platform.log_path.stat().st_size
        port = platform.redis_port

        # 1. Redis, kill -9: back by itself on the same port with its data.
        killed_at = time.time()
        platform.wait_restarted("redis", platform.kill_child("redis"), timeout=10)
        assert wait_for(lambda: _get(client, "platform-under-load-marker"), timeout=10) == b"kept"
        seen["redis back"] = time.time() - killed_at
        # A task being handed to the worker when Redis dies can be lost: kombu's Redis transport
        # pops it (BRPOP) and records it as unacknowledged in a second round trip, so a Redis
        # killed in between has given it away without a record (tests/reliability/test_supervisor.py).
        redis_window = (killed_at - 1.0, killed_at + seen["redis back"])
        assert platform.redis_port == port
        seen["sockets back after redis"] = _all_back(fleet, since=time.time())
        _keep_going(api)

        # 2. The worker's main process, kill -9: restarted, the tasks sent meanwhile run.
        killed_at = time.time()
        platform.wait_restarted("worker", platform.kill_child("worker"), timeout=10)
        seen["worker back"] = time.time() - killed_at
        _keep_going(api)
        api_until_daphne = len(api.results)
        closes_until_daphne = [len(c.closes) for c in fleet.clients]

        # 3. daphne, kill -9: restarted; its sockets come back and catch up.
        killed_at = time.time()
        platform.wait_restarted("daphne", platform.kill_child("daphne"), timeout=10)
        wait_for(platform.healthy, timeout=10, message="daphne serving again")
        seen["daphne back"] = time.time() - killed_at
        seen["sockets back after daphne"] = _all_back(fleet, since=time.time())
        daphne_down = (killed_at, killed_at + seen["daphne back"])
        _keep_going(api)
    finally:
        api.stop()
        tasks.stop()
    figures = assert_exact_sequences(fleet, lost_ok=False)
    fleet.stop()
    log_growth = platform.log_path.stat().st_size - log_before

    # While Redis and the worker were away, every socket the outage ended was told to try
    # again later (1013): no handshake got a 5xx, none was dropped without a word.
    refusals = [x for c, mark in zip(fleet.clients, closes_until_daphne, strict=True) for x in c.closes[:mark]]
    assert set(refusals) <= {TRY_AGAIN_LATER}, _tally(refusals)
    assert not [x for c in fleet.clients for x in c.closes if str(x).startswith("HTTP 5")]
    # The API: while daphne ran, it answered every call in under 1 s at p99 and stored what it accepted.
    served = api.results[:api_until_daphne] + [r for r in api.results[api_until_daphne:] if r[0] > daphne_down[1]]
    statuses = {r[1] for r in served}
    latencies = [r[2] for r in served]
    assert statuses == {201}, [r for r in served if r[1] != 201][:5]
    assert p99(latencies) < 1.0, sorted(latencies)[-5:]
    for notification in Notification.objects.filter(category="load"):
        titles = [e["data"]["notification"]["title"] for e in stream_events(store, f"user.{notification.recipient_id}")]
        assert titles.count(notification.title) == 1, (notification.recipient_id, notification.title)
    ran = {
        event["data"]["n"]
        for tenant in cast.tenants
        for event in stream_events(store, f"tenant.{tenant.pk}")
        if event["type"] == "load.tick"
    }
    # Every task that reached the broker ran (at least once: a task is acknowledged late),
    # except one sent in the second before Redis was killed (being handed over, above).
    at_risk = {n for n, at in tasks.sent_at.items() if redis_window[0] <= at <= redis_window[1]}
    assert len(at_risk - ran) <= 1, sorted(at_risk - ran)
    assert set(tasks.sent_numbers) - at_risk <= ran, sorted(set(tasks.sent_numbers) - at_risk - ran)[:10]
    lost_at_kill = len(at_risk - ran)
    assert log_growth < 5 * 2**20

    print(
        "\nrunplatform under load, kill -9 of Redis, the worker, daphne: "
        + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in seen.items())
        + f"; refusals while Redis was away {_tally(refusals)}; API {len(api.results)} calls, {len(served)} while"
        f" daphne ran, all 201, p99 {p99(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms;"
        f" tasks sent {len(tasks.sent_numbers)}, not sent {tasks.failed}, lost in the second before Redis's"
        f" kill {lost_at_kill} of {len(at_risk)}; log +{log_growth / 1024:.0f} KiB; {figures}"
    )
    assert seen["redis back"] < 10 and seen["worker back"] < 10 and seen["daphne back"] < 10
    assert seen["sockets back after redis"] < 30 and seen["sockets back after daphne"] < 30
    assert figures["reconnects"] > 0, "the outage reached the sockets"


def _all_back(fleet: Fleet, since: float) -> float:
    """Wait until every socket is open again; return how long it took from ``since``."""
    try:
        wait_for(lambda: all(c.connected for c in fleet.clients), timeout=30, message="every socket back")
    except TimeoutError:
        print(describe(fleet))
        raise
    return time.time() - since


def _keep_going(api: ApiPublisher) -> None:
    """Let the traffic run on for KEEP_GOING_CALLS more API calls before the next fault."""
    until = len(api.results) + KEEP_GOING_CALLS
    wait_for(lambda: len(api.results) >= until, timeout=60, message="API traffic between faults")


def stream_events(store: RedisStreamStore, stream: str) -> list[dict]:
    """Every event in ``stream``'s history (its current epoch), decoded."""
    top = store.positions([stream])[stream]
    (entries,) = missed(store, {stream: Position(0, top.epoch)}).values()
    return [json.loads("{" + entry.frame_rest) for entry in entries]


def _get(client: redis.Redis, key: str) -> bytes | None:
    try:
        return client.get(key)
    except redis.ConnectionError:
        return None


def _tally(values: list) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(str(value) for value in values))
