"""The publish path: on commit only, per-stream offsets, the outbox for crashes and outages."""

import signal
import subprocess
import sys
import textwrap

import pytest
from django.db import transaction

from realtime import outbox
from realtime.audience import Audience, user_group
from realtime.events import make_event, publish, publish_many
from realtime.models import OutboxEvent
from realtime.streams import RedisStreamStore, stream_store
from tests.support.processes import CeleryBeat, CeleryWorker, free_loopback_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]


def top(user) -> int:
    stream = user_group(user.pk)
    return stream_store().positions([stream])[stream].offset


def test_an_event_published_in_a_rolled_back_transaction_is_never_kept_or_sent(make_member):
    """Tests that a rolled-back producer leaves neither an outbox row nor an entry in the stream."""
    alice = make_member()
    before = top(alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("test.ghost", {}, audience=Audience.user(alice.pk))
        raise RuntimeError("the row this event describes is rolled back")
    assert top(alice) == before
    assert not OutboxEvent.objects.exists()


def test_publishing_inside_a_transaction_waits_for_commit_and_then_clears_its_outbox_row(make_member):
    """Tests that the event is an outbox row until commit, then in its stream, and the row is gone."""
    alice = make_member()
    before = top(alice)
    with transaction.atomic():
        publish("test.later", {}, audience=Audience.user(alice.pk))
        assert top(alice) == before
        assert OutboxEvent.objects.filter(event_type="test.later").count() == 1
    assert top(alice) == before + 1
    assert not OutboxEvent.objects.exists()


def test_publish_many_gives_each_stream_its_next_offsets_and_ephemeral_events_none(make_member):
    """Tests a bulk publish: durable events take consecutive offsets per stream; progress ticks are not kept."""
    alice, bob = make_member(), make_member()
    start = {user.pk: top(user) for user in (alice, bob)}
    publish_many(
        [make_event("test.bulk", {"n": n}, audience=Audience.user(user.pk)) for n in range(5) for user in (alice, bob)]
        + [make_event("test.tick", {}, audience=Audience.user(alice.pk), durable=False)]
    )
    assert {user.pk: top(user) - start[user.pk] for user in (alice, bob)} == {alice.pk: 5, bob.pk: 5}
    recovered = stream_store().recover(
        user_group(alice.pk), stream_store().positions([user_group(alice.pk)])[user_group(alice.pk)], 10
    )
    assert recovered.recovered and recovered.entries == []


def test_a_publish_redis_refuses_is_kept_in_the_outbox_and_relayed_once_it_answers(make_member, monkeypatch):
    """Tests an outage: nothing is lost, the producer does not fail, and the relay delivers the event later."""
    import realtime.events

    alice = make_member()
    before = top(alice)
    refusing = RedisStreamStore([f"redis://127.0.0.1:{free_loopback_port()}"], socket_timeout=0.5)
    monkeypatch.setattr(realtime.events, "stream_store", lambda: refusing)
    publish("test.during_outage", {"n": 1}, audience=Audience.user(alice.pk))
    assert OutboxEvent.objects.filter(event_type="test.during_outage").count() == 1
    monkeypatch.undo()
    assert outbox.relay(older_than=0) == 1
    assert top(alice) == before + 1 and not OutboxEvent.objects.exists()
    assert outbox.relay(older_than=0) == 0


def test_the_relay_never_appends_twice_what_its_producer_already_published(make_member):
    """Tests the idempotency key: a producer killed after its publish but before deleting its row."""
    alice = make_member()
    before = top(alice)
    with transaction.atomic():
        (held,) = outbox.hold([realtime_message(alice, "test.once")])
    stream_store().publish_many([realtime_message(alice, "test.once", key=held.idempotency_key)])
    assert outbox.relay(older_than=0) == 1
    assert top(alice) == before + 1


def realtime_message(user, event_type, key=None):
    from realtime.events import stream_message
    from realtime.streams import StreamMessage

    message = stream_message(make_event(event_type, {}, audience=Audience.user(user.pk)))
    return StreamMessage(**{**message.__dict__, "idempotency_key": key})


PRODUCER_KILLED_AFTER_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    import django
    django.setup()
    from django.db import transaction
    from realtime.audience import Audience
    from realtime.events import publish
    with transaction.atomic():
        # Runs first of the commit hooks: the process dies after COMMIT, before its publish.
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        publish("test.crash", {"n": 1}, audience=Audience.user(int(sys.argv[1])))
    """
)


def test_a_producer_killed_right_after_its_commit_still_reaches_the_socket(live, make_member, subprocess_env):
    """Tests the outbox end to end: kill -9 after COMMIT; beat's relay publishes it; the open socket gets it once."""
    alice = make_member()
    env = {**subprocess_env, "REALTIME_OUTBOX_RELAY_SECONDS": "1", "REALTIME_OUTBOX_RELAY_AFTER_SECONDS": "1"}
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        producer = subprocess.run(
            [sys.executable, "-c", PRODUCER_KILLED_AFTER_COMMIT, str(alice.pk)], env=env, timeout=60
        )
        assert producer.returncode == -signal.SIGKILL
        assert OutboxEvent.objects.filter(event_type="test.crash").count() == 1
        assert sock.durable("test.crash") == []
        worker, beat = CeleryWorker(env).start(), CeleryBeat(env).start()
        try:
            crashed = sock.wait_type("test.crash", timeout=30)
        finally:
            beat.stop()
            worker.stop()
        assert crashed["data"] == {"n": 1} and crashed["stream"] == user_group(alice.pk)
        assert [f for f in sock.drain(0.5) if f["type"] == "test.crash"] == []
    wait_for(lambda: not OutboxEvent.objects.exists(), timeout=10, message="the relayed row deleted")
