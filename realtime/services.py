"""What a socket needs from the database: its groups, its replay, its state on connect.

Consumers call these (through ``database_sync_to_async``) and do nothing else with
the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import Membership, Tenant
from liveplatform import rawsql
from liveplatform.cache import count_hit

from .audience import PLATFORM_GROUP, tenant_admins_group, tenant_group, user_group
from .events import envelope, event_to_frame
from .models import AudienceKind, ConnectionTicket, Event, RetentionMark, SendMark


@dataclass
class TenantAccess:
    """One tenant the user belongs to, as the socket sees it."""

    id: int
    slug: str
    name: str
    role: str
    joined_at: datetime

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
    def slugs_by_id(self) -> dict[int, str]:
        return {tenant.id: tenant.slug for tenant in self.tenants}

    def hello_tenants(self) -> list[dict[str, str]]:
        return [{"slug": t.slug, "name": t.name, "role": t.role} for t in self.tenants]


_MEMBERSHIPS_SQL = (
    f"SELECT m.tenant_id, t.slug, t.name, m.role, m.created_at FROM {Membership._meta.db_table} m"
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
            TenantAccess(tenant_id, slug, name, role, rawsql.from_db_datetime(joined_at))
            for tenant_id, slug, name, role, joined_at in rows
        ],
    )


def visible_events_filter(subs: Subscriptions) -> Q:
    """Events this user may see: their own, their tenants' since they joined, and platform-wide.

    Tenant events from before the user joined are excluded, and so are the user's own
    events from a tenant they have since left.
    """
    tenant_ids = [t.id for t in subs.tenants]
    visible = Q(audience=AudienceKind.PLATFORM) | Q(
        Q(tenant_id__isnull=True) | Q(tenant_id__in=tenant_ids), audience=AudienceKind.USER, user_id=subs.user_id
    )
    for tenant in subs.tenants:
        visible |= Q(audience__in=tenant.audiences, tenant_id=tenant.id, created_at__gte=tenant.joined_at)
    return visible


def latest_cursor() -> int:
    """The newest cursor on the server (0 when no event was ever stored)."""
    return Event.objects.aggregate(latest=Max("id"))["latest"] or 0


def latest_cursor_for(subs: Subscriptions) -> int:
    """The newest cursor this user may see; heartbeats carry it so clients notice a gap.

    Every socket asks this on every beat, so it must not grow with the history: one
    ``MAX`` over ``visible_events_filter`` reads every event of the user's tenants. Each
    audience instead takes its newest row from its own index (a seek backwards), and
    the newest of those wins.

    Only events already handed to the channel layer count (the send mark): a batch of
    a thousand notifications is stored at once but sent one by one, and a client told
    of an event still on its way would take it for a gap and ask for a replay.
    """
    sent = Event.objects.all()
    sent_through = SendMark.objects.filter(pk=1).values_list("sent_through", flat=True).first()
    if sent_through is not None:
        sent = sent.filter(id__lte=sent_through)
    newest = [
        sent.filter(audience=AudienceKind.PLATFORM).order_by("-id").values_list("id", flat=True).first(),
        sent.filter(
            Q(tenant_id__isnull=True) | Q(tenant_id__in=[t.id for t in subs.tenants]),
            audience=AudienceKind.USER,
            user_id=subs.user_id,
        )
        .order_by("-id")
        .values_list("id", flat=True)
        .first(),
    ]
    for tenant in subs.tenants:
        for kind in tenant.audiences:
            row = (
                sent.filter(tenant_id=tenant.id, audience=kind).order_by("-id").values_list("id", "created_at").first()
            )
            # Events from before the user joined are not theirs; a newest row that old
            # means nothing of this audience is (cursor order is publish order).
            if row and row[1] >= tenant.joined_at:
                newest.append(row[0])
    return max((cursor for cursor in newest if cursor), default=0)


@dataclass
class Replay:
    """What a reconnecting socket is sent: the missed frames, or an order to resync."""

    frames: list[str]
    cursor: int
    resync: bool = False
    reason: str = ""


def replay_after(subs: Subscriptions, after: int, newest: int | None = None) -> Replay:
    """Every durable event this user may see after ``after``, in order, or a resync.

    A cursor older than the retention window (its events may be pruned), from the
    future (the server's history was reset) or too far behind to replay at once
    yields a resync: the client reloads its state instead of trusting a gap.
    """
    store_newest, pruned_through = cursor_and_retention()
    return _replay(subs, after, store_newest if newest is None else newest, pruned_through)


_CURSOR_SQL = (
    f"SELECT (SELECT MAX(id) FROM {Event._meta.db_table}),"
    f" (SELECT pruned_through FROM {RetentionMark._meta.db_table} WHERE id = 1)"
)


def cursor_and_retention() -> tuple[int, int]:
    """The newest cursor on the server and how far events were pruned, in one query."""
    newest, pruned_through = rawsql.fetch(_CURSOR_SQL)[0]
    return newest or 0, pruned_through or 0


def visible_events_sql(subs: Subscriptions) -> tuple[str, list[Any]]:
    """``visible_events_filter`` as an SQL condition on the event table's columns, for the replay's plain query.

    The same rule clause by clause (tests/realtime/test_handshake_replay.py holds the two
    together); the replay runs on every reconnect, and compiling the ``Q`` cost more than
    the query.
    """
    e = Event._meta.db_table  # columns qualified: the replay joins the tenant table
    tenant_ids = [t.id for t in subs.tenants]
    own_tenants = f" OR {e}.tenant_id IN ({rawsql.placeholders(tenant_ids)})" if tenant_ids else ""
    clauses = [
        f"{e}.audience = %s",
        f"({e}.audience = %s AND {e}.user_id = %s AND ({e}.tenant_id IS NULL{own_tenants}))",
    ]
    # Plain strings, not the enum members: every database driver binds those.
    params: list[Any] = [AudienceKind.PLATFORM.value, AudienceKind.USER.value, subs.user_id, *tenant_ids]
    for tenant in subs.tenants:
        kinds = [kind.value for kind in tenant.audiences]
        clauses.append(
            f"({e}.audience IN ({rawsql.placeholders(kinds)}) AND {e}.tenant_id = %s AND {e}.created_at >= %s)"
        )
        params += [*kinds, tenant.id, rawsql.to_db_datetime(tenant.joined_at)]
    return "(" + " OR ".join(clauses) + ")", params


def _replay(subs: Subscriptions, after: int, newest: int, pruned_through: int) -> Replay:
    if after < pruned_through:
        return Replay([], newest, resync=True, reason="cursor_expired")
    if after > newest:
        return Replay([], newest, resync=True, reason="cursor_unknown")
    limit = settings.REALTIME["MAX_REPLAY"]
    e = Event._meta.db_table
    visible, params = visible_events_sql(subs)
    rows = rawsql.fetch(
        f"SELECT {e}.id, {e}.type, t.slug, {e}.data, {e}.created_at FROM {e}"
        f" LEFT JOIN {Tenant._meta.db_table} t ON t.id = {e}.tenant_id"
        f" WHERE {e}.id > %s AND {visible} ORDER BY {e}.id LIMIT %s",
        [after, *params, limit + 1],
    )
    if len(rows) > limit:
        return Replay([], newest, resync=True, reason="too_many_missed")
    # The frame event_to_frame builds for the same row: replayed and live frames are identical.
    frames = [
        envelope(event_id, event_type, slug, rawsql.from_db_datetime(created_at), rawsql.from_db_json(data))
        for event_id, event_type, slug, data, created_at in rows
    ]
    return Replay(frames, rows[-1][0] if rows else after)


def missing_frames(subs: Subscriptions, after: int, through: int, delivered: set[int]) -> list[str]:
    """Frames of events in ``(after, through]`` this user may see but the socket never got.

    channels-redis drops group messages for a channel over capacity without telling
    anyone; the heartbeat calls this to find and resend what was dropped.
    """
    limit = settings.REALTIME["MAX_REPLAY"]
    ids = list(
        Event.objects.filter(visible_events_filter(subs), id__gt=after, id__lte=through)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    missing = [event_id for event_id in ids if event_id not in delivered]
    if not missing:
        return []
    events = Event.objects.filter(id__in=missing).select_related("tenant").order_by("id")
    return [event_to_frame(event, event.tenant.slug if event.tenant else None) for event in events]


@dataclass
class DeliveryCheck:
    """What one heartbeat found: frames the layer dropped, and the newest cursor for the ping."""

    frames: list[str]
    cursor: int


def check_delivery(subs: Subscriptions, after: int, through: int, delivered: set[int]) -> DeliveryCheck:
    """The heartbeat's database work in one thread hop: dropped frames, then the newest cursor.

    Every socket beats, so at thousands of sockets these hops are most of a server's
    database traffic; one hop instead of two halves the queueing on the database thread.
    """
    frames = missing_frames(subs, after, through, delivered) if through > after else []
    return DeliveryCheck(frames, latest_cursor_for(subs))


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
    cursor: int
    replay: Replay | None
    snapshots: list[str]


def open_session(user: AbstractBaseUser, subs: Subscriptions, after: int | None) -> Opening:
    """Read everything a socket is sent on connect in one trip to the database thread.

    The consumer calls this after joining its groups, so an event committed after
    these reads is already on its way to the socket's channel.
    """
    cursor, pruned_through = cursor_and_retention()
    replay = _replay(subs, after, cursor, pruned_through) if after is not None else None
    return Opening(hello_frame(subs, cursor), cursor, replay, snapshot_frames(user, subs))


def hello_frame(subs: Subscriptions, cursor: int) -> str:
    """The first frame of every connection: who you are, your tenants, the server's cursor."""
    return envelope(
        None,
        "hello",
        None,
        timezone.now(),
        {
            "user": subs.user_id,
            "tenants": subs.hello_tenants(),
            "cursor": cursor,
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
    """Delete events past retention and spent tickets; move the retention mark."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.REALTIME["RETENTION_SECONDS"])
    with transaction.atomic():
        newest_pruned = Event.objects.filter(created_at__lt=cutoff).aggregate(m=Max("id"))["m"]
        deleted = 0
        if newest_pruned:
            deleted, _ = Event.objects.filter(id__lte=newest_pruned).delete()
            mark, _ = RetentionMark.objects.select_for_update().get_or_create(pk=1)
            mark.pruned_through = max(mark.pruned_through, newest_pruned)
            mark.save()
        ConnectionTicket.objects.filter(expires_at__lt=now).delete()
    return deleted
