"""Celery's broker pointed at a port nothing listens on, for tests of what happens while Redis is down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from liveplatform.embedded_redis import free_loopback_port


def _point_broker_at(url: str) -> None:
    from liveplatform.celery import app

    app.conf.broker_url = url
    # New pools for the new URL; the old ones stay open for whoever holds them (the control mailbox).
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def broker_unavailable() -> Iterator[Callable[[], None]]:
    """Celery's broker is down inside the block; calling the value it gives brings it back."""
    from liveplatform.celery import app

    original = app.conf.broker_url
    _point_broker_at(f"redis://127.0.0.1:{free_loopback_port()}/1")
    restored = []

    def restore() -> None:
        if not restored:
            _point_broker_at(original)
            restored.append(True)

    yield restore
    restore()
