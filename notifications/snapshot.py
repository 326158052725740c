"""What a socket is told on connect: the user's counts in each of their tenants."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from liveplatform import rawsql
from realtime.services import Subscriptions

from .models import NotificationCounter
from .services import counts_data

_COUNTS_SQL = f"SELECT tenant_id, unread, unseen, version FROM {NotificationCounter._meta.db_table} WHERE user_id = %s"


def counts_snapshot(user: AbstractBaseUser, subs: Subscriptions) -> list[tuple[str, str | None, Any]]:
    """One ``notification.counts`` frame per tenant the user belongs to (one plain query: every handshake asks).

    Counters of tenants the user has left stay in the table; only the current
    tenants' are sent.
    """
    if not subs.tenants:
        return []
    rows = {
        tenant_id: {"unread": unread, "unseen": unseen, "version": version}
        for tenant_id, unread, unseen, version in rawsql.fetch(_COUNTS_SQL, [user.pk])
    }
    return [("notification.counts", t.slug, {"counts": counts_data(rows.get(t.id))}) for t in subs.tenants]
