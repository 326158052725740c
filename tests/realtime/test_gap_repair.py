"""A durable event the channel layer dropped is noticed by the heartbeat and resent."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from realtime.audience import Audience
from realtime.events import publish
from realtime.models import Event, SendMark

pytestmark = pytest.mark.django_db(transaction=True)


def _browser_socket(cookie: str) -> WebsocketCommunicator:
    """A socket as the browser opens it: same-site Origin and the session cookie."""
    from liveplatform.asgi import application

    headers = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", f"sessionid={cookie}".encode())]
    return WebsocketCommunicator(application, "/ws/", headers=headers)


def test_dropped_event_is_resent_by_the_heartbeat(inmemory_channel_layer, make_member, settings):
    """Simulates channels-redis dropping a message over capacity: stored, never sent."""
    from tests.support.ws import session_cookie_for

    settings.REALTIME = {**settings.REALTIME, "HEARTBEAT_SECONDS": 0.5}
    alice = make_member(email="alice@acme.test")
    cookie = session_cookie_for(alice)

    async def run():
        from channels.db import database_sync_to_async

        comm = _browser_socket(cookie)
        assert (await comm.connect())[0]
        assert json.loads(await comm.receive_from())["type"] == "hello"

        def drop_one_then_send_one():
            dropped = Event.objects.create(
                type="test.dropped", audience="user", user=alice, data={"n": 1}, created_at=timezone.now()
            )
            # Handed to the layer (the send mark moves past it), then lost there. Without the
            # mark, the next publisher would take it for a crashed publisher's and send it first.
            SendMark.objects.update_or_create(pk=1, defaults={"sent_through": dropped.id})
            publish("test.delivered", {"n": 2}, audience=Audience.user(alice.pk))

        await database_sync_to_async(drop_one_then_send_one)()
        frames = []
        while not any(f["type"] == "test.dropped" for f in frames):
            frames.append(json.loads(await comm.receive_from(timeout=3)))
        durable = [f["type"] for f in frames if f["id"] is not None]
        assert durable == ["test.delivered", "test.dropped"]
        # Resent once only.
        more = []
        for _ in range(2):
            more.append(json.loads(await comm.receive_from(timeout=3)))
        assert [f["type"] for f in more] == ["ping", "ping"]
        await comm.disconnect()

    async_to_sync(run)()


def test_an_event_that_never_arrives_is_resent_and_announced_one_beat_later(
    inmemory_channel_layer, make_member, settings
):
    """Tests the heartbeat's grace: an event sent since the last beat may still be on its way, so wait a beat.

    The event is stored and marked sent but never reaches the socket, and nothing newer
    arrives after it (so the socket itself could not tell). The beat that first sees it
    leaves it alone; the next one resends it and announces it in its ping.
    """
    from tests.support.ws import session_cookie_for

    settings.REALTIME = {**settings.REALTIME, "HEARTBEAT_SECONDS": 0.5}
    alice = make_member(email="alice@acme.test")
    cookie = session_cookie_for(alice)

    async def run():
        from channels.db import database_sync_to_async

        comm = _browser_socket(cookie)
        assert (await comm.connect())[0]
        frames = [json.loads(await comm.receive_from(timeout=3))]
        while frames[-1]["type"] != "ping":
            frames.append(json.loads(await comm.receive_from(timeout=3)))

        def lose_one() -> int:
            lost = Event.objects.create(
                type="test.lost", audience="user", user=alice, data={}, created_at=timezone.now()
            )
            SendMark.objects.update_or_create(pk=1, defaults={"sent_through": lost.id})
            return lost.id

        lost_id = await database_sync_to_async(lose_one)()
        after = []
        while len([f for f in after if f["type"] == "ping"]) < 3:
            after.append(json.loads(await comm.receive_from(timeout=3)))
        kinds = [f["type"] for f in after]
        # ping (the beat that first saw it: in grace), the resent event, its ping, the next ping.
        assert kinds == ["ping", "test.lost", "ping", "ping"], kinds
        assert after[0]["data"]["cursor"] < lost_id
        assert (after[1]["id"], after[2]["data"]["cursor"], after[3]["data"]["cursor"]) == (lost_id, lost_id, lost_id)
        await comm.disconnect()

    async_to_sync(run)()


def test_a_tenant_joined_while_connected_is_owed_only_what_is_sent_after_joining(
    inmemory_channel_layer, make_tenant, make_member, settings
):
    """Tests that the heartbeat never resends a tenant's events from before the user joined it."""
    from accounts.services import do_add_member
    from tests.support.ws import session_cookie_for

    settings.REALTIME = {**settings.REALTIME, "HEARTBEAT_SECONDS": 0.3}
    acme, globex = make_tenant("acme"), make_tenant("globex")
    alice = make_member(acme, email="alice@acme.test")
    cookie = session_cookie_for(alice)

    async def frames_until(comm, predicate) -> list[dict]:
        frames = []
        while not frames or not predicate(frames[-1]):
            frames.append(json.loads(await comm.receive_from(timeout=3)))
        return frames

    async def run():
        from channels.db import database_sync_to_async

        comm = _browser_socket(cookie)
        assert (await comm.connect())[0]
        await frames_until(comm, lambda f: f["type"] == "ping")
        await database_sync_to_async(publish)("test.before", {}, audience=Audience.tenant(globex.pk), tenant=globex)
        await database_sync_to_async(do_add_member)(globex, alice)
        seen = await frames_until(comm, lambda f: f["type"] == "membership.changed")
        await database_sync_to_async(publish)("test.after", {}, audience=Audience.tenant(globex.pk), tenant=globex)
        seen += await frames_until(comm, lambda f: f["type"] == "test.after")
        pings = 0
        while pings < 4:  # two whole windows checked after the join
            frame = json.loads(await comm.receive_from(timeout=3))
            seen.append(frame)
            pings += frame["type"] == "ping"
        assert "test.before" not in [f["type"] for f in seen]
        await comm.disconnect()

    async_to_sync(run)()


def test_one_beat_reads_the_store_once_for_every_socket(inmemory_channel_layer, make_member, settings, monkeypatch):
    """Tests that the heartbeat's database work does not grow with the number of sockets."""
    from realtime import delivery, hub
    from tests.support.ws import session_cookie_for

    settings.REALTIME = {**settings.REALTIME, "HEARTBEAT_SECONDS": 0.3}
    calls = []
    real_window = delivery.sent_window
    monkeypatch.setattr(hub, "sent_window", lambda *args: calls.append(args) or real_window(*args))
    cookies = [session_cookie_for(make_member(email=f"m{n}@acme.test")) for n in range(20)]

    async def run() -> int:
        sockets = [_browser_socket(cookie) for cookie in cookies]
        for comm in sockets:
            assert (await comm.connect())[0]
        calls.clear()
        for comm in sockets:  # every socket gets the next two pings
            for _ in range(2):
                while json.loads(await comm.receive_from(timeout=3))["type"] != "ping":
                    pass
        beats = len(calls)
        for comm in sockets:
            await comm.disconnect()
        return beats

    assert async_to_sync(run)() in (2, 3)  # one read per beat, whatever the sockets' count
