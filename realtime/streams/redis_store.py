"""The stream store on Redis, sharded the way the channel layer shards its groups.

One Lua script per publish (``lua/stream_publish.lua``) bumps the stream's offset in its
meta hash (creating an epoch if the history was lost), appends the event to the
stream's capped history, and queues it for every member of the stream's channel-layer
group, all on the Redis host that owns the group (``channels_redis``'s consistent hash
of the group name over ``CHANNEL_LAYER_REDIS_URLS``). So a durable publish is one
atomic round trip on one host, with no lock shared by the platform: producers of
different streams never wait for each other, and producers of one stream are ordered
by Redis itself.

The clients are synchronous and kept per process: a sync caller (a view, a Celery
task) pays no event loop per call, and redis-py's pool notices a fork (a Celery
prefork child) and opens its own connections there.
"""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import redis
from channels_redis.utils import _consistent_hash

from .base import Entry, Position, Publication, Recovery, StreamMessage, new_epoch, recovery_from

_LUA = Path(__file__).with_name("lua")
PUBLISH_SCRIPT = (_LUA / "stream_publish.lua").read_text()
READ_SCRIPT = (_LUA / "stream_read.lua").read_text()


class _Script:
    """A Lua script run by its SHA: one round trip, loaded again if Redis forgot it (a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, client: redis.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def run_many(self, client: redis.Redis, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Each call in one pipelined round trip; if Redis forgot the script, no call ran, so all run again."""
        if len(calls) == 1:
            return [self.run(client, *calls[0])]
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
                client.script_load(self.source)
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies
        raise AssertionError("unreachable")


_publish = _Script(PUBLISH_SCRIPT)
_read = _Script(READ_SCRIPT)


