"""The benchmark suite: start the real stack on 127.0.0.1, load it, print a table, write JSON.

``python -m bench`` (or ``make bench``) runs the full suite; ``--smoke`` (``make
bench-smoke``) runs every scenario with 50 sockets in a few seconds. See
docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.client import raise_fd_limit
from bench.stack import ROOT, Process, cpu_seconds, load_average, rss_bytes, start_celery_worker, start_server

RESULTS_DIR = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


@dataclass(frozen=True)
class Target:
    """One server configuration under test."""

    name: str
    server: str  # daphne | uvicorn | plain | raw
    layer: str  # redis | pubsub | fanout | - (raw)
    ours: bool  # our consumer (authenticated, stored events) or a baseline


TARGETS = {
    "raw": Target("raw websockets.broadcast (ceiling)", "raw", "-", False),
    "plain-redis": Target("plain Channels, daphne, RedisChannelLayer", "plain", "redis-upstream", False),
    "plain-pubsub": Target("plain Channels, daphne, RedisPubSubChannelLayer", "plain", "pubsub", False),
    "ours-redis": Target("platform, daphne, PumpedRedisChannelLayer (default)", "daphne", "redis", True),
    "ours-pubsub": Target("platform, daphne, RedisPubSubChannelLayer", "daphne", "pubsub", True),
    "ours-fanout": Target("platform, daphne, realtime.layers fan-out", "daphne", "fanout", True),
    "ours-fanout-uvicorn": Target("platform, uvicorn, realtime.layers fan-out", "uvicorn", "fanout", True),
    "ours-redis-uvicorn": Target("platform, uvicorn, PumpedRedisChannelLayer (default)", "uvicorn", "redis", True),
}


# ------------------------------------------------------------------------------
# Data: users, memberships and sessions in bulk
# ------------------------------------------------------------------------------
def make_population(count: int) -> tuple[Any, list[int], list[str]]:
    """One tenant with ``count`` members, each with a logged-in session; returns cookies."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from accounts.models import Membership
    from accounts.services import do_create_tenant

    User = get_user_model()
    tenant = do_create_tenant(slug="bench", name="Bench")
    unusable = make_password(None)
    User.objects.bulk_create(
        [User(username=f"bench{i}@bench.test", email=f"bench{i}@bench.test", password=unusable) for i in range(count)],
        batch_size=2000,
    )
    users = list(User.objects.filter(email__endswith="@bench.test").order_by("pk"))
    Membership.objects.bulk_create([Membership(tenant=tenant, user=user) for user in users], batch_size=2000)
    store, expire = SessionStore(), timezone.now() + timezone.timedelta(days=1)
    sessions = []
    for user in users:
        data = {
            "_auth_user_id": str(user.pk),
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": user.get_session_auth_hash(),
        }
        sessions.append(Session(session_key=get_random_string(32), session_data=store.encode(data), expire_date=expire))
    Session.objects.bulk_create(sessions, batch_size=2000)
    cookies = [f"{settings.SESSION_COOKIE_NAME}={s.session_key}" for s in sessions]
    return tenant, [u.pk for u in users], cookies


def queries_per_connect(user_id: int, cookie: str) -> int:
    """Database queries one authenticated connect makes (session, user, then the consumer's services)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from realtime import services

    with CaptureQueriesContext(connection) as captured:
        SessionStore(session_key=cookie.split("=", 1)[1]).load()
        user = get_user_model().objects.get(pk=user_id)
        subs = services.admit_socket(user)
        services.open_session(user, subs, 0)
    return len(captured.captured_queries)


# ------------------------------------------------------------------------------
# Publishing, the way each target's producers do it
# ------------------------------------------------------------------------------
class Publisher:
    """Send one bench message to the whole audience of a target."""

    def __init__(self, target: Target, tenant: Any, redis_url: str) -> None:
        self.target, self.tenant = target, tenant
        use_layer(target.layer)
        if target.server == "raw":
            import redis

            self.redis = redis.Redis.from_url(redis_url)

    def broadcast(self, seq: int, durable: bool = True) -> None:
        data = {"sent_at": time.time(), "seq": seq}
        if self.target.ours:
            from realtime.audience import Audience
            from realtime.events import publish

            publish("bench.ping", data, audience=Audience.tenant(self.tenant.pk), tenant=self.tenant, durable=durable)
        elif self.target.server == "plain":
            from asgiref.sync import async_to_sync
            from channels.layers import get_channel_layer

            async_to_sync(get_channel_layer().group_send)("bench_plain", {"type": "chat.message", "data": data})
        else:
            self.redis.publish("bench_raw", json.dumps({"type": "bench.ping", "data": data}))

    def to_user(self, user_id: int, seq: int) -> None:
        from realtime.audience import Audience
        from realtime.events import publish

        data = {"sent_at": time.time(), "seq": seq}
        publish("bench.ping", data, audience=Audience.user(user_id), tenant=self.tenant, durable=True)


def use_layer(layer: str) -> None:
    """Point this process's channel layer at the backend the server under test uses."""
    if layer == "-":
        return
    from channels.layers import channel_layers
    from django.conf import settings

    settings.CHANNEL_LAYERS["default"]["BACKEND"] = settings.CHANNEL_LAYER_BACKENDS[layer]
    channel_layers.backends.clear()


