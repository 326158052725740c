"""`manage.py publish_event --via-worker` while the task queue is down: a clear error at once, not a hang."""

from __future__ import annotations

import time

import pytest
from django.core.management import CommandError, call_command

from tests.support.broker import broker_unavailable


@pytest.fixture
def broker_down():
    """Celery's broker is down for this test; ``broker_down()`` brings it back."""
    with broker_unavailable() as restore:
        yield restore


def test_publishing_via_a_worker_with_the_broker_down_fails_at_once_saying_so(db, make_tenant, broker_down):
    """Tests that the command ends with a message naming the unavailable queue (it waited 19 s and more before)."""
    make_tenant("acme")
    started = time.monotonic()
    with pytest.raises(CommandError, match="task queue .* is unavailable, nothing was queued"):
        call_command("publish_event", "--tenant", "acme", "--message", "hi", "--via-worker")
    # Not a speed figure: before, the command blocked on Celery's reconnects for 19 s or more.
    assert time.monotonic() - started < 5
