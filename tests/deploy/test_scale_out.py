"""Scale-out on one machine: two web processes (uvicorn and daphne) behind nginx, two Redis shards, a worker.

Everything as in production but on 127.0.0.1: the shipped deploy/nginx.conf in front
(rendered with loopback upstreams), CHANNEL_LAYER_REDIS_URLS listing both Redis
servers, JSON logs. Clients connected through nginx to either daphne receive events
published by the other daphne's HTTP API and by the worker; each stream lives on the
shard that holds its group; killing one daphne moves its clients to the other through
nginx, and the per-stream replay fills the gap.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request

import pytest
import redis
from django.conf import settings

from accounts.api_keys import do_create_api_key
from liveplatform.embedded_redis import free_loopback_port
from liveplatform.request_id import reset_request_id, set_request_id
from realtime.streams import RedisStreamStore
from realtime.tasks import publish_event
from tests.deploy.stack import EntrypointUvicorn, IsolatedCeleryWorker, Nginx
from tests.support.processes import Daphne, wait_for
from tests.support.ws import LiveSocket, open_socket, session_cookie_for

pytestmark = [pytest.mark.stack, pytest.mark.fault, pytest.mark.slow]


def log_lines(process) -> list[dict]:
    """The JSON log lines a process has written so far (other output is skipped)."""
    lines = []
    for raw in process.output().splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


def server_of(user, servers: list[Daphne]) -> Daphne:
    """The daphne whose log shows ``user``'s latest socket connect."""

    def find() -> Daphne | None:
        for server in servers:
            if any(line.get("socket") == "connect" and line.get("user_id") == user.pk for line in log_lines(server)):
                return server
        return None

    return wait_for(find, timeout=15, message=f"the connect line of user {user.pk}")


def post_notification(server: Daphne, api_key: str, payload: dict, request_id: str) -> dict:
    """POST /api/v1/notifications straight to one daphne's HTTP side."""
    request = urllib.request.Request(
        f"{server.http_url}/api/v1/notifications",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "X-Request-ID": request_id},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        assert response.headers["X-Request-ID"] == request_id
        return json.loads(response.read())


def titled(title: str):
    return lambda frame: frame["type"] == "notification.created" and title in json.dumps(frame["data"])


def published_with(process, request_id: str) -> bool:
    """True once ``process`` logged a publish under ``request_id``."""
    return any(
        line.get("request_id") == request_id and line.get("message", "").startswith("published")
        for line in log_lines(process)
    )