def paced(count: int, rate: float, send) -> float:
    """Call ``send(i)`` ``count`` times at ``rate`` per second; return the achieved rate."""
    started = time.monotonic()
    for i in range(count):
        due = started + i / rate
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)  # pacing the producer, not synchronisation
        send(i)
    elapsed = time.monotonic() - started
    return count / elapsed if elapsed > 0 else float("inf")


# ------------------------------------------------------------------------------
# The client process
# ------------------------------------------------------------------------------
class Client:
    """The load client subprocess (bench.client), driven line by line."""

    def __init__(self, url: str, origin: str | None, cookies: list[str | None], workdir: Path) -> None:
        config = workdir / f"client-{time.monotonic_ns()}.json"
        config.write_text(json.dumps({"url": url, "origin": origin, "cookies": cookies, "concurrency": 50}))
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.client", str(config)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.connected = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("the load client exited")
        return json.loads(line)

    def command(self, line: str) -> dict[str, Any]:
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()
        return self._read()

    def cpu(self) -> float:
        return cpu_seconds(self.popen.pid)

    def stop(self) -> None:
        try:
            self.popen.stdin.write("quit\n")
            self.popen.stdin.flush()
            self.popen.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.popen.kill()
            self.popen.wait(timeout=10)


def settle(pid: int, quiet: float = 0.05, timeout: float = 60) -> None:
    """Wait until a process uses under ``quiet`` CPU seconds per half second (connects done)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < quiet:
            return
        last = now


# ------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------
def run_target(key: str, n: int, ctx: dict[str, Any], opts: argparse.Namespace) -> dict[str, Any]:
    """Start one server, connect ``n`` sockets, run the scenarios that apply, stop everything."""
    target = TARGETS[key]
    env = {**ctx["env"], "CHANNEL_LAYER_BACKEND": target.layer if target.layer != "-" else "redis"}
    ctx["redis"].flushdb()
    server, port = start_server(target.server, env, ctx["logs"])
    result: dict[str, Any] = {"target": key, "name": target.name, "sockets": n, "load_before": load_average()}
    client = None
    try:
        publisher = Publisher(target, ctx["tenant"], env["REDIS_URL"])
        settle(server.pid)
        rss_before = rss_bytes(server.pid)
        cookies = ctx["cookies"][:n] if target.ours else [None] * n
        origin = f"http://127.0.0.1:{port}" if target.ours else None
        profiler = start_profiler(server.pid, ctx["workdir"] / f"connect-{key}-{n}.txt") if opts.profile else None
        client = Client(f"ws://127.0.0.1:{port}/ws/", origin, cookies, ctx["workdir"])
        result["connect"] = client.connected
        settle(server.pid)
        if profiler is not None:
            result["connect_profile"] = stop_profiler(*profiler)
        result["rss_per_socket_kib"] = (
            (rss_bytes(server.pid) - rss_before) / max(1, client.connected["connected"]) / 1024
        )
        result["server_rss_mib"] = rss_bytes(server.pid) / 2**20
        result["isolated"] = measure(
            server, client, lambda: paced(opts.messages, 1 / opts.interval, publisher.broadcast), opts.messages, n
        )
        profiler = start_profiler(server.pid, ctx["workdir"] / f"profile-{key}-{n}.txt") if opts.profile else None
        result["sustained"] = measure(
            server,
            client,
            lambda: paced(int(opts.rate * opts.rate_seconds), opts.rate, publisher.broadcast),
            int(opts.rate * opts.rate_seconds),
            n,
            rate=opts.rate,
        )
        if profiler is not None:
            result["profile"] = stop_profiler(*profiler)
        if target.ours and not opts.fanout_only:
            user_ids = ctx["user_ids"][:n]
            count = int(opts.per_user_rate * opts.per_user_seconds)
            result["per_user_publish"] = measure(
                server,
                client,
                lambda: paced(count, opts.per_user_rate, lambda i: publisher.to_user(user_ids[i % n], i)),
                count,
                n,
                total=count,
                rate=opts.per_user_rate,
            )
            # The worker publishes through the same layer as the server it feeds.
            worker = start_celery_worker(env, ctx["logs"])
            try:
                result["per_user_celery"] = per_user_celery(server, client, ctx, user_ids, opts)
            finally:
                worker.stop()
            if opts.notifications:
                result["tenant_notification"] = measure(
                    server, client, lambda: paced(3, 1.0, lambda i: notify_tenant(ctx["tenant"], i)), 3, n
                )
                result["per_user_api"] = per_user_api(server, client, port, ctx, user_ids, opts)
            result["progress"] = progress_loop(client, ctx, opts)
            result["reconnect"] = reconnect_storm(server, client, publisher, opts)
    except Exception as exc:  # noqa: BLE001 - one failed target must not lose the others' figures
        result["error"] = f"{exc!r}"[:500]
    finally:
        if client is not None:
            client.stop()
        server.stop()
    return result


def measure(
    server: Process, client: Client, send, count: int, n: int, *, total: int | None = None, rate: float | None = None
) -> dict[str, Any]:
    """Publish, wait for delivery, and relate the server's CPU to what was delivered."""
    client.command("reset")
    cpu0, ccpu0, started = cpu_seconds(server.pid), client.cpu(), time.monotonic()
    achieved = send()
    wait = max(30.0, count * 0.2)
    stats = client.command(f"expect_total {total} {wait}" if total else f"expect {count} {wait}")
    stats["server_cpu_seconds"] = cpu_seconds(server.pid) - cpu0
    stats["client_cpu_seconds"] = client.cpu() - ccpu0
    stats["elapsed_seconds"] = time.monotonic() - started
    stats["server_cpu_us_per_delivery"] = 1e6 * stats["server_cpu_seconds"] / max(1, stats["delivered"])
    stats["producer_rate"] = achieved
    if rate:
        stats["deliveries_per_second"] = stats["delivered"] / stats["elapsed_seconds"]
    stats["all_delivered"] = stats["delivered"] >= stats["expected"]
    return stats


