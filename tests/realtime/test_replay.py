"""Durable events survive disconnects: replay per stream from the client's positions, resync per stream."""

import subprocess
import sys
import textwrap

import pytest

from realtime.audience import Audience, tenant_group, user_group
from realtime.events import publish
from realtime.streams import decode_positions, encode_positions, stream_store
from tests.support.ws import positions_token

pytestmark = [pytest.mark.stack]


@pytest.fixture
def alice(make_tenant, make_member):
    acme = make_tenant("acme")
    return make_member(acme, email="alice@acme.test", role="admin")


def accept(frames, token):
    """What the browser client does: keep each stream's next offset, drop what it has seen; returns kept, token."""
    positions = decode_positions(token)
    kept = []
    for frame in frames:
        if "stream" not in frame:
            continue
        known = positions.get(frame["stream"])
        if known is not None and known.epoch == frame["epoch"] and frame["offset"] <= known.offset:
            continue
        kept.append(frame)
        positions[frame["stream"]] = type(known or next(iter(positions.values())))(frame["offset"], frame["epoch"])
    return kept, encode_positions(positions)


def test_a_socket_away_gets_exactly_what_it_missed_on_three_streams_in_order_once(live, alice):
    """Tests the replay after a reconnect: the user's, the tenant's and the admins' streams, each in offset order."""
    acme = alice.memberships.get().tenant
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        publish("test.before", {"n": 0}, audience=Audience.user(alice.pk))
        sock.wait_type("test.before")
        token = sock.positions()
    audiences = [Audience.user(alice.pk), Audience.tenant(acme.pk), Audience.tenant_admins(acme.pk)]
    for n in range(1, 13):
        publish("test.missed", {"n": n}, audience=audiences[n % 3], tenant=acme)
    with live.socket(alice, positions=token) as sock:
        sock.wait_type("hello")
        replayed = [sock.wait_type("test.missed") for _ in range(12)]
        by_stream: dict[str, list[int]] = {}
        for frame in replayed:
            by_stream.setdefault(frame["stream"], []).append(frame["data"]["n"])
        assert by_stream == {
            user_group(alice.pk): [3, 6, 9, 12],
            tenant_group(acme.pk): [1, 4, 7, 10],
            f"{tenant_group(acme.pk)}.admins": [2, 5, 8, 11],
        }
        for stream in by_stream:
            offsets = [frame["offset"] for frame in replayed if frame["stream"] == stream]
            assert offsets == list(range(offsets[0], offsets[0] + 4))
        # Nothing more, and nothing twice.
        assert [frame for frame in sock.drain(0.5) if "stream" in frame] == []


def test_a_stream_whose_history_was_lost_is_resynced_while_the_others_replay(live, alice):
    """Tests recovered=false for one stream only: a resync frame for it, the replay for the rest."""
    acme = alice.memberships.get().tenant
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        token = sock.positions()
    publish("test.missed", {"n": 1}, audience=Audience.user(alice.pk))
    publish("test.missed", {"n": 2}, audience=Audience.tenant(acme.pk), tenant=acme)
    stream_store().forget(tenant_group(acme.pk))  # the tenant stream's history is lost (as after a restart)
    publish("test.missed", {"n": 3}, audience=Audience.tenant(acme.pk), tenant=acme)
    with live.socket(alice, positions=token) as sock:
        sock.wait_type("hello")
        replayed = sock.wait_type("test.missed")
        assert (replayed["stream"], replayed["data"]["n"]) == (user_group(alice.pk), 1)
        resync = sock.wait_type("resync")
        assert resync["data"]["stream"] == tenant_group(acme.pk)
        assert resync["data"]["reason"] == "history_lost" and resync["data"]["offset"] == 1
        assert [f for f in sock.drain(0.5) if f["type"] in ("test.missed", "resync")] == []


