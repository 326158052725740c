"""A pump's own Redis connection, and its one request packed once.

The pump (``realtime.layers.pump``) pops its queue once per event when events come one
at a time, as per-user notifications do. Through redis-py's client each pop built a
pipeline, took a connection from the pool and gave it back, packed both commands
again and ran them under a timeout: more than half of a web process's CPU per
delivered per-user event (py-spy, docs/benchmarks.md). A ``QueuePopper`` takes one
connection from the host's pool for as long as its pump runs, packs the pipelined
``BZPOPMIN`` + ``ZPOPMIN`` once, and per pop sends those bytes and reads the two
replies. The connection is redis-py's own (AUTH, SELECT, TLS and the reply parser
are as configured for the pool); it goes back to the pool, disconnected if a pop
failed, when the pump stops.
"""

from __future__ import annotations

from typing import Any


class QueuePopper:
    """Pops one Redis sorted-set queue, oldest first: waits (bounded) for one member, takes up to a batch."""

    def __init__(self, client: Any, key: str, batch: int, timeout: float) -> None:
        self.pool = client.connection_pool
        self.key = key
        self.batch = batch
        self.timeout = timeout
        self.connection: Any = None
        self.request: list[bytes] = []
        self.failed = False

    async def pop(self) -> list[bytes]:
        """The members popped, oldest first; ``[]`` when none came within the timeout."""
        if self.connection is None:
            self.connection = await self.pool.get_connection()
            self.request = self.connection.pack_commands(
                [("BZPOPMIN", self.key, self.timeout), ("ZPOPMIN", self.key, self.batch - 1)]
            )
        try:
            await self.connection.send_packed_command(self.request, check_health=False)
            first = await self.connection.read_response()
            rest = await self.connection.read_response()
        except BaseException:
            # A pop cut short (an error, or the pump cancelled mid-read) leaves a reply
            # unread on the connection: it must not serve anyone again as it is.
            self.failed = True
            raise
        # BZPOPMIN: (key, member, score) or nil; ZPOPMIN: member, score, member, score, …
        return ([] if first is None else [first[1]]) + list(rest[0::2])

    async def close(self) -> None:
        """Give the connection back to the pool (disconnected after a failed pop)."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        if self.failed:
            # Without waiting: a second cancellation (a process stopping) must not skip the release.
            await connection.disconnect(nowait=True)
        await self.pool.release(connection)
