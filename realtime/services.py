"""What a socket needs: its groups (from the database), its replay (from the streams), its state on connect.

Consumers call these (through ``database_sync_to_async``) and do nothing else with
the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.models import Membership, Tenant
from liveplatform import rawsql
from liveplatform.cache import count_hit

from .audience import PLATFORM_GROUP, tenant_admins_group, tenant_group, user_group
from .events import envelope
from .models import AudienceKind, ConnectionTicket
from .streams import Entry, Position, encode_positions, stream_store


@dataclass
class TenantAccess:
    """One tenant the user belongs to, as the socket sees it."""

    id: int
    slug: str
    name: str
    role: str
    joined_at: datetime
    presence_hidden: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == Membership.Role.ADMIN

    @property
    def audiences(self) -> list[AudienceKind]:
        """The tenant-wide audiences whose events this member may see."""
        return [AudienceKind.TENANT, AudienceKind.TENANT_ADMINS] if self.is_admin else [AudienceKind.TENANT]


@dataclass
class Subscriptions:
    """The groups a user's socket joins and the tenants behind them."""

    user_id: int
    tenants: list[TenantAccess] = field(default_factory=list)

    @property
    def groups(self) -> set[str]:
        groups = {user_group(self.user_id), PLATFORM_GROUP}
        for tenant in self.tenants:
            groups.add(tenant_group(tenant.id))
            if tenant.is_admin:
                groups.add(tenant_admins_group(tenant.id))
        return groups

    @property
    def joined_ms(self) -> dict[str, int]:
        """When the user joined each tenant, by tenant stream, in ms (replay leaves out what came before)."""
        joined = {}
        for tenant in self.tenants:
            ms = int(tenant.joined_at.timestamp() * 1000)
            joined[tenant_group(tenant.id)] = ms
            joined[tenant_admins_group(tenant.id)] = ms
        return joined

    @property
    def slugs_by_id(self) -> dict[int, str]:
        return {tenant.id: tenant.slug for tenant in self.tenants}

    def hello_tenants(self) -> list[dict[str, str]]:
        return [{"slug": t.slug, "name": t.name, "role": t.role} for t in self.tenants]


_MEMBERSHIPS_SQL = (
    f"SELECT m.tenant_id, t.slug, t.name, m.role, m.created_at, m.presence_hidden FROM {Membership._meta.db_table} m"
    f" INNER JOIN {Tenant._meta.db_table} t ON t.id = m.tenant_id WHERE m.user_id = %s ORDER BY t.name, t.id"
)


def subscriptions_for(user: AbstractBaseUser) -> Subscriptions:
    """Read the user's memberships: the source of truth for which groups a socket joins.

    One plain query: every handshake reads this, and the queryset cost ten times the read.
    """
    rows = rawsql.fetch(_MEMBERSHIPS_SQL, [user.pk])
    return Subscriptions(
        user_id=user.pk,
        tenants=[
            TenantAccess(tenant_id, slug, name, role, rawsql.from_db_datetime(joined_at), bool(hidden))
            for tenant_id, slug, name, role, joined_at, hidden in rows
        ],
    )


def stream_visible(subs: Subscriptions, stream: str, entry: Entry) -> bool:
    """Whether a history entry of one of the user's streams is theirs to see on replay.

    A tenant's events from before the user joined are not theirs, and neither are the
    user's own events from a tenant they have since left (``extra`` is its id).
    """
    if stream == user_group(subs.user_id):
        return not entry.extra or int(entry.extra) in {tenant.id for tenant in subs.tenants}
    joined = subs.joined_ms.get(stream)
    return joined is None or entry.published_ms >= joined


@dataclass
class Replay:
    """What a socket is sent on (re)connecting: missed frames, streams to resync, and where it stands after."""

    frames: list[str]
    positions: dict[str, Position]
    resyncs: list[str] = field(default_factory=list)  # resync frames, one per stream not recovered
    lost: list[str] = field(default_factory=list)  # the streams of those frames


def replay(subs: Subscriptions, since: dict[str, Position]) -> Replay:
    """Every durable event after each position the client gave, per stream, in order; or a resync for that stream.

    ``since`` names the streams to replay; a stream whose history was lost (another
    epoch) or no longer reaches back that far is answered with a ``resync`` frame for
    that stream alone (``recovered: false``), and the others still replay. Streams the
    user does not follow are ignored. The positions returned are the streams' tops.
    """
    follows = subs.groups
    wanted = {stream: position for stream, position in since.items() if stream in follows}
    if not wanted:
        return Replay([], {})
    recoveries = stream_store().recover_many(wanted, settings.REALTIME["MAX_REPLAY"])
    result = Replay([], {})
    now = timezone.now()
    for stream, recovery in recoveries.items():
        result.positions[stream] = recovery.top
        if not recovery.recovered:
            reason = "history_lost" if recovery.top.epoch != wanted[stream].epoch else "too_far_behind"
            result.resyncs.append(
                envelope(None, "resync", None, now, {"stream": stream, "reason": reason, **_position(recovery.top)})
            )
            result.lost.append(stream)
            continue
        for entry in recovery.entries:
            if stream_visible(subs, stream, entry):
                result.frames.append(entry.frame(stream, recovery.top.epoch))
    return result