def test_a_position_too_far_behind_gets_a_resync(live, alice, settings):
    """Tests that a client further behind than the replay limit refetches instead of getting a partial replay."""
    settings.REALTIME = {**settings.REALTIME, "MAX_REPLAY": 3}
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        token = sock.positions()
    for n in range(5):
        publish("test.missed", {"n": n}, audience=Audience.user(alice.pk))
    # The web process has its own settings: MAX_REPLAY there is 1000, so ask the stream directly too.
    behind = decode_positions(token)[user_group(alice.pk)]
    assert not stream_store().recover(user_group(alice.pk), behind, limit=3).recovered
    with live.socket(alice, positions=token) as sock:
        sock.wait_type("hello")
        assert [sock.wait_type("test.missed")["data"]["n"] for _ in range(5)] == [0, 1, 2, 3, 4]


def test_a_forged_epoch_is_never_replayed_from(live, alice):
    """Tests that a position in an epoch the stream never had gets a resync, not someone's history."""
    stream = user_group(alice.pk)
    publish("test.secret", {"n": 1}, audience=Audience.user(alice.pk))
    with live.socket(alice, positions=f"{stream}:0:deadbeef") as sock:
        resync = sock.wait_type("resync")
        assert resync["data"]["stream"] == stream and resync["data"]["reason"] == "history_lost"
        assert sock.durable("test.secret") == []


def test_resume_frame_replays_on_an_open_socket(live, alice):
    """Tests that a client that suspects a gap asks for a replay of one stream without reconnecting."""
    with live.socket(alice) as sock:
        start = sock.wait_type("hello")
        token = positions_token([start])
        publish("test.live", {"n": 1}, audience=Audience.user(alice.pk))
        publish("test.live", {"n": 2}, audience=Audience.user(alice.pk))
        first = sock.wait_type("test.live")
        sock.wait_type("test.live")
        sock.send({"type": "resume", "positions": positions_token([start, first])})
        assert sock.wait_type("test.live")["data"] == {"n": 2}
        sock.send({"type": "resume", "positions": token})
        assert [f["data"]["n"] for f in (sock.wait_type("test.live"), sock.wait_type("test.live"))] == [1, 2]
        sock.send({"type": "resume", "positions": "not a token"})
        assert sock.wait_type("error")["data"]["code"] == "invalid_frame"


PUBLISHER = textwrap.dedent(
    """
    import django, os, sys, time
    django.setup()
    from realtime.audience import Audience
    from realtime.events import publish
    user_id, count = int(sys.argv[1]), int(sys.argv[2])
    for n in range(count):
        publish("test.race", {"n": n}, audience=Audience.user(user_id))
        time.sleep(0.01)  # pacing the producer, not synchronisation
    """
)


def test_events_published_during_twenty_reconnects_arrive_once_each_in_order(live, alice, subprocess_env):
    """Tests a separate process publishing continuously while the client reconnects 20 times."""
    count = 300
    stream = user_group(alice.pk)
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(alice.pk), str(count)], env=subprocess_env)
    seen, token = [], None
    try:
        for _ in range(20):
            with live.socket(alice, positions=token) as sock:
                hello = sock.wait_type("hello")
                token = token or positions_token([hello])
                got = sock.listen(0.05 + (len(seen) % 5) * 0.04)
                offsets = [(f["stream"], f["offset"]) for f in got if "stream" in f]
                assert len(offsets) == len(set(offsets)), "the server sent an event twice on one connection"
                kept, token = accept(got, token)
                seen += kept
        publisher.wait(timeout=60)
        assert publisher.returncode == 0
        top = stream_store().positions([stream])[stream].offset
        with live.socket(alice, positions=token) as sock:
            sock.wait_type("hello")
            while decode_positions(token)[stream].offset < top:
                kept, token = accept([sock.recv(timeout=10)], token)
                seen += kept
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    races = [f for f in seen if f["type"] == "test.race"]
    assert [f["data"]["n"] for f in races] == list(range(count))
    offsets = [f["offset"] for f in races]
    assert offsets == list(range(offsets[0], offsets[0] + count))
