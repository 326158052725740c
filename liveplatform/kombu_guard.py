"""A guard around one kombu bug that stops a Celery worker for good when Redis goes away.

When a worker loses Redis, Celery closes the broker connection and ignores the
connection errors that closing raises. Closing kombu's Redis channel restores the
messages the worker had not acknowledged yet, and for that it builds a new
connection pool from the connection's details. If those are already gone, kombu
fails with ``AttributeError: 'NoneType' object has no attribute 'hostname'``
(``kombu/transport/redis.py``, ``Channel._connparams``; the trace of celery/kombu#582),
which is not a connection error: Celery logs "Unrecoverable error" and the worker
shuts down instead of reconnecting. Seen in CI on 4 Dec 2026 (kombu 5.7.0), when
Redis was killed while a task was running.

Raised as a Redis ``ConnectionError`` instead, it is ignored like the rest of the
outage and the worker reconnects once Redis is back. The messages it could not
restore stay in kombu's ``unacked`` set and run again (at least once):
``runplatform`` restores them when Redis returns, elsewhere the visibility timeout does.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_connparams = kombu_redis.Channel._connparams


def _connparams_or_connection_error(self: kombu_redis.Channel, *args: Any, **kwargs: Any) -> dict[str, Any]:
    if self.connection.client is None:
        raise RedisConnectionError("the broker connection is closed")
    return _connparams(self, *args, **kwargs)


def install() -> None:
    """Make a closed broker connection look like what it is: a connection error (once per process)."""
    if kombu_redis.Channel._connparams is not _connparams_or_connection_error:
        kombu_redis.Channel._connparams = _connparams_or_connection_error
