"""What was appended to some streams during a test, read back from their history in the real Redis.

The global ``Event`` table is gone (issue 14): a test that counted stored events notes the
streams' positions first and reads what came after, per stream, in offset order. Only
committed publishes reach a stream: under the ``db`` fixture a test runs the on-commit
callbacks (``django_capture_on_commit_callbacks(execute=True)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from realtime.audience import PLATFORM_GROUP, tenant_admins_group, tenant_group, user_group
from realtime.streams import Position, encode_positions, stream_store


def streams_of(*, users: Iterable[Any] = (), tenants: Iterable[Any] = (), platform: bool = True) -> list[str]:
    """The streams of these users (``user.<id>``) and tenants (``tenant.<id>`` and its admins), and the platform's."""
    streams = [user_group(user.pk) for user in users]
    for tenant in tenants:
        streams += [tenant_group(tenant.pk), tenant_admins_group(tenant.pk)]
    return streams + ([PLATFORM_GROUP] if platform else [])


class StreamLog:
    """Positions of some streams now; later, every durable event appended to them since."""

    def __init__(self, streams: Iterable[str]) -> None:
        self.start: dict[str, Position] = stream_store().positions(list(streams))

    def entries(self, stream: str | None = None) -> list[tuple[dict[str, Any], int]]:
        """Each event since the start as ``(frame, published_ms)``, in order per stream.

        Streams are in the order they were given: there is no order across streams.
        """
        wanted = {name: since for name, since in self.start.items() if stream is None or name == stream}
        found = []
        for name, recovery in stream_store().recover_many(wanted, limit=10_000).items():
            assert recovery.recovered, f"the history of {name} was lost during the test"
            found += [
                (json.loads(entry.frame(name, recovery.top.epoch)), entry.published_ms) for entry in recovery.entries
            ]
        return found

    def frames(self, stream: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
        """The events since the start as frames (``stream``, ``offset``, ``type``, ``data``...), as sockets get them."""
        return [frame for frame, _ in self.entries(stream) if event_type is None or frame["type"] == event_type]


def from_the_start(streams: Iterable[str]) -> str:
    """A resume token at offset 0 of each stream's current epoch: "replay everything the history still holds"."""
    return encode_positions(
        {stream: Position(0, top.epoch) for stream, top in stream_store().positions(streams).items()}
    )
