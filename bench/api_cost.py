"""What one ``POST /api/v1/notifications`` costs the web process: CPU, queries, Redis commands.

``python -m bench.api_cost`` sets up what the benchmark's per-user API scenario uses (a
fresh SQLite database, a Redis of its own, one tenant with 1,000 members, an API key,
and one subscribed channel per member so every ``group_send`` reaches a queue), then
sends the bench's request (one recipient, API key, no Idempotency-Key) N times through
the real ASGI application in this process, each as an ASGI server makes it (a task of
its own), one at a time or ``--concurrency`` at once, and prints per call:

* CPU milliseconds of this process (``time.process_time``: every thread, not the
  wall clock, so a busy shared machine inflates it less), overall and for the best
  and the median of ``--rounds`` rounds;
* SQL queries, new database connections, and statements that took over 2 ms (with
  calls in flight together: waits for SQLite's write lock);
* Redis commands by name (``INFO commandstats`` of its own Redis; EVAL's inner
  commands are counted too).

``--py-spy`` samples the measured calls (the project's functions, with what they call,
and the busiest functions of all); ``--profile`` prints a cProfile of every thread
instead (it slows every call down). ``--uvicorn`` starts one uvicorn process as the
benchmark does (``bench.stack.start_server``) and posts from ``--threads`` client
threads over new TCP connections, flat out or offered at ``--rate`` calls a second,
and reports the server's CPU per call from /proc. Examples::

    .venv/bin/python -m bench.api_cost --calls 1000
    .venv/bin/python -m bench.api_cost --calls 2000 --py-spy --top 20
    .venv/bin/python -m bench.api_cost --calls 1000 --concurrency 16
    .venv/bin/python -m bench.api_cost --uvicorn --calls 1200 --rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
URL_PATH = "/api/v1/notifications"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="measured calls (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="calls before measuring (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="in process: measured rounds, best and median shown")
    parser.add_argument("--concurrency", type=int, default=1, help="in process: calls in flight together (default 1)")
    parser.add_argument("--members", type=int, default=1000, help="members of the tenant (default 1000)")
    parser.add_argument(
        "--database", default="", help="a PostgreSQL server URL: measure on a fresh database there (default: SQLite)"
    )
    parser.add_argument("--conn-max-age", default="600", help="DATABASE_CONN_MAX_AGE (the bench sets 600)")
    parser.add_argument("--no-sockets", action="store_true", help="no channel subscribed to the members' groups")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of every thread")
    parser.add_argument("--py-spy", action="store_true", help="also sample the measured calls with py-spy")
    parser.add_argument("--top", type=int, default=25, help="profile rows (default 25)")
    parser.add_argument("--sort", default="tottime", help="profile order: tottime or cumulative")
    parser.add_argument("--uvicorn", action="store_true", help="measure one uvicorn process over HTTP instead")
    parser.add_argument("--threads", type=int, default=16, help="client threads with --uvicorn (default 16)")
    parser.add_argument("--rate", type=float, default=0, help="with --uvicorn: offer calls at this rate (0: flat out)")
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="with --uvicorn: each client thread keeps its connection (as the bench)",
    )
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------
# Set-up: the environment before Django starts, then the data
# ------------------------------------------------------------------------------
def prepare(opts: argparse.Namespace) -> dict[str, Any]:
    """Start Redis, point Django at a fresh database, migrate, and create the tenant and key."""
    from bench.run import BenchDatabase
    from liveplatform.embedded_redis import start_redis_server

    workdir = Path(tempfile.mkdtemp(prefix="api-cost-", dir=os.environ.get("VAR_DIR") or None))
    database = BenchDatabase(getattr(opts, "database", ""), workdir)
    redis_process = start_redis_server(die_with_parent=True)
    env = {
        "DJANGO_SETTINGS_MODULE": "liveplatform.settings.test",
        "DATABASE_URL": database.create(),
        "REDIS_URL": f"redis://127.0.0.1:{redis_process.port}/0",
        "VAR_DIR": str(workdir),
        "DATABASE_CONN_MAX_AGE": str(opts.conn_max_age),
        # The throttle still runs on every call, but never refuses one of the N calls.
        "API_KEY_RATE_LIMIT": "1000000/m",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.pop("CHANNEL_LAYER_REDIS_URLS", None)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.api_keys import do_create_api_key
    from bench.run import make_population

    call_command("migrate", verbosity=0, interactive=False)
    tenant, user_ids, _cookies = make_population(opts.members)
    _, raw_key = do_create_api_key(tenant, "api-cost")
    from django.db import connections

    connections.close_all()  # the measured requests open their own
    return {
        "workdir": workdir,
        "database": database,
        "redis_process": redis_process,
        "env": {**os.environ, **env},
        "tenant": tenant,
        "user_ids": user_ids,
        "raw_key": raw_key,
    }


def subscribe_members(user_ids: list[int]) -> None:
    """Put one channel in each member's group, as an open socket would, so each send reaches a queue."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from realtime.audience import user_group
    from realtime.layers import join_groups

    async def join() -> None:
        layer = get_channel_layer()
        for user_id in user_ids:
            await join_groups(layer, [user_group(user_id)], f"specific.apicost!{user_id}")
        await layer.close_pools()

    async_to_sync(join)()


