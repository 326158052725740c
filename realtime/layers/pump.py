"""Receiving for the default layer: one pump per event loop and channel prefix pops the process's messages.

The part of ``PumpedRedisChannelLayer`` (``realtime.layers.pumped``) that receives.
A pump pops one of this process's Redis queues in bulk and hands each message to its
channel: onto the queue a consumer's ``receive`` waits on, or straight to the
function of an attached channel. A group message (one per process, see
``realtime.layers.membership``) goes to every local member of its group.

Each prefix given to ``new_channel`` is a queue of its own in Redis
(``<prefix>.<process>!``), so each gets its own pump: the sockets' (``specific``)
and, beside it, one for ``/readyz``'s ``readyz.`` channels, for instance.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .membership import ProcessGroupsLayer
from .popping import QueuePopper

logger = logging.getLogger(__name__)


class ForeignChannel(ValueError):
    """``receive()`` or ``attach()`` of a channel another process made: its messages are that process's to take."""


class ReceiveAborted(RuntimeError):
    """A ``receive()`` was waiting when the layer was flushed or closed: nothing it waited for will come."""


class _ReceiveFailed:
    """Put on each waiting channel's queue when the process's receive loop hits an error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class PumpLayer(ProcessGroupsLayer):
    """``ProcessGroupsLayer`` whose messages one task per event loop and channel prefix receives, for all its channels.

    A part of ``PumpedRedisChannelLayer``: that class adds the batched sending.
    """

    # The most messages the pump takes from Redis in one round trip.
    PUMP_BATCH = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # By event loop and the queue it pops (``<prefix>.<process>!``, one per channel prefix).
        # One pump per event loop, queue and Redis host it pops (see _ensure_pump).
        self._pumps: dict[tuple[asyncio.AbstractEventLoop, str, int], asyncio.Task] = {}
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
        ``fail`` gets the error, as a waiting ``receive`` would; after ``flush`` it gets
        ``ReceiveAborted``. ``receive`` is not used for an attached channel. Raises
        ``ForeignChannel`` for a channel this process did not make.
        """
        self.require_own_channel(channel)
        self._attached[channel] = (deliver, fail)
        self.receive_buffer.pop(channel, None)
        self._ensure_pump(self.non_local_name(channel))

    async def detach(self, channel: str) -> None:
        """Stop handing messages to an attached channel (its socket has closed)."""
        self._attached.pop(channel, None)

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message for ``channel``, from the pump of its prefix (channels-redis's own pop for a plain name).

        Raises ``ForeignChannel`` for a process-specific channel another process made
        (channels-redis asserts it): popping that process's queue here would take the
        messages of all its channels. Raises ``ReceiveAborted`` if the layer is flushed
        or closed while this waits.
        """
        if "!" not in channel:  # a plain channel name: no process-wide pop involved
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        self.require_own_channel(channel)
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
        if queue.empty() and self.receive_buffer.get(channel) is queue:
            # As channels-redis does: a channel received from once (a /readyz check) leaves nothing behind.
            del self.receive_buffer[channel]
        return item

    def require_own_channel(self, channel: str) -> None:
        """Raise ``ForeignChannel`` unless this layer's ``new_channel`` made ``channel`` (any prefix)."""
        if not self.non_local_name(channel).endswith(self.client_prefix + "!"):
            raise ForeignChannel(f"{channel!r} belongs to another process; only that process receives it")

    def _ensure_pump(self, process_channel: str) -> None:
        """Start the pumps of one of this process's queues on this loop, if they are not running.

        The queue groups send to (``process_channel``) is popped on *every* Redis host:
        a stream's publish script queues its events on the host that owns the stream
        (``realtime.streams``), so with several hosts this process's events arrive on
        each of them, each host's in order. Any other queue (another prefix's) is
        popped on its own host, where channels-redis sends to it.
        """
        loop = asyncio.get_running_loop()
        if process_channel == self.process_channel:
            hosts: Iterable[int] = range(self.ring_size)
        else:
            hosts = [self.consistent_hash(process_channel)]
        for index in hosts:
            key = (loop, process_channel, index)
            pump = self._pumps.get(key)
            if pump is None or pump.done():
                for stale in [other for other, task in self._pumps.items() if task.done()]:
                    del self._pumps[stale]
                self._pumps[key] = loop.create_task(
                    self._pump(process_channel, index), name=f"channel-layer-pump {process_channel} host {index}"
                )

    async def _pump(self, process_channel: str, index: int) -> None:
        """Pop one of this process's queues on one host, oldest first, and hand each message to its channel(s).

        channels-redis's ``receive_single`` spends four round trips on each message (a
        clean-up script, BZPOPMIN, a backup copy, removing the backup) to survive a
        receive cancelled mid-pop. The pump is only cancelled when its process stops,
        when its sockets are closing anyway, so it pops in bulk: at 2,000 sockets the
        one-at-a-time pump fell behind by 24,000 messages in two minutes (the soak,
        docs/reliability.md). One pipelined round trip per pop on a connection of the
        pump's own (``QueuePopper``): BZPOPMIN waits for the oldest message (at once under
        load), then ZPOPMIN takes up to a batch queued behind it. Popping with ZPOPMIN
        first and BZPOPMIN only when that found nothing cost two round trips per message
        at the rates a notification API sees (one event every few milliseconds, each
        arriving to an empty queue).
        """
        # The queue this process's groups send to keeps its memberships, from its own host's pump.
        maintains = process_channel == self.process_channel and index == self.consistent_hash(process_channel)
        popper = QueuePopper(self.connection(index), self.prefix + process_channel, self.PUMP_BATCH, self.brpop_timeout)
        try:
            while True:
                for content in await popper.pop():
                    self._dispatch(self.deserialize(content))
                if maintains:
                    await self._maintain()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - handed to every waiting receive
            logger.warning("channel layer receive failed: %r", error)
            self._fail_receivers(error, process_channel)
        finally:
            await popper.close()

    def _fail_receivers(self, error: BaseException, process_channel: str) -> None:
        """Hand ``error`` to every receive and attached channel served by the pump of ``process_channel``."""
        for channel, queue in list(self.receive_buffer.items()):
            if self.non_local_name(channel) == process_channel:
                queue.put_nowait(_ReceiveFailed(error))
        for channel, (_, fail) in list(self._attached.items()):
            if self.non_local_name(channel) == process_channel:
                fail(error)

    def _abort_receivers(self, error: BaseException) -> None:
        """Drop every queued message and attached channel; wake each waiting receive with ``error``."""
        queues, self.receive_buffer = self.receive_buffer, collections.defaultdict(self.receive_buffer.default_factory)
        for queue in queues.values():
            queue.put_nowait(_ReceiveFailed(error))
        attached, self._attached = self._attached, {}
        for _, fail in attached.values():
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

    async def flush(self) -> None:
        """channels-redis's flush, and this process's side of it: no message, channel or group is left.

        This loop's pumps stop first (nothing is popped into the buffers meanwhile);
        then every key goes and the connections close; then each waiting ``receive``
        raises ``ReceiveAborted`` and each attached channel's ``fail`` gets it. The next
        ``receive`` or ``attach`` starts a pump again.
        """
        await self._stop_pumps()
        await super().flush()
        self._abort_receivers(ReceiveAborted("the channel layer was flushed"))

    async def close_pools(self) -> None:
        """Stop this loop's pumps before their connections go, then close them.

        A ``receive`` still waiting on a stopped pump raises ``ReceiveAborted``: nothing
        would pop its messages any more. (channels-redis's own receive, for a plain
        channel name, raises the closed connection's error.)
        """
        for process_channel in await self._stop_pumps():
            self._fail_receivers(ReceiveAborted("the channel layer's connections were closed"), process_channel)
        await super().close_pools()

    async def _stop_pumps(self) -> list[str]:
        """Cancel this loop's pumps and wait for them; the queues they popped."""
        loop = asyncio.get_running_loop()
        stopping = {key: task for key, task in self._pumps.items() if key[0] is loop}
        for key, task in stopping.items():
            del self._pumps[key]
            task.cancel()
        await asyncio.gather(*stopping.values(), return_exceptions=True)
        return list(dict.fromkeys(process_channel for _, process_channel, _ in stopping))