class RedisStreamStore:
    """Streams on the channel layer's Redis hosts, each on the host that holds its group."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        history_size: int = 1000,
        history_seconds: int = 86400,
        key_prefix: str = "streams",
        layer_prefix: str = "asgi",
        group_expiry: int = 86400,
        message_expiry: int = 60,
        capacity: int = 100_000,
        idempotency_seconds: int = 86400,
        socket_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.urls = list(urls)
        self.history_size = history_size
        self.history_seconds = history_seconds
        self.key_prefix = key_prefix
        self.layer_prefix = layer_prefix
        self.group_expiry = group_expiry
        self.message_expiry = message_expiry
        self.capacity = capacity
        self.idempotency_seconds = idempotency_seconds
        self.clock = clock  # publish time as stored in the history (tests age entries with it)
        self.clients = [
            redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
            for url in self.urls
        ]

    # --------------------------------------------------------------------------
    @property
    def queues_for_groups(self) -> bool:
        """Whether a publish also queues the event for its group's members (the layer keeps groups in this Redis)."""
        return bool(self.layer_prefix)

    def shard(self, stream: str) -> int:
        """The index of the Redis host that owns ``stream``: the channel layer's host for its group."""
        return _consistent_hash(stream, len(self.clients))

    def _meta_key(self, stream: str) -> str:
        return f"{self.key_prefix}:{{{stream}}}:meta"

    def _history_key(self, stream: str) -> str:
        return f"{self.key_prefix}:{{{stream}}}:history"

    def _result_key(self, stream: str, idempotency_key: str | None) -> str:
        return f"{self.key_prefix}:{{{stream}}}:result:{idempotency_key or ''}"

    def _group_key(self, stream: str) -> str:
        return f"{self.layer_prefix}:group:{stream}"

    # --------------------------------------------------------------------------
    def publish(self, message: StreamMessage) -> Publication:
        """Append one message to its stream and queue it for the stream's group: one round trip."""
        client = self.clients[self.shard(message.stream)]
        return self._publication(message, _publish.run(client, *self._publish_call(message)))

    def publish_many(self, messages: Sequence[StreamMessage]) -> list[Publication]:
        """Append each message to its stream, in order per stream; one pipelined round trip per host."""
        if len(messages) == 1:
            return [self.publish(messages[0])]
        by_shard: dict[int, list[int]] = collections.defaultdict(list)
        for index, message in enumerate(messages):
            by_shard[self.shard(message.stream)].append(index)
        published: list[Publication | None] = [None] * len(messages)
        for shard, indexes in by_shard.items():
            calls = [self._publish_call(messages[index]) for index in indexes]
            for index, reply in zip(indexes, _publish.run_many(self.clients[shard], calls), strict=True):
                published[index] = self._publication(messages[index], reply)
        return published  # type: ignore[return-value]

    def _publish_call(self, message: StreamMessage) -> tuple[list[str], list[Any]]:
        keys = [
            self._meta_key(message.stream),
            self._history_key(message.stream),
            self._group_key(message.stream),
            self._result_key(message.stream, message.idempotency_key),
        ]
        args = [
            new_epoch(),
            self.history_size if message.durable else 0,
            self.history_seconds,
            repr(self.clock()),
            message.stream,
            message.frame_rest,
            message.event_type,
            message.extra,
            self.layer_prefix,
            self.group_expiry,
            self.message_expiry,
            self.capacity,
            self.idempotency_seconds if message.idempotency_key else 0,
        ]
        return keys, args

    @staticmethod
    def _publication(message: StreamMessage, reply: list[Any]) -> Publication:
        offset, epoch, duplicate, dropped = reply
        return Publication(message.stream, int(offset), _text(epoch), bool(duplicate), int(dropped))

    # --------------------------------------------------------------------------
    def positions(self, streams: Iterable[str]) -> dict[str, Position]:
        """Each stream's top position, one pipelined round trip per host."""
        streams = list(dict.fromkeys(streams))
        by_shard: dict[int, list[str]] = collections.defaultdict(list)
        for stream in streams:
            by_shard[self.shard(stream)].append(stream)
        found: dict[str, Position] = {}
        for shard, names in by_shard.items():
            calls = [self._read_call(stream, since=-1) for stream in names]
            for stream, (top, epoch, _) in zip(names, _read.run_many(self.clients[shard], calls), strict=True):
                found[stream] = Position(int(top), _text(epoch))
        return {stream: found[stream] for stream in streams}

    def recover(self, stream: str, since: Position | None, limit: int) -> Recovery:
        """The entries after ``since``, or ``recovered=False`` if the history no longer has them all."""
        return self.recover_many({stream: since}, limit)[stream]

    def recover_many(self, since: dict[str, Position | None], limit: int) -> dict[str, Recovery]:
        """``recover`` for several streams: one pipelined round trip per host (a socket's handshake)."""
        by_shard: dict[int, list[str]] = collections.defaultdict(list)
        for stream in since:
            by_shard[self.shard(stream)].append(stream)
        oldest_ms = int((self.clock() - self.history_seconds) * 1000)
        found: dict[str, Recovery] = {}
        for shard, streams in by_shard.items():
            calls = [
                self._read_call(stream, since=-1 if since[stream] is None else since[stream].offset, limit=limit + 1)
                for stream in streams
            ]
            for stream, (top, epoch, raw) in zip(streams, _read.run_many(self.clients[shard], calls), strict=True):
                entries = [_entry(entry_id, fields) for entry_id, fields in raw]
                top_position = Position(int(top), _text(epoch))
                found[stream] = recovery_from(
                    stream, since[stream], top_position, entries, oldest_ms=oldest_ms, limit=limit
                )
        return {stream: found[stream] for stream in since}

    def _read_call(self, stream: str, *, since: int, limit: int = 0) -> tuple[list[str], list[Any]]:
        return (
            [self._meta_key(stream), self._history_key(stream)],
            [since, limit, new_epoch(), self.history_seconds],
        )

    def published_per_minute(self, minutes: int, now: float | None = None) -> list[int]:
        """Durable events published in each of the last ``minutes`` minutes, oldest first, all hosts together.

        The last is the minute now running (so far).
        """
        current = int((self.clock() if now is None else now) // 60)
        keys = [f"{self.key_prefix}:published:{minute}" for minute in range(current - minutes + 1, current + 1)]
        totals = [0] * minutes
        for client in self.clients:
            for index, value in enumerate(client.mget(keys)):
                totals[index] += int(value or 0)
        return totals

    def forget(self, stream: str) -> None:
        """Lose the stream's history and position: the next use starts a new epoch."""
        self.clients[self.shard(stream)].delete(self._meta_key(stream), self._history_key(stream))

    def close(self) -> None:
        """Close every kept connection (tests; a process exits without it)."""
        for client in self.clients:
            client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(entry_id: bytes, fields: list[bytes] | dict[bytes, bytes]) -> Entry:
    if isinstance(fields, list):  # EVAL returns a stream entry's fields as a flat list
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return Entry(
        offset=int(_text(entry_id).split("-", 1)[0]),
        frame_rest=_text(fields[b"d"]),
        published_ms=int(fields[b"t"]),
        extra=_text(fields.get(b"x", b"")),
    )
