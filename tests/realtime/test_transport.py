"""Prepared frames under uvicorn (realtime.transport): what clients receive, and slow clients.

The session's web server runs ``BroadcastWebSocketProtocol``, as deployed, so every
real-stack test goes through it; these tests look at what is particular to it.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from realtime.audience import Audience
from realtime.events import make_event, publish, publish_many
from realtime.services import page_positions
from realtime.streams import decode_positions
from realtime.transport import text_frame
from tests.support.processes import Uvicorn, wait_for
from tests.support.ws import open_socket, positions_token, session_cookie_for


def read_frame(data: bytes) -> Frame:
    """Parse one server frame as a WebSocket client does (unmasked, complete)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_prepared_frame_is_the_text_frame_a_client_reads(length):
    """Tests the three length encodings of RFC 6455 at their edges, with multi-byte characters."""
    text = ("é" * length)[: length // 2] + "x" * (length - 2 * (length // 2))
    frame = read_frame(text_frame(text))
    assert (frame.opcode, frame.fin, frame.rsv1) == (Opcode.TEXT, True, False)
    assert frame.data.decode() == text


@pytest.mark.stack
def test_a_tenant_broadcast_reaches_each_member_socket_once_in_order_as_replay_would_send_it(
    live, make_tenant, make_member
):
    """Tests 12 sockets of two tenants (one user with three tabs): every member's socket, nobody else's."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    acme_users = [make_member(acme, email=f"a{n}@acme.test") for n in range(4)]
    globex_users = [make_member(globex, email=f"g{n}@globex.test") for n in range(5)]
    cookies = {user.pk: session_cookie_for(user) for user in acme_users + globex_users}
    tabs = [acme_users[0]] * 3 + acme_users[1:] + globex_users
    sockets = [live.socket(user) for user in tabs]
    hellos = [sock.wait_type("hello") for sock in sockets]
    for n in range(10):
        publish("test.broadcast", {"n": n}, audience=Audience.tenant(acme.pk), tenant=acme)
        publish("test.globex", {"n": n}, audience=Audience.tenant(globex.pk), tenant=globex)
    publish("test.own", {"n": 0}, audience=Audience.user(acme_users[1].pk), tenant=acme)

    for user, sock in zip(tabs, sockets, strict=True):
        expected = ["test.broadcast"] * 10 if user in acme_users else ["test.globex"] * 10
        if user == acme_users[1]:
            expected.append("test.own")
        got = [sock.wait_type(kind) for kind in dict.fromkeys(expected) for _ in range(expected.count(kind))]
        assert [frame["type"] for frame in got] == expected
        for stream in {frame["stream"] for frame in got}:
            offsets = [frame["offset"] for frame in got if frame["stream"] == stream]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        assert {frame["tenant"] for frame in got} == {"acme" if user in acme_users else "globex"}
        later = [frame for frame in sock.listen(0.3) if frame["type"].startswith("test.")]
        assert later == [], f"{user.email} got more: {later}"

    # A socket that replays the same events gets byte-for-byte the frames the live ones got.
    live_frames = [f for f in sockets[0].frames if f["type"] == "test.broadcast"]
    start = positions_token([hellos[0]])
    with open_socket(live.ws_url, session=cookies[acme_users[0].pk], positions=start) as replaying:
        replayed = [replaying.wait_type("test.broadcast") for _ in range(10)]
    assert replayed == live_frames
    for sock in sockets:
        sock.close()


# ------------------------------------------------------------------------------
# A client that stops reading
# ------------------------------------------------------------------------------
SEND_BUFFER = 64 * 1024


@pytest.fixture(scope="module")
def strict_server(subprocess_env) -> Iterator[Uvicorn]:
    """A uvicorn of this module's own with a small send buffer allowance and a fast heartbeat."""
    server = Uvicorn(
        {**subprocess_env, "REALTIME_MAX_SEND_BUFFER_BYTES": str(SEND_BUFFER), "REALTIME_HEARTBEAT_SECONDS": "0.5"}
    ).start()
    yield server
    server.stop()


def stalled_socket(port: int, cookie: str) -> socket.socket:
    """A browser-like socket that completes the handshake, then never reads again (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
            f"Cookie: sessionid={cookie}\r\n\r\n"
        ).encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def connection_dropped(sock: socket.socket) -> bool:
    """Read what is buffered; True once the server has closed or reset the connection."""
    sock.settimeout(0.5)
    try:
        while chunk := sock.recv(1 << 20):
            del chunk
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.stack
def test_a_client_that_stops_reading_is_dropped_and_catches_up_by_replay(
    transactional_db, strict_server, make_tenant, make_member
):
    """Tests a stalled socket under a flood of its user's events: dropped, others unaffected, nothing lost."""
    acme = make_tenant("acme")
    slow, other = make_member(acme, email="slow@acme.test"), make_member(acme, email="other@acme.test")
    cookie = session_cookie_for(slow)
    with open_socket(strict_server.ws_url, session=session_cookie_for(other)) as watcher:
        watcher.wait_type("hello")
        start = page_positions(slow)
        stalled = stalled_socket(strict_server.port, cookie)
        joined = f"socket connect route=browser user={slow.pk} "
        wait_for(lambda: joined in strict_server.output(), timeout=10, message="the stalled socket's consumer")
        try:
            padding = "x" * 32_000
            for batch in range(10):
                # 400 events of 32 KB: far more than the kernel's buffers and the server's allowance.
                publish_many(
                    make_event("test.flood", {"n": batch * 40 + n, "pad": padding}, audience=Audience.user(slow.pk))
                    for n in range(40)
                )
            publish("test.after", {"n": 1}, audience=Audience.user(other.pk))
            assert watcher.wait_type("test.after", timeout=10)["data"] == {"n": 1}
            wait_for(lambda: connection_dropped(stalled), timeout=30, message="the stalled socket to be dropped")
        finally:
            stalled.close()
    assert "dropping a slow WebSocket client" in strict_server.output()

    with open_socket(strict_server.ws_url, session=cookie, positions=start) as returning:
        got = [returning.wait_type("test.flood")["data"]["n"] for _ in range(400)]
    assert got == list(range(400))


def publish_without_delivery(tenant, n: int) -> None:
    """Append an acme event to its stream's history without queueing it: what a layer that dropped it leaves."""
    from django.conf import settings

    from realtime.events import stream_message
    from realtime.streams import RedisStreamStore

    history_only = RedisStreamStore(
        settings.CHANNEL_LAYER_REDIS_URLS, layer_prefix="", key_prefix=settings.REALTIME["STREAM_KEY_PREFIX"]
    )
    event = make_event("test.lost", {"n": n}, audience=Audience.tenant(tenant.pk), tenant=tenant)
    history_only.publish_many([stream_message(event)])
    history_only.close()


@pytest.mark.stack
def test_an_event_the_layer_dropped_is_repaired_before_the_next_one_through_uvicorn(
    transactional_db, strict_server, make_tenant, make_member
):
    """Tests the consumer's gap repair on the real server: the next event reveals the gap; both arrive, in order."""
    acme = make_tenant("acme")
    alice = make_member(acme, email="alice@acme.test")
    with open_socket(strict_server.ws_url, session=session_cookie_for(alice)) as sock:
        sock.wait_type("hello")
        publish_without_delivery(acme, 1)
        publish("test.lost", {"n": 2}, audience=Audience.tenant(acme.pk), tenant=acme)
        got = [sock.wait_type("test.lost", timeout=10) for _ in range(2)]
        assert [frame["data"]["n"] for frame in got] == [1, 2]
        assert got[1]["offset"] == got[0]["offset"] + 1
        assert [frame for frame in sock.listen(0.5) if frame["type"] == "test.lost"] == []  # each once


@pytest.mark.stack
def test_a_lost_last_event_is_announced_by_the_heartbeat_and_replayed_on_resume(
    transactional_db, strict_server, make_tenant, make_member
):
    """Tests the ping's positions: a dropped event no later one reveals still reaches a client that resumes."""
    acme = make_tenant("acme")
    alice = make_member(acme, email="alice@acme.test")
    stream = f"tenant.{acme.pk}"
    with open_socket(strict_server.ws_url, session=session_cookie_for(alice)) as sock:
        sock.wait_type("hello")
        held = decode_positions(sock.positions())[stream]
        publish_without_delivery(acme, 1)
        ping = sock.wait_for(
            lambda frame: (
                frame["type"] == "ping" and decode_positions(frame["data"]["positions"])[stream].offset > held.offset
            ),
            timeout=15,
        )
        assert sock.durable("test.lost") == []
        sock.send({"type": "resume", "positions": sock.positions()})
        lost = sock.wait_type("test.lost", timeout=5)
        assert (lost["data"], lost["offset"]) == ({"n": 1}, held.offset + 1)
        assert decode_positions(ping["data"]["positions"])[stream].offset == lost["offset"]
