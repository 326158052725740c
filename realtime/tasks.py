"""Celery tasks of the real-time core."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

from . import outbox, services
from .audience import Audience
from .events import publish


@shared_task(name="realtime.tasks.prune_tickets")
def prune_tickets() -> int:
    """Delete spent connection tickets (run hourly by beat); stream history trims itself in Redis."""
    return services.prune()


@shared_task(name="realtime.tasks.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    """Publish durable events whose producer committed but did not publish (run every few seconds by beat)."""
    return outbox.relay()


@shared_task(name="realtime.tasks.publish_event", ignore_result=True)
def publish_event(
    event_type: str,
    data: dict[str, Any],
    *,
    audience_kind: str,
    tenant_id: int | None = None,
    user_id: int | None = None,
    durable: bool = True,
) -> None:
    """Publish from a worker process: how background work and other machines reach browsers.

    Takes ids, never model instances, so the message is small. The tenant (its slug
    goes into the frame) is read at most once per ``TENANT_CACHE_SECONDS`` per
    process: that query was a tenth of the task.
    """
    audience = Audience(audience_kind, tenant_id=tenant_id, user_id=user_id)
    tenant = _tenant(tenant_id) if tenant_id else None
    publish(event_type, data, audience=audience, tenant=tenant, durable=durable)


# A tenant's slug never changes in the product (only the Django admin could), and an
# event for a tenant deleted a moment ago reaches nobody: a short cache is safe.
TENANT_CACHE_SECONDS = 30.0
_tenants: dict[int, tuple[float, Any]] = {}


def _tenant(tenant_id: int) -> Any:
    from accounts.models import Tenant

    now = time.monotonic()
    cached = _tenants.get(tenant_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if len(_tenants) >= 10_000:
        _tenants.clear()
    _tenants[tenant_id] = (now + TENANT_CACHE_SECONDS, tenant)
    return tenant
