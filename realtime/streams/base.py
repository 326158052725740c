"""What every stream store offers: per-stream offsets, an epoch, and a bounded history.

A *stream* is what a socket follows: one user, one tenant, one tenant's admins, the
platform; its name is its channel-layer group (``realtime.audience``). Each stream has
its own increasing offset and an *epoch*, a random id that changes whenever the
stream's history is lost (a Redis restart without persistence, a flush, expiry). A
position ``(offset, epoch)`` therefore says both how far a client got and whether the
history it points into still exists: recovery answers ``recovered=False`` instead of
silently skipping what was lost. This is the design of Centrifugo's Redis engine and
of Ably's channel serials; order and no-gap/no-duplicate hold per stream, which is
all a client can observe.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


def new_epoch() -> str:
    """A fresh epoch: short, random, safe inside JSON and URLs."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class Position:
    """How far a stream has got: its top offset within one epoch of its history."""

    offset: int
    epoch: str


@dataclass(frozen=True)
class StreamMessage:
    """One event on its way into a stream.

    ``frame_rest`` is the frame after its position fields (``"type":…}``): the store
    puts ``{"stream":…,"offset":…,"epoch":…,`` in front once the offset is known. An
    ephemeral message (``durable=False``: a progress tick) gets no offset and is not kept;
    its ``frame_rest`` is the whole frame.
    ``extra`` is kept with the history entry (the tenant of a user's event, so a replay
    can leave out a tenant the user has left). ``idempotency_key``, when given, makes a
    second publish under the same key return the first one's offset instead of
    appending again (the outbox relay may resend what its producer already sent).
    """

    stream: str
    frame_rest: str
    event_type: str = ""
    extra: str = ""
    idempotency_key: str | None = None
    durable: bool = True


@dataclass(frozen=True)
class Publication:
    """Where a published event landed; ``duplicate`` if its idempotency key was seen before."""

    stream: str
    offset: int
    epoch: str
    duplicate: bool = False
    dropped: int = 0


@dataclass(frozen=True)
class Entry:
    """One event kept in a stream's history."""

    offset: int
    frame_rest: str
    published_ms: int
    extra: str = ""

    def frame(self, stream: str, epoch: str) -> str:
        """The frame as live delivery sent it: replayed and live frames are identical."""
        return frame_text(stream, self.offset, epoch, self.frame_rest)


@dataclass(frozen=True)
class Recovery:
    """What a stream holds after a client's position: the missed entries, or that they are gone.

    ``recovered`` is False when the epoch changed or the history no longer reaches
    back to the position (trimmed by size or age): the client must refetch that
    stream's state, and continue from ``top``.
    """

    stream: str
    top: Position
    entries: list[Entry]
    recovered: bool


def frame_text(stream: str, offset: int, epoch: str, frame_rest: str) -> str:
    """Put a frame's position fields in front of the rest (the Lua script does the same)."""
    return f'{{"stream":"{stream}","offset":{offset},"epoch":"{epoch}",{frame_rest}'


def recovery_from(
    stream: str, since: Position | None, top: Position, entries: Sequence[Entry], *, oldest_ms: int, limit: int
) -> Recovery:
    """Decide whether ``entries`` (read after ``since``) are everything the client missed.

    Shared by every store, so they agree on what "recovered" means: the same epoch,
    an unbroken run of offsets from ``since + 1`` to the top, none older than the
    history's age limit, and no more than ``limit`` of them.
    """
    if since is None:
        return Recovery(stream, top, [], True)
    if since.epoch != top.epoch or since.offset > top.offset:
        return Recovery(stream, top, [], False)
    missed = top.offset - since.offset
    if missed == 0:
        return Recovery(stream, top, [], True)
    if missed > limit or len(entries) != missed:
        return Recovery(stream, top, [], False)
    for expected, entry in enumerate(entries, start=since.offset + 1):
        if entry.offset != expected or entry.published_ms < oldest_ms:
            return Recovery(stream, top, [], False)
    return Recovery(stream, top, list(entries), True)


class StreamStore(Protocol):
    """The broker interface: publish, read positions, recover history, forget a stream."""

    def publish_many(self, messages: Sequence[StreamMessage]) -> list[Publication]:
        """Append each message to its stream, in order; one round trip per Redis host."""
        ...

    def positions(self, streams: Iterable[str]) -> dict[str, Position]:
        """Each stream's top position (a stream never published to starts an epoch at 0)."""
        ...

    def recover(self, stream: str, since: Position | None, limit: int) -> Recovery:
        """The entries after ``since``, or ``recovered=False`` if they cannot all be had."""
        ...

    def recover_many(self, since: dict[str, Position | None], limit: int) -> dict[str, Recovery]:
        """``recover`` for several streams at once (a socket's handshake): one round trip per host."""
        ...

    def forget(self, stream: str) -> None:
        """Lose a stream's history and position, as a Redis restart would (tests, operators)."""
        ...
