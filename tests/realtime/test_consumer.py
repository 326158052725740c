"""Unit tests of the socket consumer with Channels' WebsocketCommunicator (in-memory layer)."""

import json
import logging

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from realtime.audience import Audience
from realtime.events import publish

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(user=None, path="/ws/", origin=b"http://127.0.0.1:8000", query=""):
    from channels.auth import AuthMiddlewareStack  # noqa: F401 - imported for side effects in routing

    from liveplatform.asgi import application

    headers = [(b"host", b"127.0.0.1:8000")]
    if origin:
        headers.append((b"origin", origin))
    comm = WebsocketCommunicator(application, f"{path}{query}", headers=headers)
    if user is not None:
        comm.scope["user"] = user
    return comm


PROTOCOL_FRAMES = {"hello", "error", "ping", "pong", "resync", "membership.changed"}


async def receive(comm, timeout=3):
    """The next protocol frame or durable event, skipping the apps' state snapshots after hello."""
    while True:
        frame = json.loads(await comm.receive_from(timeout=timeout))
        if "stream" in frame or frame["type"] in PROTOCOL_FRAMES:
            return frame


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def test_anonymous_handshake_is_refused(inmemory_channel_layer):
    """Tests that a socket without a logged-in user is refused at the handshake."""

    async def run():
        comm = communicator()
        connected, _ = await comm.connect()
        assert not connected

    async_to_sync(run)()


def test_foreign_origin_is_refused(inmemory_channel_layer, make_member, acme):
    """Tests that a foreign Origin is refused even with a valid session."""
    from tests.support.ws import session_cookie_for

    user = make_member(acme)
    cookie = session_cookie_for(user)

    async def run():
        from liveplatform.asgi import application

        comm = WebsocketCommunicator(
            application,
            "/ws/",
            headers=[
                (b"host", b"127.0.0.1"),
                (b"origin", b"http://evil.example"),
                (b"cookie", f"sessionid={cookie}".encode()),
            ],
        )
        connected, _ = await comm.connect()
        assert not connected

    async_to_sync(run)()


def _connect_as(user):
    """Authenticate through the real AuthMiddlewareStack with a session cookie."""
    from liveplatform.asgi import application
    from tests.support.ws import session_cookie_for

    cookie = session_cookie_for(user)
    return lambda query="": WebsocketCommunicator(
        application,
        f"/ws/{query}",
        headers=[
            (b"host", b"127.0.0.1:8000"),
            (b"origin", b"http://127.0.0.1:8000"),
            (b"cookie", f"sessionid={cookie}".encode()),
        ],
    )


def test_hello_lists_the_users_tenants_and_events_reach_the_right_groups(
    inmemory_channel_layer, make_member, acme, make_tenant
):
    """Tests that a member hears their tenant's and their own events, not another tenant's."""
    globex = make_tenant("globex")
    alice = make_member(acme, email="alice@acme.test")
    make_connection = _connect_as(alice)

    async def run():
        comm = make_connection()
        connected, _ = await comm.connect()
        assert connected
        hello = await receive(comm)
        assert hello["type"] == "hello"
        assert [t["slug"] for t in hello["data"]["tenants"]] == ["acme"]
        from channels.db import database_sync_to_async

        def send_three():
            publish("test.tenant", {"n": 1}, audience=Audience.tenant(acme.pk), tenant=acme)
            publish("test.other", {"n": 2}, audience=Audience.tenant(globex.pk), tenant=globex)
            publish("test.user", {"n": 3}, audience=Audience.user(alice.pk))

        await database_sync_to_async(send_three)()
        first, second = await receive(comm), await receive(comm)
        assert [first["type"], second["type"]] == ["test.tenant", "test.user"]
        assert (
            first["tenant"] == "acme"
            and first["stream"] == f"tenant.{acme.pk}"
            and second["stream"] == f"user.{alice.pk}"
        )
        await comm.disconnect()

    async_to_sync(run)()


@pytest.mark.parametrize(
    "frame, code",
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"no": "type"}', "invalid_frame"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"type": "resume", "positions": "x"}', "invalid_frame"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_usable(inmemory_channel_layer, make_member, acme, frame, code):
    """Tests that malformed input gets a clear error frame and nothing breaks."""
    make_connection = _connect_as(make_member(acme))

    async def run():
        comm = make_connection()
        assert (await comm.connect())[0]
        await receive(comm)  # hello
        await comm.send_to(text_data=frame)
        error = await receive(comm)
        assert error["type"] == "error" and error["data"]["code"] == code
        await comm.send_to(text_data='{"type": "ping"}')
        assert (await receive(comm))["type"] == "pong"
        await comm.disconnect()

    async_to_sync(run)()


