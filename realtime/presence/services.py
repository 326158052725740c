"""Reading presence for pages, the API and the tracker, always through tenant membership."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import Membership

from ..audience import Audience, tenant_group, tenant_presence_group
from ..events import envelope, send_control
from ..streams import stream_store
from .store import PresenceStore


@functools.cache
def presence_store() -> PresenceStore:
    """The process's presence store: the stream store's Redis clients, each tenant on its stream's host."""
    streams = stream_store()
    return PresenceStore(
        streams.clients,
        lambda tenant_id: streams.shard(tenant_group(tenant_id)),
        key_prefix=f"{settings.REALTIME['STREAM_KEY_PREFIX']}:presence",
        ttl_seconds=settings.REALTIME["PRESENCE_TTL_SECONDS"],
        throttle_seconds=settings.REALTIME["PRESENCE_THROTTLE_SECONDS"],
    )


def member_labels(user_ids_by_tenant: dict[int, Iterable[int]]) -> dict[int, dict[int, str]]:
    """Per tenant, the emails of those users who are its members and show their presence there.

    The one filter every presence answer goes through: a user id from Redis is shown
    only if the membership says so now.
    """
    labels: dict[int, dict[int, str]] = {}
    wanted = {tenant_id: set(users) for tenant_id, users in user_ids_by_tenant.items() if users}
    if not wanted:
        return labels
    rows = Membership.objects.filter(
        tenant_id__in=list(wanted),
        user_id__in={user for users in wanted.values() for user in users},
        presence_hidden=False,
    ).values_list("tenant_id", "user_id", "user__email")
    for tenant_id, user_id, email in rows:
        if user_id in wanted[tenant_id]:
            labels.setdefault(tenant_id, {})[user_id] = email
    return labels


def online_members(tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's members online now, longest online first: user id, email and since when."""
    online = presence_store().online(tenant_id)
    labels = member_labels({tenant_id: list(online)}).get(tenant_id, {})
    return [
        {"user": user_id, "email": labels[user_id], "since": datetime.fromtimestamp(since / 1000, tz=UTC)}
        for user_id, since in sorted(online.items(), key=lambda item: (item[1], item[0]))
        if user_id in labels
    ]


def watch_group(tenant_id: int) -> str:
    """The group a socket joins to be sent the tenant's presence diffs."""
    return tenant_presence_group(tenant_id)


def full_frame(tenant_id: int, tenant_slug: str) -> str:
    """The ``presence`` frame with everyone online now (``full: true``), sent to a socket that starts watching."""
    at_ms = int(time.time() * 1000)  # diffs handed out before this are in the list
    online = [
        {"user": member["user"], "email": member["email"], "since_ms": int(member["since"].timestamp() * 1000)}
        for member in online_members(tenant_id)
    ]
    return envelope(None, "presence", tenant_slug, timezone.now(), {"full": True, "online": online, "at_ms": at_ms})


def forget_settings(setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: the next ``presence_store()`` is built from the new settings (tests)."""
    if setting in ("CHANNEL_LAYERS", "CHANNEL_LAYER_REDIS_URLS", "REALTIME"):
        presence_store.cache_clear()


def do_set_presence_hidden(membership: Membership, hidden: bool) -> None:
    """Show or hide a member's presence in one tenant; their open sockets re-read it at once.

    Hiding takes the member offline for the others after the grace period, as a closed
    tab would; showing it brings them online at the next tick.
    """
    if membership.presence_hidden == hidden:
        return
    membership.presence_hidden = hidden
    membership.save(update_fields=["presence_hidden"])
    send_control(Audience.user(membership.user_id), "resubscribe")


def connected_users(user_ids: Iterable[int]) -> set[int]:
    """Those of the users with an open socket on any web process now (whether or not they hide their presence)."""
    return presence_store().connected(user_ids)