def redis_commands(url: str) -> dict[str, int]:
    """Commands the Redis server has processed so far, by command."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in client.info("commandstats").items()}
    finally:
        client.close()


def per_call(before: dict[str, int], after: dict[str, int], calls: int) -> dict[str, float]:
    """Commands per call, by command (the INFO that read the counters left out)."""
    delta = {name: after[name] - before.get(name, 0) for name in after}
    delta["info"] = delta.get("info", 1) - 1
    return {name: round(count / calls, 2) for name, count in sorted(delta.items()) if count}


def body_for(user_id: int) -> bytes:
    """The benchmark's request body (bench/run.py, per_user_api)."""
    return json.dumps({"user_ids": [user_id], "title": "Bench", "data": {"sent_at": time.time()}}).encode()


# ------------------------------------------------------------------------------
# In process: the real ASGI application, one call at a time
# ------------------------------------------------------------------------------
class QueryCounter:
    """Counts SQL statements and new connections in every thread (an execute wrapper per connection).

    Also the statements that took over 2 ms of wall time, by their first word: with
    calls in flight together (``--concurrency``) those are waits for SQLite's write lock.
    """

    def __init__(self) -> None:
        self.queries = 0
        self.connections = 0
        self.slow: dict[str, int] = {}

    def __call__(self, execute, sql, params, many, context):
        self.queries += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if time.perf_counter() - started > 0.002:
                verb = sql.split(None, 1)[0].upper()
                self.slow[verb] = self.slow.get(verb, 0) + 1

    def install(self) -> None:
        from django.db.backends.signals import connection_created

        def on_connect(sender, connection, **kwargs) -> None:
            self.connections += 1
            if self not in connection.execute_wrappers:
                connection.execute_wrappers.append(self)

        connection_created.connect(on_connect, weak=False)


class ThreadProfiles:
    """cProfile in the event loop's thread and in every thread started while enabled."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def _start_in_thread(self, frame, event, arg) -> None:
        import sys as _sys

        _sys.setprofile(None)
        profile = cProfile.Profile()
        with self.lock:
            self.profiles.append(profile)
        profile.enable()

    def enable(self, idle_executors: list) -> None:
        threading.setprofile(self._start_in_thread)
        # Request threads kept from the warm-up (liveplatform.handlers) start theirs now.
        for executor in idle_executors:
            executor.submit(self._start_in_thread, None, "call", None).result()
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()

    def report(self, calls: int, top: int, sort: str) -> str:
        threading.setprofile(None)
        self.profiles[0].disable()
        stats = None
        for profile in self.profiles:
            try:
                profile.create_stats()
            except Exception:  # noqa: BLE001 - a thread's profiler that never recorded anything
                continue
            if not getattr(profile, "stats", None):
                continue
            stats = pstats.Stats(profile) if stats is None else stats.add(profile)
        out = io.StringIO()
        if stats is None:
            return "(no samples)"
        stats.stream = out
        print(f"cProfile over {calls} calls, every thread, sorted by {sort}:", file=out)
        stats.strip_dirs().sort_stats(sort).print_stats(top)
        return out.getvalue()


def start_py_spy(path: Path) -> tuple[subprocess.Popen, Path]:
    """Sample this process with py-spy (``pip install py-spy``) until SIGINT."""
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()), "--format", "raw"]
    argv += ["--rate", "250", "--output", str(path), "--nonblocking"]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)  # py-spy has no readiness signal; it attaches within this
    return popen, path


def start_py_spy_on(pid: int, path: Path) -> subprocess.Popen:
    """Sample another process's CPU with py-spy until SIGINT: only the thread holding the GIL (``--gil``)."""
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw", "--gil"]
    argv += ["--rate", "250", "--output", str(path)]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)  # py-spy has no readiness signal; it attaches within this
    return popen


# Where a thread waits rather than works: py-spy still samples some of these.
IDLE_LEAVES = ("Runner.run", "Condition.wait", "_worker", "Thread._wait_for_tstate_lock", "Event.wait")


# The project's own packages: their functions are what the "project" ranking shows.
PROJECT_PACKAGES = ("accounts/", "announcements/", "liveplatform/", "notifications/", "realtime/", "workers/")


