"""One event, many sockets: what is computed once per event and process (its frame, its delivery count)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import metrics
from .transport import text_frame

_TALLY = "__tally__"


class DeliveryTally:
    """One event in this process: its frame, encoded once, and the sockets it went to.

    Counting each delivery in Prometheus took a lock and a label lookup per socket,
    15% of the server's CPU at 3,000 sockets (docs/benchmarks.md). Deliveries are
    counted here instead and recorded once the fan-out is done: at the next turn of
    the event loop, after the layer has handed the event to every local member.
    """

    __slots__ = ("_frame", "event_type", "message", "published", "recorded", "sent")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.event_type = message.get("event_type", "")
        self.published = message.get("ts")
        self.sent = 0
        self.recorded = True  # nothing to record yet
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The event as a WebSocket text frame (``realtime.transport.text_frame``), encoded once."""
        if self._frame is None:
            self._frame = text_frame(self.message["text"])
        return self._frame

    def count(self) -> None:
        """Note one delivery; the metrics are written once this turn of the loop is over."""
        self.sent += 1
        if self.recorded:
            self.recorded = False
            asyncio.get_running_loop().call_soon(self.record)

    def record(self) -> None:
        """Add the deliveries to the metrics, with the time the last one left the server."""
        metrics.EVENTS_DELIVERED.labels(type=self.event_type).inc(self.sent)
        if self.published:
            metrics.PUBLISH_TO_SEND.observe(max(0.0, time.time() - self.published))
        self.sent, self.recorded = 0, True


def delivery_tally(message: dict[str, Any]) -> DeliveryTally:
    """The tally of a published event, kept on the message every local member of its groups shares."""
    tally = message.get(_TALLY)
    if tally is None:
        tally = message[_TALLY] = DeliveryTally(message)
    return tally
