"""The publish path: on commit only, durable events stored in order, pruning past retention."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from realtime import services
from realtime.audience import Audience
from realtime.events import make_event, publish, publish_many
from realtime.models import Event, RetentionMark
from realtime.tasks import prune_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_published_in_a_rolled_back_transaction_is_never_stored_or_sent(make_member):
    alice = make_member()
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("test.ghost", {}, audience=Audience.user(alice.pk))
        raise RuntimeError("the row this event describes is rolled back")
    assert not Event.objects.filter(type="test.ghost").exists()


def test_publishing_inside_a_transaction_waits_for_commit(make_member):
    alice = make_member()
    with transaction.atomic():
        publish("test.later", {}, audience=Audience.user(alice.pk))
        assert not Event.objects.filter(type="test.later").exists()
    assert Event.objects.filter(type="test.later").count() == 1


def test_publish_many_stores_events_with_increasing_cursors_and_ephemeral_ones_not_at_all(make_member):
    alice = make_member()
    publish_many(
        [make_event("test.bulk", {"n": n}, audience=Audience.user(alice.pk)) for n in range(5)]
        + [make_event("test.tick", {}, audience=Audience.user(alice.pk), durable=False)]
    )
    stored = list(Event.objects.filter(type="test.bulk").order_by("id").values_list("data", flat=True))
    assert stored == [{"n": n} for n in range(5)]
    assert not Event.objects.filter(type="test.tick").exists()


def test_prune_task_deletes_old_events_and_moves_the_retention_mark(make_member):
    alice = make_member()
    publish("test.old", {}, audience=Audience.user(alice.pk))
    old = Event.objects.get(type="test.old")
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    publish("test.new", {}, audience=Audience.user(alice.pk))
    assert prune_events() == 1
    assert list(Event.objects.values_list("type", flat=True)) == ["test.new"]
    assert RetentionMark.objects.get().pruned_through == old.pk
    replay = services.replay_after(services.subscriptions_for(alice), old.pk - 1)
    assert replay.resync and replay.reason == "cursor_expired"


def test_an_event_a_killed_publisher_stored_but_never_sent_goes_out_before_the_next_one(make_member):
    """Tests the send mark: a worker killed between commit and send must not reorder a socket's events."""
    import asyncio

    from asgiref.sync import async_to_sync, sync_to_async
    from channels.layers import get_channel_layer

    from realtime.audience import user_group

    alice = make_member()
    publish("test.before", {}, audience=Audience.user(alice.pk))
    # What a publisher killed with -9 after its COMMIT and before its group_send leaves behind:
    orphan = Event.objects.create(type="test.orphan", audience="user", user=alice, created_at=timezone.now())

    async def listen_while_publishing(*event_types: str) -> list[dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(alice.pk), channel)
        try:
            for event_type in event_types:
                await sync_to_async(publish)(event_type, {}, audience=Audience.user(alice.pk))
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(layer.receive(channel), 1.0))
                except TimeoutError:
                    return received
        finally:
            await layer.group_discard(user_group(alice.pk), channel)

    first = async_to_sync(listen_while_publishing)("test.next")
    assert [(m["event_type"], m["id"]) for m in first] == [
        ("test.orphan", orphan.pk),
        ("test.next", Event.objects.get(type="test.next").pk),
    ]
    # Sent once: the publish after that carries only its own event.
    second = async_to_sync(listen_while_publishing)("test.last")
    assert [m["event_type"] for m in second] == ["test.last"]
