"""Receiving for the default layer: one pump per event loop pops the process's messages.

The part of ``PumpedRedisChannelLayer`` (``realtime.layers.pumped``) that receives.
The pump pops this process's Redis queue in bulk and hands each message to its
channel: onto the queue a consumer's ``receive`` waits on, or straight to the
function of an attached channel. A group message (one per process, see
``realtime.layers.membership``) goes to every local member of its group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .membership import ProcessGroupsLayer

logger = logging.getLogger(__name__)


class _ReceiveFailed:
    """Put on each waiting channel's queue when the process's receive loop hits an error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class PumpLayer(ProcessGroupsLayer):
    """``ProcessGroupsLayer`` whose messages one task per event loop receives, for every channel at once.

    A part of ``PumpedRedisChannelLayer``: that class adds the batched sending.
    """

    # The most messages the pump takes from Redis in one round trip.
    PUMP_BATCH = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pumps: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}
        self._attached: dict[str, tuple[Callable[[dict], None], Callable[[BaseException], None]]] = {}

    async def attach(
        self,
        channel: str,
        deliver: Callable[[dict[str, Any]], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        """Hand every message for ``channel`` to ``deliver`` as the pump takes it, instead of queueing it.

        ``deliver`` runs on the event loop, synchronously, once per message and socket:
        it must not block. Messages of a group send are one dict shared by every local
        member: ``deliver`` must not change it, beyond caching what it derives from it
        (the consumer keeps the encoded frame there). If the pump fails (Redis gone),
        ``fail`` gets the error, as a waiting ``receive`` would. ``receive`` is not used
        for an attached channel.
        """
        assert self.is_local(channel), "Only this process's channels can be attached"
        self._attached[channel] = (deliver, fail)
        self.receive_buffer.pop(channel, None)
        self._ensure_pump(self.non_local_name(channel))

    async def detach(self, channel: str) -> None:
        """Stop handing messages to an attached channel (its socket has closed)."""
        self._attached.pop(channel, None)

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:  # a plain channel name: no process-wide pop involved
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        queue = self.receive_buffer[channel]
        self._ensure_pump(self.non_local_name(channel))
        try:
            item = await queue.get()
        except asyncio.CancelledError:
            # This consumer has gone; so have the messages still queued for it.
            if self.receive_buffer.get(channel) is queue:
                del self.receive_buffer[channel]
            raise
        if isinstance(item, _ReceiveFailed):
            raise item.error
        return item

    def _ensure_pump(self, process_channel: str) -> None:
        loop = asyncio.get_running_loop()
        pump = self._pumps.get(loop)
        if pump is None or pump.done():
            for stale in [other for other, task in self._pumps.items() if task.done()]:
                del self._pumps[stale]
            self._pumps[loop] = loop.create_task(self._pump(process_channel), name="channel-layer-pump")

    async def _pump(self, process_channel: str) -> None:
        """Pop this process's messages, oldest first, and hand each to its channel(s)."""
        try:
            while True:
                for content in await self._pop_many(process_channel):
                    self._dispatch(self.deserialize(content))
                await self._maintain()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - handed to every waiting receive
            logger.warning("channel layer receive failed: %r", error)
            for queue in list(self.receive_buffer.values()):
                queue.put_nowait(_ReceiveFailed(error))
            for _, fail in list(self._attached.values()):
                fail(error)

    def _dispatch(self, message: dict[str, Any]) -> None:
        group = message.pop("__asgi_group__", None)
        if group is not None:
            targets: Iterable[str] = tuple(self._local_groups.get(group, ()))
        else:
            target = message.pop("__asgi_channel__")
            targets = target if isinstance(target, list) else [target]
        attached = self._attached
        for channel in targets:
            handlers = attached.get(channel)
            if handlers is None:
                self.receive_buffer[channel].put_nowait(message)
                continue
            try:
                handlers[0](message)
            except Exception:
                logger.exception("delivering a message to channel %s failed", channel)

    async def _pop_many(self, process_channel: str) -> list[bytes]:
        """Up to ``PUMP_BATCH`` of this process's messages, oldest first; waits (bounded) for one.

        channels-redis's ``receive_single`` spends four round trips on each message (a
        clean-up script, BZPOPMIN, a backup copy, removing the backup) to survive a
        receive cancelled mid-pop. The pump is only cancelled when its process stops,
        when its sockets are closing anyway, so it pops in bulk: at 2,000 sockets the
        one-at-a-time pump fell behind by 24,000 messages in two minutes (the soak,
        docs/reliability.md). One pipelined round trip per pop: BZPOPMIN waits for the
        oldest message (at once under load), then ZPOPMIN takes up to a batch queued
        behind it. Popping with ZPOPMIN first and BZPOPMIN only when that found nothing
        cost two round trips per message at the rates a notification API sees (one event
        every few milliseconds, each arriving to an empty queue).
        """
        key = self.prefix + process_channel
        pipe = self.connection(self.consistent_hash(process_channel)).pipeline(transaction=False)
        # One round trip: wait (bounded) for the oldest message, then take what queued behind it.
        pipe.bzpopmin(key, timeout=self.brpop_timeout)
        pipe.zpopmin(key, self.PUMP_BATCH - 1)
        first, rest = await pipe.execute()
        return ([] if first is None else [first[1]]) + [content for content, _score in rest]

    async def close_pools(self) -> None:
        """Stop this loop's pump before its connections go, then close them."""
        pump = self._pumps.pop(asyncio.get_running_loop(), None)
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        await super().close_pools()
