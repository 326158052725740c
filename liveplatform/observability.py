"""Prometheus metrics: the ``/metrics`` endpoint, API request metrics, jobs read at scrape time.

Where each number comes from:

* web processes (daphne) count sockets, deliveries, replays, resyncs and the
  publish-to-send latency in ``realtime.metrics``; ``/metrics`` on each web process
  serves them, protected by ``Authorization: Bearer $METRICS_TOKEN`` (unset token:
  the endpoint answers 404). nginx refuses ``/metrics`` from outside; Prometheus
  scrapes each web process directly on the internal network.
* Celery workers are separate processes (prefork children): with
  ``PROMETHEUS_MULTIPROC_DIR`` set, every child writes its counters to files in that
  directory and the worker's main process serves them on ``CELERY_METRICS_PORT``
  (internal port, no token). See ``deploy/README.md``.
* jobs by state and their recent durations are read from the database when
  ``/metrics`` is scraped (``JobCollector``): the database row is the truth for a
  job, whatever worker ran it.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from realtime import metrics

logger = logging.getLogger(__name__)

# Jobs finished this long ago or less feed the duration gauges.
JOB_DURATION_WINDOW = timedelta(hours=1)


def multiprocess_dir() -> str | None:
    """The directory prometheus-client's multiprocess mode writes to, if enabled."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def build_registry(*, include_jobs: bool) -> CollectorRegistry:
    """This process's metrics (or every process's, in multiprocess mode), plus jobs if asked."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ProcessRegistry())
    if include_jobs:
        registry.register(JobCollector())
    return registry


class _ProcessRegistry:
    """Adapter: the default registry's collectors, inside a per-scrape registry."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


class JobCollector:
    """Jobs by state and kind, and durations of recently finished jobs, read from the database."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            from workers.models import Job
        except ImportError:  # pragma: no cover - the workers app is always installed
            return
        from django.db.models import Count

        jobs = GaugeMetricFamily("liveplatform_jobs", "Jobs by state and kind (database)", labels=["state", "kind"])
        for row in Job.objects.order_by().values("state", "kind").annotate(n=Count("id")):
            jobs.add_metric([row["state"], row["kind"]], row["n"])
        yield jobs

        since = timezone.now() - JOB_DURATION_WINDOW
        finished = (
            Job.objects.filter(finished_at__gte=since, started_at__isnull=False)
            .order_by()
            .values_list("kind", "state", "started_at", "finished_at")[:20000]
        )
        durations: dict[tuple[str, str], list[float]] = {}
        for kind, state, started_at, finished_at in finished:
            durations.setdefault((kind, state), []).append(max(0.0, (finished_at - started_at).total_seconds()))
        labels = ["kind", "state"]
        window = "of jobs finished in the last hour (database)"
        count = GaugeMetricFamily("liveplatform_job_recent_finished", f"Number {window}", labels=labels)
        avg = GaugeMetricFamily(
            "liveplatform_job_recent_duration_avg_seconds", f"Mean duration {window}", labels=labels
        )
        top = GaugeMetricFamily("liveplatform_job_recent_duration_max_seconds", f"Longest {window}", labels=labels)
        for key, values in sorted(durations.items()):
            count.add_metric(list(key), len(values))
            avg.add_metric(list(key), sum(values) / len(values))
            top.add_metric(list(key), max(values))
        yield count
        yield avg
        yield top


def _authorised(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format for this process; needs ``Authorization: Bearer $METRICS_TOKEN``."""
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are disabled (METRICS_TOKEN is not set)")
    if not _authorised(request):
        response = HttpResponse("a valid bearer token is required\n", status=401, content_type="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(build_registry(include_jobs=True))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class ApiMetricsMiddleware:
    """Count API requests by method and status, and time them (``/api/`` paths only)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            metrics.API_REQUESTS.labels(method=request.method, status=str(status)).inc()
            metrics.API_LATENCY.labels(method=request.method).observe(time.perf_counter() - started)


# ------------------------------------------------------------------------------
# Celery workers: serve every pool process's metrics from the main process.
# Wired to Celery's worker_init / worker_process_shutdown in liveplatform/celery.py.
# ------------------------------------------------------------------------------
def serve_worker_metrics() -> None:
    """Start the worker's metrics HTTP server on ``CELERY_METRICS_PORT`` (if set)."""
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    if not multiprocess_dir():
        logger.warning("CELERY_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: pool processes are not counted")
    from prometheus_client import start_http_server

    address = os.environ.get("CELERY_METRICS_ADDRESS", "0.0.0.0")
    start_http_server(int(port), addr=address, registry=build_registry(include_jobs=False))
    logger.info("worker metrics on %s:%s", address, port)


def forget_worker_process(pid: int) -> None:
    """A pool process exited: drop its live gauges from the multiprocess files."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
