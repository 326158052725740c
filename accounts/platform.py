"""The platform page staff land on: tenants, sockets online, events per minute, jobs running."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from .models import Tenant


def open_sockets() -> int:
    """Sockets open on this web process (the Prometheus gauge; /metrics sums every process)."""
    from realtime.metrics import OPEN_SOCKETS

    return int(sum(sample.value for metric in OPEN_SOCKETS.collect() for sample in metric.samples))


def platform_overview() -> dict[str, Any]:
    """The numbers and the tenant table of the staff landing page."""
    from realtime.streams import stream_store
    from workers.models import ACTIVE_STATES, Job

    try:
        per_minute = stream_store().published_per_minute(61)  # the last hour, and the minute now running
    except Exception:  # noqa: BLE001 - the page still shows the rest while Redis is down
        per_minute = []
    tenants = Tenant.objects.annotate(
        member_count=Count("memberships", distinct=True),
        running_jobs=Count("jobs", filter=Q(jobs__state__in=ACTIVE_STATES), distinct=True),
    ).order_by("name")
    return {
        "tenants": list(tenants),
        "sockets_online": open_sockets(),
        "events_per_minute": per_minute[-2] if per_minute else 0,  # the last whole minute
        "events_last_hour": sum(per_minute[1:]),
        "jobs_running": Job.objects.filter(state__in=ACTIVE_STATES).count(),
    }