def start_profiler(pid: int, path: Path) -> tuple[subprocess.Popen, Path]:
    """Sample the server with py-spy (``pip install py-spy``) while a scenario runs."""
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw"]
    argv += ["--rate", "250", "--output", str(path), "--nonblocking"]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)  # py-spy attaches before the scenario starts; it has no readiness signal
    return popen, path


def stop_profiler(popen: subprocess.Popen, path: Path) -> dict[str, Any]:
    """Stop py-spy and summarise its stacks: the share of samples each function appears in."""
    popen.send_signal(signal.SIGINT)
    popen.wait(timeout=30)
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";")]  # fmt: skip
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples

    def top(table: dict[str, int]) -> list[tuple[str, float]]:
        return [
            (name, round(100 * value / total, 1)) for name, value in sorted(table.items(), key=lambda kv: -kv[1])[:25]
        ]

    return (
        {"samples": total, "file": str(path), "inclusive_percent": top(inclusive), "self_percent": top(own)}
        if total
        else {}
    )


def notify_tenant(tenant: Any, seq: int) -> None:
    """A tenant-wide notification through the one notify service (one row and event per member)."""
    from notifications.services import ALL_MEMBERS, notify

    notify(tenant, ALL_MEMBERS, category="bench", title=f"Bench {seq}", data={"sent_at": time.time(), "seq": seq})


