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


def test_an_event_that_never_arrives_is_announced_by_the_ping_one_beat_later(
    inmemory_channel_layer, make_member, settings
):
    """Tests the ping's grace: an event sent since the last beat may still be on its way, so wait a beat.

    The event is stored and marked sent but never reaches the socket (newer than anything the
    socket got, so the heartbeat's repair does not cover it): the client learns of it from the
    second ping after it, and resumes.
    """
    from tests.support.ws import session_cookie_for

    settings.REALTIME = {**settings.REALTIME, "HEARTBEAT_SECONDS": 0.5}
    alice = make_member(email="alice@acme.test")
    cookie = session_cookie_for(alice)

    async def next_ping(comm) -> dict:
        while True:
            frame = json.loads(await comm.receive_from(timeout=3))
            if frame["type"] == "ping":
                return frame

    async def run():
        from channels.db import database_sync_to_async

        comm = _browser_socket(cookie)
        assert (await comm.connect())[0]
        await next_ping(comm)

        def lose_one() -> int:
            lost = Event.objects.create(
                type="test.lost", audience="user", user=alice, data={}, created_at=timezone.now()
            )
            SendMark.objects.update_or_create(pk=1, defaults={"sent_through": lost.id})
            return lost.id

        lost_id = await database_sync_to_async(lose_one)()
        first, second = await next_ping(comm), await next_ping(comm)
        assert first["data"]["cursor"] < lost_id  # the beat that first saw it does not announce it
        assert second["data"]["cursor"] == lost_id
        await comm.send_json_to({"type": "resume", "after": first["data"]["cursor"]})
        while (frame := json.loads(await comm.receive_from(timeout=3)))["type"] == "ping":
            pass
        assert (frame["id"], frame["type"]) == (lost_id, "test.lost")
        await comm.disconnect()

    async_to_sync(run)()
