"""The resume token: a client's position in each stream it follows, compact enough for a URL.

``user.5:17:9f86d081,tenant.3:120:a1b2c3d4``: for each stream, its name, the offset
the client has seen through, and the epoch that offset belongs to. The server gives
positions out (the page's ``data-positions``, ``hello``, ``ping``) and the client hands
them back on reconnect; clients treat the token as opaque.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .base import Position

# A stream name is a channel-layer group name; an epoch is short hex (base.new_epoch).
_ENTRY = re.compile(r"^([A-Za-z0-9._-]{1,90}):(\d{1,18}):([0-9a-f]{1,32})$")
MAX_STREAMS = 200


class BadPositions(ValueError):
    """The token is not a list of ``stream:offset:epoch`` entries."""


def encode_positions(positions: dict[str, Position]) -> str:
    """The token for these positions (streams sorted, so equal positions give equal tokens)."""
    return ",".join(f"{stream}:{position.offset}:{position.epoch}" for stream, position in sorted(positions.items()))


def decode_positions(token: str, streams: Iterable[str] | None = None) -> dict[str, Position]:
    """The positions in ``token``, keeping only ``streams`` if given; raises ``BadPositions``.

    Streams the caller does not follow are dropped, never trusted: a position is only
    a hint of how far a client got, and the server decides what it may see.
    """
    if not token:
        return {}
    entries = token.split(",")
    if len(entries) > MAX_STREAMS:
        raise BadPositions(f"at most {MAX_STREAMS} streams")
    wanted = None if streams is None else set(streams)
    positions: dict[str, Position] = {}
    for entry in entries:
        match = _ENTRY.match(entry)
        if match is None:
            raise BadPositions(f"not stream:offset:epoch: {entry[:60]!r}")
        stream, offset, epoch = match.groups()
        if wanted is None or stream in wanted:
            positions[stream] = Position(int(offset), epoch)
    return positions