def per_user_api(server: Process, client: Client, port: int, ctx, user_ids: list[int], opts) -> dict[str, Any]:
    """One recipient per call through ``POST /api/v1/notifications`` with an API key, from 16 threads."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from accounts.api_keys import do_create_api_key

    _, raw_key = do_create_api_key(ctx["tenant"], f"bench-{time.monotonic_ns()}")
    count = int(opts.per_user_rate * opts.per_user_seconds)
    url = f"http://127.0.0.1:{port}/api/v1/notifications"
    failures: list[str] = []

    def post(i: int) -> None:
        body = {"user_ids": [user_ids[i % len(user_ids)]], "title": "Bench", "data": {"sent_at": time.time()}}
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status != 201:
                    failures.append(str(response.status))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(repr(exc)[:120])

    with ThreadPoolExecutor(16) as pool:
        stats = measure(
            server,
            client,
            lambda: paced(count, opts.per_user_rate, lambda i: pool.submit(post, i)),
            count,
            0,
            total=count,
            rate=opts.per_user_rate,
        )
    stats["http_failures"] = len(failures)
    stats["http_failure_examples"] = failures[:3]
    return stats


def per_user_celery(server: Process, client: Client, ctx, user_ids: list[int], opts) -> dict[str, Any]:
    """One recipient per call, through the Celery task other machines use (realtime.tasks.publish_event)."""
    from realtime.tasks import publish_event

    count = int(opts.per_user_rate * opts.per_user_seconds)
    tenant_id = ctx["tenant"].pk

    def send(i: int) -> None:
        publish_event.delay(
            "bench.ping",
            {"sent_at": time.time(), "seq": i},
            audience_kind="user",
            user_id=user_ids[i % len(user_ids)],
            tenant_id=tenant_id,
        )

    return measure(
        server, client, lambda: paced(count, opts.per_user_rate, send), count, 0, total=count, rate=opts.per_user_rate
    )


def progress_loop(client: Client, ctx, opts) -> dict[str, Any]:
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
        seen = client.command(f"progress 1.0 {opts.progress_seconds + 30}")
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


def reconnect_storm(server: Process, client: Client, publisher: Publisher, opts) -> dict[str, Any]:
    """Drop every socket, publish while they are gone, reconnect all at once with a resume cursor."""
    client.command("reset")
    client.command("close")
    for i in range(opts.missed):
        publisher.broadcast(10_000 + i)
    cpu0 = cpu_seconds(server.pid)
    reopened = client.command("reopen 60")
    caught_up = client.command(f"expect {opts.missed} 30")
    return {
        "connected": reopened["connected"],
        "connect_seconds": reopened["connect_seconds"],
        "caught_up_seconds": reopened["connect_seconds"] + caught_up["wait_seconds"],
        "complete_sockets": caught_up["complete_sockets"],
        "lost": caught_up["expected"] - min(caught_up["delivered"], caught_up["expected"]),
        "server_cpu_seconds": cpu_seconds(server.pid) - cpu0,
        "errors": reopened["errors"],
    }


# ------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------
def fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or None when the reference is too small to measure (CPU ticks are 10 ms)."""
    return value / reference if reference > 0 else None


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown tables the suite prints and puts into docs/benchmarks.md."""
    ceiling = {r["sockets"]: r for r in results if r["target"] == "raw" and "isolated" in r}
    plain = {r["sockets"]: r for r in results if r["target"] == "plain-redis" and "isolated" in r}
    lines = [
        "Fan-out: tenant broadcast, isolated messages",
        "",
        "| target | sockets | delivered | first socket | p50 | p95 | p99 "
        "| server CPU / delivery | x ceiling | x plain | RSS / socket | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        iso = r.get("isolated")
        if not iso:
            lines.append(f"| {r['name']} | {r['sockets']} | error: {r.get('error', '?')[:80]} | | | | | | | | | |")
            continue
        us = iso["server_cpu_us_per_delivery"]
        base = ceiling.get(r["sockets"])
        ref = plain.get(r["sockets"])
        x_ceiling = ratio(us, base["isolated"]["server_cpu_us_per_delivery"]) if base else None
        x_plain = ratio(us, ref["isolated"]["server_cpu_us_per_delivery"]) if ref else None
        lines.append(
            f"| {r['name']} | {r['sockets']:,} | {iso['delivered']:,}/{iso['expected']:,} | "
            f"{ms(iso['first_socket_latency'])} | {ms(iso['latency_p50'])} | {ms(iso['latency_p95'])} | "
            f"{ms(iso['latency_p99'])} | {fmt(us, ' µs')} | {fmt(x_ceiling, 'x', 1)} | {fmt(x_plain, 'x', 2)} | "
            f"{fmt(r.get('rss_per_socket_kib'), ' KiB', 1)} | {r.get('load_before', '-')} |"
        )
    lines += [
        "",
        "Sustained broadcasts, per-user events and the reconnect storm",
        "",
        "| target | sockets | sustained: deliveries/s, delivered, p99 | per-user publish(): rate, p50, p99 "
        "| per-user via Celery: p50, p99 | per-user HTTP API: rate, p50, p99, failures "
        "| tenant notification: delivered, p50, p99 | reconnect: all caught up, lost | connect (all N) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "sustained" not in r:
            continue
        sus = r["sustained"]
        sustained = (
            f"{sus['deliveries_per_second']:,.0f}/s, {sus['delivered']:,}/{sus['expected']:,}, {ms(sus['latency_p99'])}"
        )
        pu, pc, rc = r.get("per_user_publish"), r.get("per_user_celery"), r.get("reconnect")
        per_user = f"{pu['producer_rate']:.0f}/s, {ms(pu['latency_p50'])}, {ms(pu['latency_p99'])}" if pu else "-"
        celery = f"{ms(pc['latency_p50'])}, {ms(pc['latency_p99'])}" if pc else "-"
        storm = f"{rc['caught_up_seconds']:.1f} s, {rc['lost']}" if rc else "-"
        api, tn = r.get("per_user_api"), r.get("tenant_notification")
        api_cell = (
            f"{api['deliveries_per_second']:.0f}/s, {ms(api['latency_p50'])}, {ms(api['latency_p99'])}, "
            f"{api['http_failures']}"
            if api
            else "-"
        )
        tn_cell = (
            f"{tn['delivered']:,}/{tn['expected']:,}, {ms(tn['latency_p50'])}, {ms(tn['latency_p99'])}" if tn else "-"
        )
        lines.append(
            f"| {r['name']} | {r['sockets']:,} | {sustained} | {per_user} | {celery} | {api_cell} | {tn_cell} "
            f"| {storm} | {r['connect']['connect_seconds']:.1f} s |"
        )
    progress_rows = [r for r in results if r.get("progress")]
    if progress_rows:
        lines += [
            "",
            "Job progress: `progress()` in a tight loop (the job's own `JobContext`), and what the owner's socket got",
            "",
            "| target | sockets | total | progress() calls/s | messages published/s | frames at the socket/s |",
            "|---|---|---|---|---|---|",
        ]
        for r in progress_rows:
            for label, p in r["progress"].items():
                lines.append(
                    f"| {r['name']} | {r['sockets']:,} | {label.replace('_', ' ')} | {p['calls_per_second']:,.0f} "
                    f"| {p['published_per_second']:.1f} ({p['published']}) "
                    f"| {p['socket_frames_per_second']:.1f} ({p['socket_frames']}) |"
                )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "free": free,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def write_docs(results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Replace the generated section of docs/benchmarks.md with this run's tables."""
    text = DOCS.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = (
        f"\nGenerated by `{meta['command']}` at {meta['started']} "
        f"({meta['machine']['nproc']} cores, Python {meta['machine']['python']}, "
        f"load average at the end {meta['load_end']}, before each target in the last column; "
        f"suite took {meta['seconds']:.0f} s).\n\n{table(results)}\n\n"
        f"Database queries per authenticated connect: {meta['queries_per_connect']}.\n"
    )
    DOCS.write_text(head + BEGIN + body + END + tail)