def summarise_py_spy(path: Path, top: int) -> dict[str, Any]:
    """Shares of the busy samples (idle leaves left out): with what each function calls, and its own.

    ``project`` ranks only the project's functions, with what they call: where a call's
    time goes in the code this repository can change.
    """
    inclusive: dict[str, int] = {}
    project: dict[str, int] = {}
    own: dict[str, int] = {}
    busy = idle = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [(frame.split(" (")[0], frame.split(" (")[-1].split(":")[0]) for frame in stack.split(";")]
        if frames[-1][0] in IDLE_LEAVES:
            idle += int(count)
            continue
        busy += int(count)
        names = {f"{name} ({where.rsplit('/', 1)[-1]})": where for name, where in frames}
        for name, where in names.items():
            inclusive[name] = inclusive.get(name, 0) + int(count)
            if where.startswith(PROJECT_PACKAGES):
                project[name] = project.get(name, 0) + int(count)
        leaf = f"{frames[-1][0]} ({frames[-1][1].rsplit('/', 1)[-1]})"
        own[leaf] = own.get(leaf, 0) + int(count)

    def share(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda item: -item[1])[:top]
        return [(name, round(100 * value / max(1, busy), 1)) for name, value in ranked]

    return {
        "busy": busy,
        "idle": idle,
        "project": share(project),
        "inclusive": share(inclusive),
        "self": share(own),
    }


