"""When a socket's connection arrived: where a handshake's time in the server starts.

A server's handshake timeout (daphne's ``--websocket_connect_timeout``, 5 s) counts
from the TCP connection, not from when the application first sees the handshake. In
a reconnect storm the two are seconds apart: the server parses hundreds of handshakes
before the application's middleware runs for the last of them. The servers this
project runs (``liveplatform.daphne_server``, ``realtime.transport``) stamp the
moment the connection arrived on the scope, so the admission's queue limit
(``REALTIME_HANDSHAKE_QUEUE_SECONDS``) counts the whole wait.
"""

from __future__ import annotations

import time
from typing import Any

ARRIVED = "liveplatform.arrived"


def stamp_arrival(scope: dict[str, Any], arrived: float) -> None:
    """Record on a handshake's scope when (``time.monotonic()``) its connection arrived."""
    scope.setdefault("extensions", {})[ARRIVED] = {"monotonic": arrived}


def pop_arrival(scope: dict[str, Any]) -> float:
    """When the connection arrived, if its server stamped it; otherwise now (the application's first look).

    The stamp is removed: it is read once, at admission, and a scope lives as long as
    its socket (memory per idle socket, docs/benchmarks.md).
    """
    stamp = (scope.get("extensions") or {}).pop(ARRIVED, None)
    return stamp["monotonic"] if stamp else time.monotonic()