# ------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="50 sockets, every scenario, a few seconds each")
    parser.add_argument("--sizes", default="1000,3000", help="socket counts, comma-separated")
    parser.add_argument("--targets", default="raw,plain-redis,plain-pubsub,ours-redis,ours-pubsub,ours-fanout")
    parser.add_argument("--messages", type=int, default=20, help="isolated broadcasts per target")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between isolated broadcasts")
    parser.add_argument("--rate", type=float, default=20, help="sustained broadcasts per second")
    parser.add_argument("--rate-seconds", type=float, default=5)
    parser.add_argument("--per-user-rate", type=float, default=200, help="one-recipient events per second")
    parser.add_argument("--per-user-seconds", type=float, default=3)
    parser.add_argument("--missed", type=int, default=5, help="events published during the reconnect storm")
    parser.add_argument("--progress-seconds", type=float, default=3, help="length of the progress() tight loop")
    parser.add_argument(
        "--no-notifications", dest="notifications", action="store_false", help="skip the notifications scenarios"
    )
    parser.add_argument("--fanout-only", action="store_true", help="only the broadcast scenarios (quicker)")
    parser.add_argument("--profile", action="store_true", help="py-spy the server during the sustained phase")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="only rebuild the tables from saved results")
    parser.add_argument("--write-docs", action="store_true", help="put the tables into docs/benchmarks.md")
    opts = parser.parse_args(argv)
    if opts.smoke:
        opts.sizes, opts.messages, opts.interval = "50", 5, 0.1
        opts.rate_seconds, opts.per_user_rate, opts.per_user_seconds, opts.missed = 1, 50, 1, 3
        opts.progress_seconds = 1
        if "--targets" not in argv:
            opts.targets = "raw,plain-redis,ours-redis,ours-fanout"
    return opts


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: every process we started is stopped


