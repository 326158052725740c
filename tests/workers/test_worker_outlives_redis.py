"""A worker that loses Redis reconnects when it is back, instead of shutting down for good.

kombu, closing the channel of a lost connection, restores the unacknowledged
messages through a pool built from the connection's details, which may be gone by
then: an ``AttributeError`` that Celery calls unrecoverable (liveplatform/kombu_guard.py).
"""

from __future__ import annotations

from uuid import uuid4

import pytest
import redis
from django.conf import settings
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors

import liveplatform.celery  # noqa: F401 - making the app installs the guard


@pytest.fixture
def broker_queue():
    """A queue of this test's own on the test broker, and a raw client to look at it; removed after."""
    name = f"guard-{uuid4().hex}"
    raw = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    taken: list[str] = []
    yield name, raw, taken
    raw.delete(name, f"_kombu.binding.{name}")
    for tag in taken:
        raw.hdel("unacked", tag)
        raw.zrem("unacked_index", tag)


def test_closing_the_channel_of_a_connection_already_gone_is_a_connection_error_not_a_crash(broker_queue):
    name, raw, taken = broker_queue
    connection = Connection(settings.CELERY_BROKER_URL)
    channel = connection.default_channel
    queue = Queue(name, Exchange(name), name, channel=channel)
    queue.declare()
    connection.Producer(channel).publish({"task": "guarded"}, exchange=queue.exchange, routing_key=name)
    message = queue.get(no_ack=False)  # taken by a "worker", not acknowledged yet
    assert message is not None
    taken.append(message.delivery_tag)

    # The consumer lost Redis: the connection's details are gone before the channel is closed.
    transport = connection.transport
    channel._disconnect_pools()
    transport.client = None
    error = pytest.raises(redis.ConnectionError, channel.close)
    assert "broker connection is closed" in str(error.value)
    # What Celery does on losing the broker (consumer.on_connection_error_after_connected): ignore it.
    assert ignore_errors(transport, channel.close) is None
    # The message it could not restore is kept, to run again (runplatform restores it when Redis is back).
    assert raw.hexists("unacked", message.delivery_tag)
