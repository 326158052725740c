"""The presence of one process's sockets: counted here, written to Redis once a second.

A socket that opens adds its user to each tenant it belongs to (unless the member hides
their presence there); the tracker writes new users at the next tick and every user it
holds at each refresh, well inside the entries' expiry. When a user's last socket here
closes, the leave waits ``PRESENCE_GRACE_SECONDS``: a reload, a reconnect or a new tab
within it keeps the user online without a leave and a join (no flapping).

Each tick is one pipelined script call per Redis host for all the process's tenants
(``PresenceStore.tick``); the diffs it hands back go out as one ephemeral ``presence``
frame per tenant through ``realtime.events``, the one publish path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings

from ..audience import Audience
from ..dbthreads import db_call
from ..events import OutgoingEvent, publish_many
from .services import member_labels, presence_store
from .store import Diff, TenantTick

if TYPE_CHECKING:
    from ..consumers import RealtimeConsumer

logger = logging.getLogger(__name__)

_trackers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceTracker] = weakref.WeakKeyDictionary()


def tracker() -> PresenceTracker:
    """The presence tracker of the running event loop's sockets."""
    loop = asyncio.get_running_loop()
    found = _trackers.get(loop)
    if found is None:
        found = _trackers[loop] = PresenceTracker(process_id(loop))
    return found


def process_id(loop: asyncio.AbstractEventLoop) -> str:
    """A name for this process's entries that no other process (or later run of this one) shares."""
    return f"{os.getpid()}.{id(loop):x}.{uuid.uuid4().hex[:8]}"


class PresenceTracker:
    """Counts sockets per (tenant, user) and keeps the tenant's presence in Redis in step."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.sockets: Counter[tuple[int, int]] = Counter()
        self.counted: dict[int, list[int]] = {}  # id(socket) -> the tenants it was counted in
        self.slugs: dict[int, str] = {}
        self.fresh: dict[int, set[int]] = {}
        self.leaving: dict[tuple[int, int], float] = {}
        self.last_refresh = 0.0
        self.task: asyncio.Task | None = None
        self.failing = False

    # --------------------------------------------------------------------------
    def add(self, socket: RealtimeConsumer) -> None:
        """Count an open socket's user as present in each tenant where they show their presence."""
        tenants = [tenant for tenant in socket.subs.tenants if not tenant.presence_hidden]
        # Tenant 0 counts every socket, hidden or not: "is this user connected at all"
        # (Web Push goes to users who are not); it is never listed or sent to anyone.
        self.counted[id(socket)] = [0, *(tenant.id for tenant in tenants)]
        for tenant_id in self.counted[id(socket)]:
            key = (tenant_id, socket.user.pk)
            self.sockets[key] += 1
            if self.sockets[key] == 1 and self.leaving.pop(key, None) is None:
                self.fresh.setdefault(tenant_id, set()).add(socket.user.pk)
        for tenant in tenants:
            self.slugs[tenant.id] = tenant.slug
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run(), name="realtime-presence")

    def discard(self, socket: RealtimeConsumer) -> None:
        """Stop counting a socket; its user leaves after the grace period if it was their last here."""
        deadline = time.monotonic() + settings.REALTIME["PRESENCE_GRACE_SECONDS"]
        for tenant_id in self.counted.pop(id(socket), []):
            key = (tenant_id, socket.user.pk)
            self.sockets[key] -= 1
            if self.sockets[key] <= 0:
                del self.sockets[key]
                self.fresh.get(tenant_id, set()).discard(socket.user.pk)
                self.leaving[key] = deadline

    # --------------------------------------------------------------------------
    async def run(self) -> None:
        """Tick while anything is present or leaving; a failed tick (Redis down) is retried, logged once."""
        while self.sockets or self.leaving:
            await asyncio.sleep(settings.REALTIME["PRESENCE_THROTTLE_SECONDS"])
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - presence waits for Redis like the sockets do
                if not self.failing:
                    logger.warning("presence tick failed, retrying every tick: %s", error)
                self.failing = True
            else:
                if self.failing:
                    logger.info("presence ticks succeed again")
                self.failing = False

    def due(self, now: float) -> list[TenantTick]:
        """What this process tells the store now: new users, every user at a refresh, leaves past their grace."""
        refresh = now - self.last_refresh >= settings.REALTIME["PRESENCE_REFRESH_SECONDS"]
        present: dict[int, set[int]] = {}
        if refresh:
            for tenant_id, user_id in self.sockets:
                present.setdefault(tenant_id, set()).add(user_id)
        else:
            present = {tenant_id: set(users) for tenant_id, users in self.fresh.items() if users}
        gone: dict[int, list[int]] = {}
        for (tenant_id, user_id), deadline in list(self.leaving.items()):
            if deadline <= now:
                del self.leaving[(tenant_id, user_id)]
                gone.setdefault(tenant_id, []).append(user_id)
        tenants = {tenant_id for tenant_id, _ in self.sockets} | set(gone)
        return [
            TenantTick(tenant_id, sorted(present.get(tenant_id, ())), gone.get(tenant_id, []))
            for tenant_id in sorted(tenants)
        ]

    async def tick(self) -> None:
        """One round of writes and sweeps; the diffs this process was handed go out as presence frames."""
        now = time.monotonic()
        ticks = self.due(now)
        if not ticks:
            return
        was_refresh = now - self.last_refresh >= settings.REALTIME["PRESENCE_REFRESH_SECONDS"]
        fresh, self.fresh = self.fresh, {}
        try:
            diffs = await sync_to_async(presence_store().tick, thread_sensitive=False)(self.process, ticks)
        except BaseException:
            # Nothing was written for sure: write them again next time (leaves included).
            for tenant_id, users in fresh.items():
                self.fresh.setdefault(tenant_id, set()).update(users)
            for tick in ticks:
                for user_id in tick.gone:
                    if (tick.tenant_id, user_id) not in self.sockets:
                        self.leaving.setdefault((tick.tenant_id, user_id), now)
            self.last_refresh = 0.0  # and rewrite everyone: the entries may have expired meanwhile
            raise
        if was_refresh:
            self.last_refresh = now
        if diffs:
            await self.announce(diffs)

    async def announce(self, diffs: list[Diff]) -> None:
        """Send each tenant's diff to its sockets, with the names of who came online."""
        labels = await db_call(member_labels)({diff.tenant_id: list(diff.joined) for diff in diffs})
        events = [
            OutgoingEvent(
                type="presence",
                audience=Audience.tenant_presence(diff.tenant_id),
                data=diff_data(diff, labels.get(diff.tenant_id, {})),
                tenant_id=diff.tenant_id,
                tenant_slug=self.slugs.get(diff.tenant_id),
                durable=False,
            )
            for diff in diffs
        ]
        await sync_to_async(publish_many, thread_sensitive=False)(events)


def diff_data(diff: Diff, labels: dict[int, str]) -> dict[str, Any]:
    """The ``presence`` frame's data for a diff: members a hidden or departed member is left out of."""
    joined = [
        {"user": user_id, "email": labels[user_id], "since_ms": since}
        for user_id, since in sorted(diff.joined.items())
        if user_id in labels  # hidden since, or no longer a member: never listed
    ]
    return {"joined": joined, "left": sorted(diff.left), "full": False, "at_ms": diff.at_ms}