def report(paths: list[str], write: bool) -> list[dict[str, Any]]:
    """Rebuild the tables from saved JSON (runs split over several invocations)."""
    results: list[dict[str, Any]] = []
    metas = []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        if isinstance(payload, list):  # a partial-results.json
            results += payload
        else:
            results += payload["results"]
            metas.append(payload["meta"])
    results.sort(key=lambda r: (r["sockets"], list(TARGETS).index(r["target"])))
    print(table(results))
    if write and metas:
        meta = dict(metas[0])
        meta["command"] = " + ".join(m["command"] for m in metas)
        meta["seconds"] = sum(m["seconds"] for m in metas)
        meta["load_end"] = metas[-1]["load_end"]
        write_docs(results, meta)
    return results


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    opts = parse_args(argv)
    if opts.report:
        return report(opts.report, opts.write_docs)
    started, wall = datetime.now(UTC), time.monotonic()
    raise_fd_limit()
    sizes = [int(s) for s in opts.sizes.split(",")]
    keys = [k.strip() for k in opts.targets.split(",") if k.strip()]
    var_dir = Path(os.environ.get("VAR_DIR") or ROOT / "var")
    var_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=var_dir))

    from liveplatform.embedded_redis import start_redis_server

    redis_process = start_redis_server(die_with_parent=True)
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "liveplatform.settings.test",
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_process.port}/0",
            "VAR_DIR": str(workdir),
            "PYTHONUNBUFFERED": "1",
            # One persistent connection in the consumer's sync thread instead of a new
            # SQLite connection per database_sync_to_async call (see docs/benchmarks.md).
            "DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "600"),
        }
        env.pop("CHANNEL_LAYER_REDIS_URLS", None)
        os.environ.update(env)
        import django

        django.setup()
        import redis
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        tenant, user_ids, cookies = make_population(max(sizes))
        ctx = {
            "env": env,
            "tenant": tenant,
            "user_ids": user_ids,
            "cookies": cookies,
            "workdir": workdir,
            "logs": workdir / "logs",
            "redis": redis.Redis.from_url(env["REDIS_URL"]),
        }
        results: list[dict[str, Any]] = []
        # Written after each target, so an interrupted run keeps what it measured.
        partial = workdir / "partial-results.json"
        for n in sizes:
            for key in keys:
                print(f"== {key} with {n} sockets (load {load_average()})", flush=True)
                results.append(run_target(key, n, ctx, opts))
                partial.write_text(json.dumps(results, indent=2, default=str))
                if "error" in results[-1]:
                    print(f"   error: {results[-1]['error']}", flush=True)
        meta = {
            "command": "python -m bench " + " ".join(argv),
            "started": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "load_end": load_average(),
            "seconds": time.monotonic() - wall,
            "queries_per_connect": queries_per_connect(user_ids[0], cookies[0]),
            "options": vars(opts),
        }
        print(table(results))
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"bench-{started.strftime('%Y%m%dT%H%M%S')}{'-smoke' if opts.smoke else ''}.json"
        out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
        print(f"wrote {out.relative_to(ROOT)}")
        if opts.write_docs:
            write_docs(results, meta)
        return results
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=10)