def test_binary_frames_get_an_error(inmemory_channel_layer, make_member, acme):
    make_connection = _connect_as(make_member(acme))

    async def run():
        comm = make_connection()
        assert (await comm.connect())[0]
        await receive(comm)
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await receive(comm))["data"]["code"] == "binary_not_supported"
        await comm.disconnect()

    async_to_sync(run)()


def test_frame_over_64_kib_closes_with_1009(inmemory_channel_layer, make_member, acme):
    """Tests that an oversized frame gets an error frame and close code 1009."""
    make_connection = _connect_as(make_member(acme))

    async def run():
        comm = make_connection()
        assert (await comm.connect())[0]
        await receive(comm)
        await comm.send_to(text_data='{"type":"ping","pad":"' + "x" * (65 * 1024) + '"}')
        error = await receive(comm)
        assert error["data"]["code"] == "frame_too_big"
        closed = await comm.receive_output(timeout=2)
        assert closed == {"type": "websocket.close", "code": 1009}

    async_to_sync(run)()


def test_flood_of_frames_is_rate_limited_then_closed(inmemory_channel_layer, make_member, acme, settings):
    """Tests the per-socket frame rate limit: errors first, then close code 4429."""
    settings.REALTIME = {**settings.REALTIME, "CLIENT_FRAMES_PER_SECOND": 1.0, "CLIENT_FRAMES_BURST": 3}
    make_connection = _connect_as(make_member(acme))

    async def run():
        comm = make_connection()
        assert (await comm.connect())[0]
        await receive(comm)
        for _ in range(3):
            await comm.send_to(text_data='{"type":"ping"}')
            assert (await receive(comm))["type"] == "pong"
        await comm.send_to(text_data='{"type":"ping"}')
        assert (await receive(comm))["data"]["code"] == "rate_limited"
        outputs = []
        for _ in range(30):
            await comm.send_to(text_data='{"type":"ping"}')
        while True:
            message = await comm.receive_output(timeout=2)
            outputs.append(message)
            if message["type"] == "websocket.close":
                break
        assert outputs[-1]["code"] == 4429

    async_to_sync(run)()


@pytest.mark.parametrize(
    "refusal",
    [
        RuntimeError("Unexpected ASGI message 'websocket.send', after sending 'websocket.close'"),  # --ws websockets
        ConnectionResetError("client disconnected"),  # the default --ws: ClientDisconnected, an OSError
    ],
    ids=["runtime-error", "os-error"],
)
@pytest.mark.parametrize("first_to_send", ["event", "heartbeat"])
def test_a_send_the_server_refuses_ends_the_socket_and_it_leaves_its_groups(
    inmemory_channel_layer, make_member, settings, acme, caplog, refusal, first_to_send
):
    """Tests uvicorn's behaviour just after a client closes: a send raises before the disconnect arrives.

    The consumer must end as if disconnected, without an error: leave its groups (or group
    sends keep going to a dead channel) and the heartbeat (or it is pinged forever, logging
    a failure each time: thousands of tracebacks in the 3,000-socket reconnect storm).
    """
    import asyncio

    from channels.layers import get_channel_layer

    from realtime.consumers import RealtimeConsumer
    from realtime.hub import hub

    settings.REALTIME = {**settings.REALTIME, "HEARTBEAT_SECONDS": 0.05}
    alice = make_member(acme, email="alice@acme.test")
    app = RealtimeConsumer.as_asgi()

    async def run():
        incoming: asyncio.Queue = asyncio.Queue()
        sent: list[dict] = []
        closed = asyncio.Event()

        async def send(message):
            if closed.is_set():
                raise refusal
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws/", "query_string": b"", "headers": [], "user": alice}
        consumer = asyncio.ensure_future(app(scope, incoming.get, send))
        await incoming.put({"type": "websocket.connect"})
        deadline = asyncio.get_running_loop().time() + 5
        while not any('"hello"' in m.get("text", "") for m in sent):
            assert asyncio.get_running_loop().time() < deadline, "no hello"
            await asyncio.sleep(0.01)
        layer = get_channel_layer()
        assert any(layer.groups.values())
        closed.set()  # the client has gone; the server has not told the consumer yet
        if first_to_send == "event":
            await layer.group_send(f"user.{alice.pk}", {"type": "realtime.event", "id": None, "text": "{}"})
        else:
            # The next beat's ping is refused (quietly); then the server's disconnect arrives.
            beats = hub().beats
            deadline = asyncio.get_running_loop().time() + 5
            while hub().beats <= beats:
                assert asyncio.get_running_loop().time() < deadline, "no beat"
                await asyncio.sleep(0.01)
            await incoming.put({"type": "websocket.disconnect", "code": 1006})
        done, _ = await asyncio.wait([consumer], timeout=5)
        assert done, "the consumer went on after the client had gone"
        assert consumer.exception() is None
        assert not any(layer.groups.values()), layer.groups
        assert not hub().sockets and hub().task is None, "the heartbeat outlived the socket"

    async_to_sync(run)()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
