"""The benchmark suite: start the real stack on 127.0.0.1, load it, print a table, write JSON.

``python -m bench`` (or ``make bench``) runs the suite that answers issue 7 within a
time budget (15 minutes on a 2-core machine); ``--smoke`` (``make bench-smoke``) runs
every scenario with 50 sockets in a few seconds each. See docs/benchmarks.md for what
each figure means.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report as report_module
from bench.client import raise_fd_limit
from bench.driver import Budget
from bench.publish import ingestion_targets, publish_table, run_publish, write_publish_docs
from bench.report import table, target_lines, timing, upgrade, write_docs
from bench.scenarios import run_idle, run_target
from bench.stack import ROOT, load_average, start_profiler, stop_all, stop_profiler
from bench.targets import TARGETS, resolve

__all__ = ["main", "make_population", "start_profiler", "stop_profiler"]  # bench.connect_cost imports these

RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_TARGETS = "raw,plain-redis,ours"


# ------------------------------------------------------------------------------
# Data: users, memberships and sessions in bulk
# ------------------------------------------------------------------------------
def make_population(count: int, slug: str = "bench") -> tuple[Any, list[int], list[str]]:
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
    tenant = do_create_tenant(slug=slug, name=slug.title())
    unusable = make_password(None)
    domain = f"@{slug}.test"
    User.objects.bulk_create(
        [User(username=f"{slug}{i}{domain}", email=f"{slug}{i}{domain}", password=unusable) for i in range(count)],
        batch_size=2000,
    )
    users = list(User.objects.filter(email__endswith=domain).order_by("pk"))
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
        services.open_session(user, subs, services.stream_tops(subs.groups))
    return len(captured.captured_queries)


# ------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------
SMOKE = {
    "sizes": "50",
    "messages": 5,
    "interval": 0.05,
    "rate_seconds": 1,
    "per_user_rate": 50,
    "publish_rate": 50,
    "celery_rate": 50,
    "api_rate": 50,
    "per_user_seconds": 1,
    "missed": 3,
    "progress_seconds": 1,
    "publish_seconds": 0.5,
    "idle_sockets": 100,
    "idle_broadcasts": 2,
    "idle_window": 1,
    "wait": 10,
    "connect_timeout": 30,
    "storm_timeout": 20,
    "budget": 240,
}


class BenchDatabase:
    """The suite's own database: a SQLite file in its work folder, or a fresh one on a PostgreSQL server.

    The default matches `make run`. With a server URL the database work leaves the web
    process (as in production), so both are worth measuring; the suite never touches the
    server's other databases and drops its own at the end.
    """

    def __init__(self, server_url: str, workdir: Path) -> None:
        self.server_url = server_url
        self.workdir = workdir
        self.name = f"bench_{os.getpid()}"

    def create(self) -> str:
        """Create the database and return its ``DATABASE_URL``."""
        if not self.server_url:
            return f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self._execute(f'CREATE DATABASE "{self.name}"')
        return self.server_url.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        """Drop the database created by ``create`` (SQLite: the file goes with the work folder)."""
        if self.server_url:
            self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(statement)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="50 sockets, every scenario (100 idle sockets), a few seconds each")
    add("--targets", default=DEFAULT_TARGETS, help=f"comma-separated, of: {', '.join(TARGETS)}")
    add("--sizes", default="1000,3000", help="socket counts for the fan-out scenarios, comma-separated")
    add("--all-sizes", action="store_true", help="every scenario at every size, not only at the largest")
    add("--idle-sockets", type=int, default=10_000, help="idle sockets to hold in one process (0: skip)")
    add("--idle-targets", default="raw,ours", help="targets of the idle-sockets scenario")
    add("--idle-timeout", type=float, default=150, help="seconds allowed to connect the idle sockets")
    add("--idle-broadcasts", type=int, default=3, help="tenant broadcasts to the idle sockets, one at a time")
    add("--idle-window", type=float, default=5, help="seconds over which the idle server's CPU is measured")
    add("--messages", type=int, default=10, help="isolated tenant broadcasts, one at a time")
    add("--interval", type=float, default=0.1, help="gap after each isolated broadcast was delivered")
    add("--notifications-count", type=int, default=3, help="tenant-wide notifications, one at a time")
    add("--rate", type=float, default=20, help="sustained broadcasts per second")
    add("--rate-seconds", type=float, default=5, help="length of the sustained phase")
    add("--steady-latency", type=float, default=1.0, help="latency (s) above which the sustained rate is not steady")
    add("--per-user-rate", type=float, default=200, help="one-recipient notify() calls per second")
    add("--publish-rate", type=float, default=1000, help="one-recipient publish() calls per second (issue 14)")
    add("--celery-rate", type=float, default=500, help="one-recipient Celery publish_event tasks per second")
    add("--api-rate", type=float, default=400, help="one-recipient POST /api/v1/notifications calls per second")
    add("--per-user-seconds", type=float, default=3, help="length of each per-user phase")
    add("--missed", type=int, default=5, help="events published while the storm's sockets are away")
    add("--publish-seconds", type=float, default=3, help="length of each ingestion phase (0: skip it)")
    add("--progress-seconds", type=float, default=3, help="length of the progress() tight loop")
    add("--connect-timeout", type=float, default=90, help="seconds allowed to connect the N sockets")
    add("--storm-timeout", type=float, default=30, help="seconds allowed for the reconnect storm's handshakes")
    add("--catch-up-timeout", type=float, default=10, help="seconds allowed after the storm to get missed events")
    add("--wait", type=float, default=30, help="longest wait for one scenario's deliveries")
    add("--concurrency", type=int, default=50, help="handshakes the load client keeps in flight")
    add("--budget", type=float, default=780, help="seconds for the whole suite; later scenarios are skipped")
    add("--no-notifications", dest="notifications", action="store_false", help="skip the notification scenarios")
    add("--fanout-only", action="store_true", help="only the broadcast scenarios (quicker)")
    add("--profile", action="store_true", help="py-spy the server during connect and the sustained phase")
    add("--report", nargs="+", metavar="JSON", help="only rebuild the tables from saved results")
    add("--write-docs", action="store_true", help="put the tables into docs/benchmarks.md")
    add("--out", type=Path, help="where to write the JSON (default: bench/results/bench-<time>.json)")
    add(
        "--database",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="a PostgreSQL server URL (postgres://user@host:port/db) in which the suite creates and then drops"
        " a database of its own; default (empty): a fresh SQLite file, like `make run`",
    )
    opts = parser.parse_args(argv)
    if opts.smoke:
        given = {arg.split("=")[0].lstrip("-").replace("-", "_") for arg in argv if arg.startswith("--")}
        for name, value in SMOKE.items():
            if name not in given:
                setattr(opts, name, value)
    unknown = {k.strip() for k in (opts.targets + "," + opts.idle_targets).split(",") if k.strip()} - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
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
            results += [upgrade(r) for r in payload]
        else:
            results += [upgrade(r) for r in payload["results"]]
            metas.append(payload["meta"])
    order = list(TARGETS)
    results.sort(key=lambda r: (bool(r.get("idle")), r["sockets"], order.index(r["target"])))
    # The ingestion figures of the last run that measured them (a run split in parts has one).
    publish_meta = next((m for m in reversed(metas) if m.get("publish")), None)
    ingestion = ingestion_targets(results, publish_meta["publish"]) if publish_meta else []
    print(f"{table(results)}\n\n{target_lines(results)}\n" + "\n".join(ingestion))
    if write and metas:
        meta = dict(metas[0])
        meta["command"] = " + ".join(m["command"] for m in metas)
        meta["seconds"] = sum(m["seconds"] for m in metas)
        meta["load_end"] = metas[-1]["load_end"]
        write_docs(results, meta)
        if publish_meta:
            # Both blocks from the same runs: otherwise the ingestion block kept an older run's figures.
            write_publish_docs(
                publish_meta["publish"],
                ingestion,
                publish_meta["command"],
                publish_meta["started"],
                report_module.DOCS,
            )
    return results


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "?",
    )
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Ctrl-C too, even when started where SIGINT is ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    opts = parse_args(argv)
    if opts.report:
        return report(opts.report, opts.write_docs)
    started, wall = datetime.now(UTC), time.monotonic()
    budget = Budget(opts.budget)
    start_machine = machine()
    keys = [k.strip() for k in opts.targets.split(",") if k.strip()]
    sizes = sorted({int(s) for s in opts.sizes.split(",") if s.strip()}) if keys else []
    idle_keys = [k.strip() for k in opts.idle_targets.split(",") if k.strip()] if opts.idle_sockets else []
    # Children inherit the limit: the servers hold one fd per socket, like the client.
    want = max([*sizes, opts.idle_sockets, 1]) + 512
    limit = raise_fd_limit(want)
    if limit < want:
        print(f"note: the open-file limit is {limit:,}; sockets per run capped to {limit - 512:,}", flush=True)
        sizes = sorted({min(s, limit - 512) for s in sizes})
        opts.idle_sockets = min(opts.idle_sockets, limit - 512)
    var_dir = Path(os.environ.get("VAR_DIR") or ROOT / "var")
    var_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=var_dir))

    from liveplatform.embedded_redis import start_redis_server

    redis_process = start_redis_server(die_with_parent=True)
    database = BenchDatabase(opts.database, workdir)
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "liveplatform.settings.test",
            "DATABASE_URL": database.create(),
            "REDIS_URL": f"redis://127.0.0.1:{redis_process.port}/0",
            "VAR_DIR": str(workdir),
            "PYTHONUNBUFFERED": "1",
            # The servers and this process (which publishes) must name the same stream keys;
            # the test settings would otherwise pick a prefix here after `env` was copied.
            "REALTIME_STREAM_KEY_PREFIX": os.environ.get("REALTIME_STREAM_KEY_PREFIX", "streams"),
            # One persistent connection in the consumer's sync thread instead of a new
            # SQLite connection per database_sync_to_async call (see docs/benchmarks.md).
            "DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "600"),
            # The API scenario measures capacity, not the per-key rate limit (600/min by default).
            "API_KEY_RATE_LIMIT": os.environ.get("API_KEY_RATE_LIMIT", "1000000/m"),
        }
        env.pop("CHANNEL_LAYER_REDIS_URLS", None)
        os.environ.update(env)
        import django

        django.setup()
        # The producer is this process: one INFO line per publish would bury the report.
        logging.getLogger().setLevel(logging.WARNING)
        import redis
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        # The fan-out tenant; with no fan-out sizes, one member for the queries-per-connect count.
        tenant, user_ids, cookies = make_population(max(sizes, default=1))
        ctx: dict[str, Any] = {
            "env": env,
            "tenant": tenant,
            "user_ids": user_ids,
            "cookies": cookies,
            "workdir": workdir,
            "logs": workdir / "logs",
            "redis": redis.Redis.from_url(env["REDIS_URL"]),
        }
        if idle_keys:
            ctx["idle_tenant"], _, ctx["idle_cookies"] = make_population(opts.idle_sockets, "idle")
        setup_seconds = time.monotonic() - wall
        print(
            f"== set-up took {setup_seconds:.0f} s (workdir {workdir}; 'ours' is {resolve('ours').name})",
            flush=True,
        )
        results: list[dict[str, Any]] = []
        # Written after each target, so an interrupted run keeps what it measured.
        partial = workdir / "partial-results.json"

        def record(result: dict[str, Any]) -> None:
            results.append(result)
            partial.write_text(json.dumps(results, indent=2, default=str))
            note = f"; skipped (time budget): {', '.join(result['skipped'])}" if result.get("skipped") else ""
            print(f"   took {result['seconds']:.0f} s (suite {time.monotonic() - wall:.0f} s){note}", flush=True)
            if "error" in result:
                print(f"   error: {result['error']}", flush=True)

        for n in sizes:
            full = opts.all_sizes or n == sizes[-1]
            for key in keys:
                if not budget.allows(30):
                    print(f"== {key} with {n} sockets: skipped, the time budget is spent", flush=True)
                    continue
                print(f"== {key} with {n} sockets{' (every scenario)' if full else ''} (load {load_average()})")
                record(run_target(key, n, full, ctx, opts, budget))
        for key in idle_keys:
            if not budget.allows(30):
                print(f"== {key} idle: skipped, the time budget is spent", flush=True)
                continue
            print(f"== {key} with {opts.idle_sockets} idle sockets (load {load_average()})", flush=True)
            record(run_idle(key, opts.idle_sockets, ctx, opts, budget))
        publish_figures = None
        if opts.publish_seconds > 0 and budget.allows(30):
            print(f"== publish: durable events/s from producer processes (load {load_average()})", flush=True)
            publish_figures = run_publish(user_ids, opts.publish_seconds)
            print(publish_table(publish_figures), flush=True)
        meta = {
            "command": "python -m bench " + " ".join(argv),
            "started": started.isoformat(timespec="seconds"),
            "machine": start_machine,
            "load_end": load_average(),
            "seconds": time.monotonic() - wall,
            "queries_per_connect": queries_per_connect(user_ids[0], cookies[0]),
            "database": "PostgreSQL" if opts.database else "SQLite",
            "fd_limit": limit,
            "setup_seconds": setup_seconds,
            "publish": publish_figures,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        }
        ingestion = ingestion_targets(results, publish_figures)
        print(f"{table(results)}\n\n{timing(results)}\n\n{target_lines(results)}\n" + "\n".join(ingestion) + "\n")
        out = (
            opts.out or RESULTS_DIR / f"bench-{started.strftime('%Y%m%dT%H%M%S')}{'-smoke' if opts.smoke else ''}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
        print(f"wrote {out}")
        if opts.write_docs:
            write_docs(results, meta)
            if publish_figures:
                write_publish_docs(publish_figures, ingestion, meta["command"], meta["started"], report_module.DOCS)
            print("wrote docs/benchmarks.md")
        print(f"suite took {meta['seconds']:.0f} s")
        return results
    finally:
        # A second Ctrl-C must not leave servers behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_all()
            redis_process.terminate()
            redis_process.wait(timeout=10)
            database.drop()
        finally:
            signal.signal(signal.SIGINT, previous)