async def asgi_call(application, raw_key: str, body: bytes) -> tuple[int, bytes]:
    """One HTTP request through the ASGI application, as an ASGI server would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL_PATH,
        "raw_path": URL_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"Python-urllib/3.11"),
            (b"accept-encoding", b"identity"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {raw_key}".encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    done = asyncio.Event()
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    # A task of its own in an empty context, as an ASGI server runs each request.
    await contextvars.Context().run(asyncio.create_task, application(scope, receive, send))
    done.set()
    return status, b"".join(chunks)


def in_process(opts: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """Calls through ``liveplatform.asgi.application`` on one event loop; CPU, queries, Redis per call."""
    from liveplatform.asgi import application, django_asgi_app

    counter = QueryCounter()
    counter.install()
    user_ids, raw_key = ctx["user_ids"], ctx["raw_key"]
    results: dict[str, Any] = {}

    async def run() -> None:
        failures: list[str] = []

        async def call(i: int) -> None:
            status, content = await asgi_call(application, raw_key, body_for(user_ids[i % len(user_ids)]))
            if status != 201:
                failures.append(f"{status} {content[:200]!r}")

        for i in range(opts.warmup):
            await call(i)
        if failures:
            raise SystemExit(f"warm-up calls failed: {failures[:3]}")
        profiles = ThreadProfiles() if opts.profile else None
        spy = start_py_spy(ctx["workdir"] / "py-spy.txt") if opts.py_spy else None
        queries0, connections0 = counter.queries, counter.connections
        redis0 = redis_commands(ctx["env"]["REDIS_URL"])
        if profiles:
            profiles.enable(getattr(django_asgi_app, "_idle", []))
        # Rounds of calls/rounds each: on a shared machine the least disturbed round is the best estimate.
        rounds = max(1, opts.rounds)
        per_round = max(1, opts.calls // rounds)
        round_cpu: list[float] = []
        wall0, sent, slow0 = time.perf_counter(), opts.warmup, dict(counter.slow)
        for _ in range(rounds):
            cpu0 = time.process_time()
            for first in range(sent, sent + per_round, opts.concurrency):
                await asyncio.gather(*(call(i) for i in range(first, min(first + opts.concurrency, sent + per_round))))
            sent += per_round
            round_cpu.append((time.process_time() - cpu0) / per_round)
        calls = rounds * per_round
        cpu, wall = sum(round_cpu) * per_round, time.perf_counter() - wall0
        if spy:
            spy[0].send_signal(signal.SIGINT)
            spy[0].wait(timeout=30)
            results["py_spy"] = summarise_py_spy(spy[1], opts.top)
        if profiles:
            results["profile"] = profiles.report(opts.calls, opts.top, opts.sort)
        round_cpu.sort()
        results.update(
            cpu_ms_per_call=1000 * cpu / calls,
            cpu_ms_per_call_best_round=1000 * round_cpu[0],
            cpu_ms_per_call_median_round=1000 * round_cpu[len(round_cpu) // 2],
            wall_ms_per_call=1000 * wall / calls,
            queries_per_call=(counter.queries - queries0) / calls,
            connections_per_call=(counter.connections - connections0) / calls,
            statements_over_2ms={
                verb: n - slow0.get(verb, 0) for verb, n in counter.slow.items() if n > slow0.get(verb, 0)
            },
            redis_commands_per_call=per_call(redis0, redis_commands(ctx["env"]["REDIS_URL"]), calls),
            failures=len(failures),
            failure_examples=failures[:3],
        )

    try:
        import uvloop

        uvloop.run(run())
        results["loop"] = "uvloop"
    except ImportError:
        asyncio.run(run())
        results["loop"] = "asyncio"
    return results


# ------------------------------------------------------------------------------
# Over HTTP: one uvicorn process, client threads, server CPU from /proc
# ------------------------------------------------------------------------------
def through_uvicorn(opts: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """N client threads (a new connection per call, or ``--keep-alive``) against one uvicorn; server CPU per call.

    With ``--py-spy`` the server is sampled (only the thread holding the GIL: its CPU)
    while the measured calls run.
    """
    import http.client
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from bench.stack import cpu_seconds, start_server

    server, port = start_server("uvicorn", ctx["env"], ctx["workdir"] / "logs")
    url = f"http://127.0.0.1:{port}{URL_PATH}"
    user_ids, raw_key = ctx["user_ids"], ctx["raw_key"]
    failures: list[str] = []
    latencies: list[float] = []
    local = threading.local()

    def post_kept(i: int) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            connection.request("POST", URL_PATH, body=body_for(user_ids[i % len(user_ids)]), headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                failures.append(str(response.status))
        except Exception as exc:  # noqa: BLE001 - counted and reported; the next call reconnects
            failures.append(repr(exc)[:160])
            connection.close()
            local.connection = None
        latencies.append(time.perf_counter() - started)

    def post(i: int) -> None:
        if opts.keep_alive:
            post_kept(i)
            return
        request = urllib.request.Request(
            url,
            data=body_for(user_ids[i % len(user_ids)]),
            headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"},
            method="POST",
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                if response.status != 201:
                    failures.append(str(response.status))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(repr(exc)[:160])
        latencies.append(time.perf_counter() - started)

    def offer(pool: ThreadPoolExecutor, first: int, count: int) -> None:
        """As fast as the threads go, or at ``--rate`` calls a second as the benchmark offers them."""
        if not opts.rate:
            list(pool.map(post, range(first, first + count)))
            return
        started, futures = time.perf_counter(), []
        for i in range(count):
            if (delay := started + i / opts.rate - time.perf_counter()) > 0:
                time.sleep(delay)  # pacing the client, not synchronisation
            futures.append(pool.submit(post, first + i))
        for future in futures:
            future.result()

    try:
        with ThreadPoolExecutor(opts.threads) as pool:
            offer(pool, 0, opts.warmup)
            latencies.clear()
            spy = start_py_spy_on(server.pid, ctx["workdir"] / "server-spy.txt") if opts.py_spy else None
            cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()
            offer(pool, opts.warmup, opts.calls)
            cpu, wall = cpu_seconds(server.pid) - cpu0, time.perf_counter() - wall0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
    finally:
        server.stop()
    latencies.sort()
    return {
        "server_cpu_ms_per_call": 1000 * cpu / opts.calls,
        "server_cpu_share_of_one_core": cpu / wall,
        "calls_per_second": opts.calls / wall,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "failures": len(failures),
        "failure_examples": failures[:3],
        **({"py_spy": summarise_py_spy(ctx["workdir"] / "server-spy.txt", opts.top)} if opts.py_spy else {}),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    ctx = prepare(opts)
    # The server's log lines go to a file, as the benchmark's do: still written, not on the terminal.
    log = open(ctx["workdir"] / "server.log", "ab")  # noqa: SIM115 - kept open until exit
    saved_stderr = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        if not opts.no_sockets:
            subscribe_members(ctx["user_ids"])
        results = through_uvicorn(opts, ctx) if opts.uvicorn else in_process(opts, ctx)
    finally:
        ctx["redis_process"].terminate()
        ctx["redis_process"].wait(timeout=10)
        from django.db import connections

        connections.close_all()
        ctx["database"].drop()
        os.dup2(saved_stderr, 2)
    profile = results.pop("profile", None)
    spy = results.pop("py_spy", None)
    offered = f", offered at {opts.rate:g}/s" if opts.rate else ""
    mode = f"uvicorn, {opts.threads} client threads{offered}" if opts.uvicorn else "in process (ASGI)"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"POST {URL_PATH}: {opts.calls} calls after {opts.warmup} warm-up, {mode}, ")
    print(f"  DATABASE_CONN_MAX_AGE={opts.conn_max_age}, load average {load}")
    for key, value in results.items():
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    if profile:
        print(profile)
    if spy:
        print(f"py-spy: {spy['busy']} busy samples ({spy['idle']} idle left out); share of the busy ones:")
        for key in ("project", "self"):
            print(f"  {key}:")
            for name, percent in spy[key]:
                print(f"    {percent:5.1f}%  {name}")
    return results


if __name__ == "__main__":
    main()