def test_two_daphnes_behind_nginx_share_events_and_survive_losing_one(
    transactional_db, ops_env, started, make_tenant, make_member
):
    """Tests cross-process delivery (HTTP API and worker), tenant isolation, and failover with replay."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    acme_members = [make_member(acme, email=f"{name}@acme.test") for name in ("alice", "bob", "carol", "dan")]
    gina = make_member(globex, email="gina@globex.test")
    _, api_key = do_create_api_key(acme, "scale-out test")

    shard_a, shard_b = started.redis(), started.redis()
    env = {
        **ops_env,
        "REDIS_URL": shard_a.url,
        "CHANNEL_LAYER_REDIS_URLS": f"{shard_a.url}/0,{shard_b.url}/0",
        "LOG_FORMAT": "json",
    }
    metrics_port = free_loopback_port()
    worker_env = {
        **env,
        # The worker serves its pool processes' metrics (multiprocess mode) on its own port.
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="prom-", dir=settings.VAR_DIR),
        "CELERY_METRICS_PORT": str(metrics_port),
        "CELERY_METRICS_ADDRESS": "127.0.0.1",
    }
    worker = started.add(IsolatedCeleryWorker(worker_env, broker_url=f"{shard_a.url}/1", concurrency=2))
    worker.start(wait=False)  # boots while the daphnes do
    # One web process of each kind: uvicorn (the image's default) and daphne.
    servers = [started.add(EntrypointUvicorn(env).start()), *started.daphnes(env, count=1)]
    nginx = started.add(Nginx([f"127.0.0.1:{server.port}" for server in servers])).start()
    worker.wait_ready()

    # ------------------------------------------------------------------ connect
    sockets: dict[int, LiveSocket] = {}
    for user in [*acme_members, gina]:
        sockets[user.pk] = started.add(open_socket(nginx.ws_url, session=session_cookie_for(user)))
        sockets[user.pk].wait_type("hello")
    where = {user.pk: server_of(user, servers) for user in [*acme_members, gina]}
    assert {where[user.pk].port for user in acme_members} == {server.port for server in servers}, (
        "nginx should have spread the sockets over both daphnes"
    )
    alice = acme_members[0]
    home, other = where[alice.pk], next(server for server in servers if server is not where[alice.pk])

    # ------------------------------------- the HTTP API of each daphne -> everyone
    for number, server in enumerate(servers):
        title = f"tenant-wide from daphne {number}"
        post_notification(server, api_key, {"tenant": True, "title": title}, request_id=f"ops-scale-http-{number}")
        for user in acme_members:
            sockets[user.pk].wait_for(titled(title), timeout=20)
        assert wait_for(lambda s=server, n=number: published_with(s, f"ops-scale-http-{n}"), timeout=10)

    # A per-user event published by the daphne alice is NOT connected to.
    post_notification(other, api_key, {"user_ids": [alice.pk], "title": "just for alice"}, request_id="ops-scale-user")
    sockets[alice.pk].wait_for(titled("just for alice"), timeout=20)

    # --------------------------------------------- the worker -> tenant and user
    token = set_request_id("ops-scale-worker-1")
    try:
        worker.send(publish_event, "ops.tenant_news", {"n": 1}, audience_kind="tenant", tenant_id=acme.pk)
        worker.send(publish_event, "ops.user_news", {"n": 2}, audience_kind="user", user_id=gina.pk)
    finally:
        reset_request_id(token)
    for user in acme_members:
        frame = sockets[user.pk].wait_type("ops.tenant_news", timeout=20)
        assert frame["tenant"] == "acme" and frame["stream"] == f"tenant.{acme.pk}" and frame["offset"] >= 1
    assert sockets[gina.pk].wait_type("ops.user_news", timeout=20)["data"] == {"n": 2}
    # The request id travelled from this process into the worker, through Celery's headers.
    assert wait_for(lambda: published_with(worker, "ops-scale-worker-1"), timeout=10)

    # Tenants stay apart across processes: gina heard nothing of acme's, bob nothing of alice's.
    gina_types = {frame["type"] for frame in sockets[gina.pk].drain(0.5)} | {f["type"] for f in sockets[gina.pk].frames}
    assert not gina_types & {"notification.created", "ops.tenant_news"}
    bob = acme_members[1]
    assert not any(titled("just for alice")(frame) for frame in sockets[bob.pk].frames)

    # Both daphnes hash each group to the same shard: its key lives there, and so does its
    # stream (offset, epoch and history) under the same hash.
    from channels_redis.core import RedisChannelLayer

    hosts = [f"{shard_a.url}/0", f"{shard_b.url}/0"]
    layer = RedisChannelLayer(hosts=hosts)
    streams = RedisStreamStore(hosts, layer_prefix="", key_prefix=settings.REALTIME["STREAM_KEY_PREFIX"])  # read only
    started.add(streams)
    shards = [redis.Redis.from_url(host) for host in hosts]
    for group in [f"tenant.{acme.pk}", f"user.{alice.pk}", f"user.{gina.pk}", f"tenant.{globex.pk}"]:
        assert shards[layer.consistent_hash(group)].exists(f"asgi:group:{group}"), group
        assert streams.shard(group) == layer.consistent_hash(group), group
    for stream in [f"tenant.{acme.pk}", f"user.{gina.pk}"]:  # published to above
        assert shards[streams.shard(stream)].exists(streams._history_key(stream)), stream
        assert not shards[1 - streams.shard(stream)].exists(streams._history_key(stream)), stream
    # Streams live on both shards: the worker publishes to one user stream the hash places on
    # each, and each stream's offset, epoch and history are on its own shard only.
    placed = {streams.shard(f"user.{n}"): n for n in range(10_000, 10_100)}
    assert set(placed) == {0, 1}
    for user_id in placed.values():
        worker.send(publish_event, "ops.placed", {"user": user_id}, audience_kind="user", user_id=user_id)
    for index, user_id in placed.items():
        key = streams._history_key(f"user.{user_id}")
        assert wait_for(lambda k=key, i=index: shards[i].exists(k), timeout=20), key
        assert not shards[1 - index].exists(key), key

    # ------------------------------- lose alice's daphne: kill -9, then catch up
    acme_stream = f"tenant.{acme.pk}"
    alice_positions = sockets[alice.pk].positions()  # what her page holds when her daphne dies
    last_seen = max(frame["offset"] for frame in sockets[alice.pk].durable() if frame["stream"] == acme_stream)
    on_home = [user for user in acme_members if where[user.pk] is home]
    on_other = [user for user in acme_members if where[user.pk] is other]
    home.kill()  # kill -9 of its process group: a crash, not a shutdown
    for user in on_home:
        assert sockets[user.pk].closed_code(timeout=10) in (None, 1006)

    token = set_request_id("ops-scale-worker-2")
    try:
        for n in range(3):
            worker.send(publish_event, "ops.while_away", {"n": n}, audience_kind="tenant", tenant_id=acme.pk)
    finally:
        reset_request_id(token)
    # The worker runs two tasks at once, so which of the three is published first is a race;
    # every socket must see them in the stream's offset order (= publish order), consecutive,
    # the same order for everyone.
    live_orders = []
    for user in on_other:  # still connected: they get the events live
        live = [sockets[user.pk].wait_type("ops.while_away", timeout=20) for _ in range(3)]
        assert sorted(frame["data"]["n"] for frame in live) == [0, 1, 2]
        assert {frame["stream"] for frame in live} == {acme_stream}
        live_orders.append([(frame["offset"], frame["epoch"], frame["data"]["n"]) for frame in live])
    for order in live_orders:
        offsets = [offset for offset, _, _ in order]
        assert offsets == list(range(offsets[0], offsets[0] + 3)), live_orders
    assert len({tuple(order) for order in live_orders}) <= 1, live_orders
    # The worker's metrics port sums what its pool processes published, by type. The counter
    # is bumped just after the frame is handed to the layer, so a browser can see the event a
    # moment before the scrape does: wait for it with a deadline.
    expected = [
        f'liveplatform_events_published_total{{type="{event_type}"}} {count:.1f}'
        for event_type, count in (("ops.tenant_news", 1), ("ops.user_news", 1), ("ops.while_away", 3))
    ]

    def worker_metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            return response.read().decode()

    wait_for(lambda: all(line in worker_metrics() for line in expected), timeout=10, message="the worker's counters")

    # Alice reconnects through nginx, which can only send her to the survivor, and replays.
    back = started.add(open_socket(nginx.ws_url, session=session_cookie_for(alice), positions=alice_positions))
    back.wait_type("hello")
    missed = [back.wait_type("ops.while_away", timeout=20) for _ in range(3)]
    assert sorted(frame["data"]["n"] for frame in missed) == [0, 1, 2]
    replayed = [(frame["offset"], frame["epoch"], frame["data"]["n"]) for frame in missed]
    # Exactly what she missed of her tenant's stream: the next offsets after hers, in order.
    assert [frame["offset"] for frame in back.durable() if frame["stream"] == acme_stream] == list(
        range(last_seen + 1, last_seen + 4)
    )
    assert not live_orders or replayed == live_orders[0], "replay and live agree"
    assert not [frame for frame in back.drain(0.5) if frame["type"] == "ops.while_away"], "no duplicates"
    reconnects = [
        line for line in log_lines(other) if line.get("socket") == "connect" and line.get("user_id") == alice.pk
    ]
    assert reconnects, "alice's new socket is served by the surviving daphne"

    # And she is live again on the survivor: the HTTP API of the survivor reaches her.
    post_notification(other, api_key, {"user_ids": [alice.pk], "title": "welcome back"}, request_id="ops-scale-back")
    back.wait_for(titled("welcome back"), timeout=20)
