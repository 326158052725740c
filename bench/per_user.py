"""Scenarios of the platform alone: per-user events through each producer path, and job progress."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.driver import Budget, Client, Steps, measure, paced, record_delivery
from bench.stack import cpu_seconds, start_celery_worker


def run_per_user(steps: Steps, server, client, publisher, port: int, ctx, env, opts, budget: Budget) -> None:
    """Per-user events, one recipient each: ``publish()``, the notify service, Celery, the HTTP API."""
    user_ids = ctx["user_ids"][: steps.result["sockets"]]
    n = len(user_ids)

    def through(send, rate: float):
        count = int(rate * opts.per_user_seconds)
        return lambda: measure(
            server,
            client,
            lambda until: paced(count, rate, lambda i: send(user_ids[i % n], i), until),
            total=count,
            opts=opts,
            budget=budget,
            rate=rate,
        )

    steps.run("per_user_publish", 10, through(publisher.to_user, opts.publish_rate))
    steps.run("per_user_notify", 10, through(publisher.notify_user, opts.per_user_rate))

    def celery() -> dict[str, Any]:
        # The workers publish through the same layer as the server they feed: the main
        # one and the "realtime" queue's, as deploy/ runs them.
        workers = [start_celery_worker(env, ctx["logs"])]
        try:
            workers.append(start_celery_worker(env, ctx["logs"], realtime_queue=True))
            return per_user_celery(server, client, ctx, user_ids, opts, budget)
        finally:
            for worker in workers:
                worker.stop()

    steps.run("per_user_celery", 25, celery)
    if opts.notifications:
        steps.run("per_user_api", 15, lambda: per_user_api(server, client, port, ctx, user_ids, opts, budget))


def per_user_api(server, client, port: int, ctx, user_ids: list[int], opts, budget: Budget) -> dict[str, Any]:
    """One recipient per call through ``POST /api/v1/notifications`` with an API key, from 16 threads.

    Each thread keeps its HTTP connection open between calls, as a service sending
    notifications at this rate does (a connection pool: ``requests.Session``, an HTTP
    client's keep-alive), and the server is warm (``WARM_UP_CALLS`` first, not
    measured). Calls are offered at ``api_rate`` for ``per_user_seconds``; those the
    threads have not started half a window later are cancelled, so a slow server shows
    as a lower rate, not a longer run. Latency is from just before the request to the
    socket.
    """
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor, wait

    from accounts.api_keys import do_create_api_key

    _, raw_key = do_create_api_key(ctx["tenant"], f"bench-{time.monotonic_ns()}")
    count = int(opts.api_rate * opts.per_user_seconds)
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    failures: list[str] = []
    created: list[float] = []
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def post(i: int) -> None:
        body = {"user_ids": [user_ids[i % len(user_ids)]], "title": "Bench", "data": {"sent_at": time.time()}}
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            opened.append(connection)
        try:
            connection.request("POST", "/api/v1/notifications", body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 201:
                created.append(time.monotonic())
            else:
                failures.append(str(response.status))
        except Exception as exc:  # noqa: BLE001 - counted and reported; the next call reconnects
            failures.append(repr(exc)[:120])
            connection.close()
            local.connection = None

    futures = []
    with ThreadPoolExecutor(16) as pool:
        # Warm, as a deployed web process is: the threads' connections open, the API's first
        # calls (imports, schemas, scripts) made; a cold first second was the scenario's p99.
        client.command("reset")
        wait([pool.submit(post, i) for i in range(WARM_UP_CALLS)], timeout=budget.cap(opts.wait))
        client.expect_total(len(created), budget.cap(opts.wait))
        created.clear()
        client.command("reset")
        cpu0, ccpu0, started, wall0 = cpu_seconds(server.pid), client.cpu(), time.monotonic(), time.time()
        achieved = paced(count, opts.api_rate, lambda i: futures.append(pool.submit(post, i)))
        # Calls still queued in the client after half the window again are not offered any more.
        wait(futures, timeout=max(0.0, started + opts.per_user_seconds * 1.5 - time.monotonic()))
        cancelled = sum(1 for future in futures if future.cancel())
    for connection in opened:
        connection.close()
    stats = client.expect_total(len(created), budget.cap(opts.wait))
    stats = record_delivery(stats, server, client, cpu0, ccpu0, started, wall0, achieved, opts.api_rate)
    stats["calls_offered"] = count
    stats["calls_cancelled"] = cancelled
    stats["created"] = len(created)
    stats["api_rate"] = len(created) / (max(created) - started) if created else 0.0
    stats["http_failures"] = len(failures)
    stats["http_failure_examples"] = failures[:3]
    stats["all_delivered"] = stats["all_delivered"] and not failures
    return stats


WARM_UP_TASKS = 50
WARM_UP_CALLS = 50


def per_user_celery(server, client, ctx, user_ids: list[int], opts, budget: Budget) -> dict[str, Any]:
    """One recipient per call, through the Celery task other machines use (realtime.tasks.publish_event)."""
    from realtime.tasks import publish_event

    count = int(opts.celery_rate * opts.per_user_seconds)
    tenant_id = ctx["tenant"].pk

    def send(i: int) -> None:
        publish_event.delay(
            "bench.ping",
            {"sent_at": time.time(), "seq": i},
            audience_kind="user",
            user_id=user_ids[i % len(user_ids)],
            tenant_id=tenant_id,
        )

    # Warm: each worker process has its database connection, scripts and tenant, as a
    # deployed worker has (a cold first task costs tens of milliseconds, a p99 of its own).
    client.command("reset")
    for i in range(WARM_UP_TASKS):
        send(i)
    client.expect_total(WARM_UP_TASKS, budget.cap(opts.wait))
    return measure(
        server,
        client,
        lambda until: paced(count, opts.celery_rate, send, until),
        total=count,
        opts=opts,
        budget=budget,
        rate=opts.celery_rate,
    )


def progress_loop(client: Client, ctx, opts, budget: Budget) -> dict[str, Any]:
    """A job calling ``progress()`` in a tight loop: calls made, messages sent, and what a socket sees.

    Runs the job's own ``JobContext`` in the producer (as a worker would), once with an
    unknown total (time-throttled) and once with a known one (also at most one per percent).
    The owner's socket is the browser watching the bar; jobs.js draws every frame it gets.
    """
    import uuid

    from django.utils import timezone

    from workers.jobs import JobContext
    from workers.models import Job, JobState

    figures: dict[str, Any] = {}
    for label, total in (("unknown_total", None), ("known_total", 10**9)):
        job = Job.objects.create(
            tenant=ctx["tenant"],
            owner_id=ctx["user_ids"][0],
            kind="export",
            state=JobState.RUNNING,
            started_at=timezone.now(),
            task_id=str(uuid.uuid4()),
        )
        job_context = JobContext(job)
        client.command("reset")
        calls, started = 0, time.monotonic()
        while (elapsed := time.monotonic() - started) < opts.progress_seconds:
            calls += 1
            # A known total is reached at the end of the window; an unknown one never is.
            done = calls if total is None else int(total * min(1.0, elapsed / opts.progress_seconds))
            job_context.progress(done, total)
        if total is not None:
            job_context.progress(total, total)
        job_context.flush()
        elapsed = time.monotonic() - started
        seen = client.command(f"progress 0.5 {budget.cap(10):.1f}", budget.cap(10))
        figures[label] = {
            "calls": calls,
            "calls_per_second": calls / elapsed,
            "published": job_context.publishes,
            "published_per_second": job_context.publishes / elapsed,
            "socket_frames": seen["max_per_socket"],
            "socket_frames_per_second": seen["max_per_socket"] / elapsed,
            "sockets_receiving": seen["sockets_receiving"],
        }
        Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, finished_at=timezone.now())
    return figures
