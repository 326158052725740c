"""Durable events survive disconnects: replay after a cursor, resync when it is too old."""

import subprocess
import sys
import textwrap

import pytest

from realtime import services
from realtime.audience import Audience
from realtime.events import publish
from realtime.models import Event

pytestmark = [pytest.mark.stack]


@pytest.fixture
def alice(make_tenant, make_member):
    acme = make_tenant("acme")
    return make_member(acme, email="alice@acme.test")


def accept(frames, cursor, seen):
    """What the browser client does: keep durable frames not seen before; resume after the newest."""
    kept = []
    for frame in frames:
        if frame.get("id") is None or frame["id"] in seen:
            continue
        seen.add(frame["id"])
        kept.append(frame)
        cursor = max(cursor, frame["id"])
    return kept, cursor


def test_reconnect_with_cursor_replays_exactly_the_missed_events_in_order(live, alice):
    acme = alice.memberships.get().tenant
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        publish("test.before", {"n": 0}, audience=Audience.user(alice.pk))
        cursor = sock.wait_type("test.before")["id"]
    # Offline: five events to the user, five to the tenant.
    for n in range(1, 11):
        audience = Audience.user(alice.pk) if n % 2 else Audience.tenant(acme.pk)
        publish("test.missed", {"n": n}, audience=audience, tenant=acme)
    with live.socket(alice, after=cursor) as sock:
        sock.wait_type("hello")
        replayed = [sock.wait_type("test.missed") for _ in range(10)]
        assert [f["data"]["n"] for f in replayed] == list(range(1, 11))
        ids = [f["id"] for f in replayed]
        assert ids == sorted(ids) and len(set(ids)) == 10 and ids[0] > cursor
        # Nothing more, and nothing twice.
        assert [f for f in sock.drain(0.5) if f.get("id") is not None] == []


def test_cursor_older_than_retention_gets_resync(live, alice):
    publish("test.old", {}, audience=Audience.user(alice.pk))
    old_cursor = Event.objects.latest("id").id - 1
    from datetime import timedelta

    from django.utils import timezone

    services.prune(now=timezone.now() + timedelta(days=30))
    with live.socket(alice, after=old_cursor) as sock:
        resync = sock.wait_type("resync")
        assert resync["data"]["reason"] == "cursor_expired"


def test_cursor_from_the_future_gets_resync(live, alice):
    with live.socket(alice, after=10**12) as sock:
        assert sock.wait_type("resync")["data"]["reason"] == "cursor_unknown"


def test_resume_frame_replays_on_an_open_socket(live, alice):
    """A client that suspects a gap asks for replay without reconnecting."""
    with live.socket(alice) as sock:
        cursor = sock.wait_type("hello")["data"]["cursor"]
        publish("test.live", {"n": 1}, audience=Audience.user(alice.pk))
        publish("test.live", {"n": 2}, audience=Audience.user(alice.pk))
        first = sock.wait_type("test.live")
        sock.wait_type("test.live")
        sock.send({"type": "resume", "after": first["id"]})
        replayed = sock.wait_type("test.live")
        assert replayed["data"] == {"n": 2}
        sock.send({"type": "resume", "after": cursor})
        assert [f["data"]["n"] for f in (sock.wait_type("test.live"), sock.wait_type("test.live"))] == [1, 2]


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
    """A separate process publishes continuously while the client reconnects 20 times."""
    count = 300
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(alice.pk), str(count)], env=subprocess_env)
    seen, cursor, seen_ids = [], 0, set()
    try:
        for reconnect in range(20):
            with live.socket(alice, after=cursor if reconnect else None) as sock:
                hello = sock.wait_type("hello")
                if reconnect == 0:
                    cursor = hello["data"]["cursor"]
                got = sock.listen(0.05 + (reconnect % 5) * 0.04)
                ids = [f["id"] for f in got if f.get("id") is not None]
                assert len(ids) == len(set(ids)), "the server sent an event twice on one connection"
                kept, cursor = accept(got, cursor, seen_ids)
                seen += kept
        publisher.wait(timeout=60)
        assert publisher.returncode == 0
        last_id = Event.objects.filter(type="test.race").latest("id").id
        with live.socket(alice, after=cursor) as sock:
            sock.wait_type("hello")
            while cursor < last_id:
                kept, cursor = accept([sock.recv(timeout=10)], cursor, seen_ids)
                seen += kept
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    published = list(Event.objects.filter(type="test.race").order_by("id").values_list("id", flat=True))
    assert len(published) == count
    assert [f["id"] for f in seen] == published
    assert [f["data"]["n"] for f in seen] == list(range(count))
