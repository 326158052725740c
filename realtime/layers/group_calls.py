"""What callers use to send to and join groups on any channel layer: batched where the layer can.

The publish path (``realtime.events``) and the consumer call these instead of the
layer's methods, so the same code runs on the pumped layer (batches), the fan-out
layer and Channels' in-memory layer (one call each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any


async def send_to_groups(layer: Any, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """``group_send`` each ``(group, message)`` in order.

    A layer that coalesces (``coalesces_group_sends``) gets every call at once and
    sends them as one batch, in call order; any other layer gets them one by one.
    """
    if getattr(layer, "coalesces_group_sends", False):
        outcomes = await asyncio.gather(
            *(layer.group_send(group, message) for group, message in messages), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return
    for group, message in messages:
        await layer.group_send(group, message)


async def join_groups(layer: Any, groups: Iterable[str], channel: str) -> None:
    """Add ``channel`` to every group: in one batch if the layer can, else one by one."""
    await _for_each_group(layer, "group_add", groups, channel)


async def leave_groups(layer: Any, groups: Iterable[str], channel: str) -> None:
    """Remove ``channel`` from every group: in one batch if the layer can, else one by one."""
    await _for_each_group(layer, "group_discard", groups, channel)


async def _for_each_group(layer: Any, method: str, groups: Iterable[str], channel: str) -> None:
    batched = getattr(layer, f"{method}_many", None)
    if batched is not None:
        await batched(groups, channel)
        return
    for group in groups:
        await getattr(layer, method)(group, channel)
