"""What a socket is told on connect: the user's counts in each of their tenants."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from realtime.services import Subscriptions

from .models import NotificationCounter
from .services import counts_data


def counts_snapshot(user: AbstractBaseUser, subs: Subscriptions) -> list[tuple[str, str | None, Any]]:
    """One ``notification.counts`` frame per tenant the user belongs to (one query)."""
    rows = {
        row["tenant_id"]: row
        for row in NotificationCounter.objects.filter(
            user_id=user.pk, tenant_id__in=[t.id for t in subs.tenants]
        ).values("tenant_id", "unread", "unseen", "version")
    }
    return [("notification.counts", t.slug, {"counts": counts_data(rows.get(t.id))}) for t in subs.tenants]