def _position(position: Position) -> dict[str, Any]:
    return {"offset": position.offset, "epoch": position.epoch}


def stream_tops(streams: Iterable[str]) -> dict[str, Position]:
    """Each stream's top position now (pages, heartbeats, new memberships)."""
    return stream_store().positions(streams)


def page_positions(user: AbstractBaseUser) -> str:
    """The resume token of a page: every stream the user follows, at its top, read before the view reads its data."""
    return encode_positions(stream_tops(subscriptions_for(user).groups))


# ------------------------------------------------------------------------------
# State on connect: each app registers what a fresh socket should be told.
# ------------------------------------------------------------------------------
SnapshotProvider = Callable[[AbstractBaseUser, Subscriptions], list[tuple[str, str | None, Any]]]
_snapshot_providers: list[SnapshotProvider] = []


def register_snapshot(provider: SnapshotProvider) -> SnapshotProvider:
    """Register a function giving (type, tenant slug, data) frames a socket gets on connect.

    Apps call this in ``AppConfig.ready()`` for state that is not replayed event by
    event: unread counts, running jobs' progress, active announcements.
    """
    if provider not in _snapshot_providers:
        _snapshot_providers.append(provider)
    return provider


def snapshot_frames(user: AbstractBaseUser, subs: Subscriptions) -> list[str]:
    """The current-state frames for a socket that just connected (ephemeral: no cursor)."""
    now = timezone.now()
    frames = []
    for provider in _snapshot_providers:
        for event_type, tenant_slug, data in provider(user, subs):
            frames.append(envelope(None, event_type, tenant_slug, now, data))
    return frames


def admit_socket(user: AbstractBaseUser) -> Subscriptions | None:
    """The groups a new socket joins, or None when the user is over their handshake limit.

    One trip to the consumers' database thread for both: Channels runs every
    ``database_sync_to_async`` call of a process on one thread, so each hop of a
    handshake queues behind every other socket's (docs/benchmarks.md, profile note 3).
    Browser sockets are admitted before their consumer runs (``realtime.auth``); this is
    for the app route, whose user is known once its ticket is redeemed.
    """
    if not note_connect_attempt(user.pk):
        return None
    return subscriptions_for(user)


@dataclass
class Opening:
    """What a socket is sent once it has joined its groups: hello, replay, current state."""

    hello: str
    replay: Replay
    snapshots: list[str]


def open_session(user: AbstractBaseUser, subs: Subscriptions, since: dict[str, Position]) -> Opening:
    """Read everything a socket is sent on connect: its replay from ``since``, then hello and state.

    The consumer calls this after joining its groups with a position for every stream
    it follows (the client's, or the top read before joining), so an event published
    after that position is in the replay or on its way to the socket's channel.
    """
    result = replay(subs, since)
    return Opening(hello_frame(subs, result.positions), result, snapshot_frames(user, subs))


def hello_frame(subs: Subscriptions, positions: dict[str, Position]) -> str:
    """The first frame of every connection: who you are, your tenants, each stream's position."""
    return envelope(
        None,
        "hello",
        None,
        timezone.now(),
        {
            "user": subs.user_id,
            "tenants": subs.hello_tenants(),
            "positions": {stream: _position(position) for stream, position in positions.items()},
            "heartbeat": settings.REALTIME["HEARTBEAT_SECONDS"],
        },
    )


# ------------------------------------------------------------------------------
# Handshakes per user
# ------------------------------------------------------------------------------
def note_connect_attempt(user_id: int) -> bool:
    """Count one handshake of the user; False once they pass ``CONNECTS_PER_MINUTE`` this minute.

    A fixed one-minute window in the shared cache (Redis), so every web process
    counts together. A reconnect storm from one account (a script, a tab stuck in a
    loop) is refused instead of loading the database with replays. If the cache is
    down the handshake is allowed: the limit must not lock everyone out.
    """
    limit = settings.REALTIME.get("CONNECTS_PER_MINUTE") or 0
    if limit <= 0:
        return True
    key = f"ws-connects:{user_id}:{int(time.time() // 60)}"
    try:
        return count_hit(key, window=61) <= limit
    except Exception:  # noqa: BLE001 - fail open when the cache is unavailable
        return True


def prune(now: datetime | None = None) -> int:
    """Delete spent connection tickets; returns how many (stream history trims itself in Redis)."""
    deleted, _ = ConnectionTicket.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted
