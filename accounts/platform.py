"""The platform page staff land on: tenants, sockets online, events per minute, jobs running."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from .models import Tenant


def open_sockets() -> int:
    """Sockets open on this web process (the Prometheus gauge; /metrics sums every process)."""
    from realtime.metrics import OPEN_SOCKETS

    return int(sum(sample.value for metric in OPEN_SOCKETS.collect() for sample in metric.samples))


def platform_overview() -> dict[str, Any]:
    """The numbers and the tenant table of the staff landing page."""
    from realtime.models import Event
    from workers.models import ACTIVE_STATES, Job

    now = timezone.now()
    tenants = Tenant.objects.annotate(
        member_count=Count("memberships", distinct=True),
        running_jobs=Count("jobs", filter=Q(jobs__state__in=ACTIVE_STATES), distinct=True),
    ).order_by("name")
    return {
        "tenants": list(tenants),
        "sockets_online": open_sockets(),
        "events_per_minute": Event.objects.filter(created_at__gte=now - timedelta(minutes=1)).count(),
        "events_last_hour": Event.objects.filter(created_at__gte=now - timedelta(hours=1)).count(),
        "jobs_running": Job.objects.filter(state__in=ACTIVE_STATES).count(),
    }
