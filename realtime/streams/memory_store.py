"""A stream store inside one process: for unit tests and single-process tools.

It follows the same rules as the Redis store (``tests/realtime/test_streams.py`` runs
the same tests against both), but sends nothing to a channel layer.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from .base import Entry, Position, Publication, Recovery, StreamMessage, new_epoch, recovery_from


class InMemoryStreamStore:
    """Streams in a dict: offsets, epochs and a history bounded by size and age."""

    def __init__(
        self, history_size: int = 1000, history_seconds: float = 86400, clock: Callable[[], float] = time.time
    ) -> None:
        self.history_size = history_size
        self.clock = clock
        self.history_seconds = history_seconds
        self._lock = threading.Lock()
        self._meta: dict[str, Position] = {}
        self._history: dict[str, collections.deque[Entry]] = {}
        self._results: dict[str, Publication] = {}

    def publish_many(self, messages: Sequence[StreamMessage]) -> list[Publication]:
        """Append each message to its stream, in order."""
        now_ms = int(self.clock() * 1000)
        published = []
        with self._lock:
            for message in messages:
                if not message.durable:
                    published.append(Publication(message.stream, 0, ""))
                    continue
                key = message.idempotency_key
                if key is not None and key in self._results:
                    done = self._results[key]
                    published.append(Publication(done.stream, done.offset, done.epoch, duplicate=True))
                    continue
                top = self._top(message.stream)
                position = self._meta[message.stream] = Position(top.offset + 1, top.epoch)
                history = self._history.setdefault(message.stream, collections.deque(maxlen=self.history_size))
                history.append(Entry(position.offset, message.frame_rest, now_ms, message.extra))
                publication = Publication(message.stream, position.offset, position.epoch)
                if key is not None:
                    self._results[key] = publication
                published.append(publication)
        return published

    def positions(self, streams: Iterable[str]) -> dict[str, Position]:
        """Each stream's top position."""
        with self._lock:
            return {stream: self._top(stream) for stream in streams}

    def recover(self, stream: str, since: Position | None, limit: int) -> Recovery:
        """The entries after ``since``, or ``recovered=False``."""
        with self._lock:
            top = self._top(stream)
            after = since.offset if since is not None else top.offset
            entries = [entry for entry in self._history.get(stream, ()) if entry.offset > after][: limit + 1]
        oldest_ms = int((self.clock() - self.history_seconds) * 1000)
        return recovery_from(stream, since, top, entries, oldest_ms=oldest_ms, limit=limit)

    def recover_many(self, since: dict[str, Position | None], limit: int) -> dict[str, Recovery]:
        """``recover`` for each stream."""
        return {stream: self.recover(stream, position, limit) for stream, position in since.items()}

    def forget(self, stream: str) -> None:
        """Lose the stream's history and position: the next use starts a new epoch."""
        with self._lock:
            self._meta.pop(stream, None)
            self._history.pop(stream, None)

    def _top(self, stream: str) -> Position:
        top = self._meta.get(stream)
        if top is None:
            top = self._meta[stream] = Position(0, new_epoch())
            self._history.pop(stream, None)
        return top
