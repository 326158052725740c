"""How fast one Celery worker drains ``realtime.tasks.publish_event``, and where its time goes.

``python -m bench.celery_cost`` sets up what the benchmark's Celery scenario uses (a
fresh SQLite database, a Redis of its own, one tenant, ``DATABASE_CONN_MAX_AGE`` as the
bench sets it), queues ``--tasks`` tasks as other machines send them (one recipient
each, with the tenant's id), then starts one worker and times how long it takes to
publish them all (the recipient's stream offset says how many ran). Nothing else runs
beside the worker, so the figure is the worker's ceiling, not the bench's end-to-end
rate. ``--pool``, ``--concurrency`` and ``--prefetch`` try other worker settings;
``--py-spy`` samples the worker and its pool processes while they drain. Examples::

    .venv/bin/python -m bench.celery_cost --tasks 3000
    .venv/bin/python -m bench.celery_cost --tasks 3000 --prefetch 8
    .venv/bin/python -m bench.celery_cost --tasks 3000 --conn-max-age 0 --py-spy
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.api_cost import prepare, summarise_py_spy
from bench.stack import Process, cpu_seconds, wait_until


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks queued before the worker starts (3000)")
    parser.add_argument("--pool", default="prefork", help="the worker's pool: prefork, solo, threads (prefork)")
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes or threads (1, as the bench)")
    parser.add_argument("--prefetch", type=int, default=0, help="--prefetch-multiplier (0: the settings' value)")
    parser.add_argument("--conn-max-age", default="600", help="DATABASE_CONN_MAX_AGE (the bench sets 600)")
    parser.add_argument("--py-spy", action="store_true", help="sample the worker and its pool with py-spy")
    parser.add_argument("--top", type=int, default=20, help="profile rows (20)")
    opts = parser.parse_args(argv)
    opts.members = 1
    return opts


def queue_tasks(count: int, user_id: int, tenant_id: int) -> None:
    """Send ``count`` publish_event tasks over one broker connection, as a busy producer would."""
    from liveplatform.celery import app
    from realtime.tasks import publish_event

    with app.connection_for_write() as connection:
        for n in range(count):
            publish_event.apply_async(
                ("bench.tick", {"n": n}),
                {"audience_kind": "user", "user_id": user_id, "tenant_id": tenant_id},
                connection=connection,
            )


def published(user_id: int) -> int:
    """How many events the recipient's stream has had (its top offset)."""
    from realtime.audience import user_group
    from realtime.streams import stream_store

    stream = user_group(user_id)
    return stream_store().positions([stream])[stream].offset


def worker_argv(opts: argparse.Namespace) -> list[str]:
    argv = [
        sys.executable, "-m", "celery", "-A", "liveplatform", "worker", "-l", "WARNING", "--pool", opts.pool,
        "--concurrency", str(opts.concurrency), "-n", "celery-cost@localhost",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    return argv + (["--prefetch-multiplier", str(opts.prefetch)] if opts.prefetch else [])


def group_cpu(pid: int) -> float:
    """CPU seconds of the worker and its pool processes."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in children)


def drain(opts: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    """Start the worker on the queued tasks; time them from the first publish to the last."""
    user_id, tenant_id = ctx["user_ids"][0], ctx["tenant"].pk
    queue_tasks(opts.tasks, user_id, tenant_id)
    worker = Process("celery-cost-worker", worker_argv(opts), ctx["env"], ctx["workdir"]).start()
    spy = None
    try:
        wait_until(lambda: published(user_id) > 0, 60, f"the worker's first task\n{worker.output()}")
        started, first = time.monotonic(), published(user_id)
        cpu_before = group_cpu(worker.pid)
        if opts.py_spy:
            spy_path = ctx["workdir"] / "celery-py-spy.txt"
            spy_argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker.pid)]
            spy_argv += [
                "--subprocesses",
                "--format",
                "raw",
                "--rate",
                "250",
                "--output",
                str(spy_path),
                "--nonblocking",
            ]
            spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: published(user_id) >= opts.tasks, 600, "every task published")
        elapsed = time.monotonic() - started
        cpu = group_cpu(worker.pid) - cpu_before
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        worker.stop()
    measured = opts.tasks - first
    figures = {
        "tasks": measured,
        "seconds": round(elapsed, 2),
        "tasks_per_second": round(measured / elapsed),
        "worker_cpu_ms_per_task": round(1000 * cpu / measured, 2),
    }
    if spy is not None:
        figures["py_spy"] = summarise_py_spy(spy_path, opts.top)
    return figures


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    ctx = prepare(opts)
    try:
        figures = drain(opts, ctx)
    finally:
        ctx["redis_process"].terminate()
        ctx["redis_process"].wait(timeout=10)
    print(
        f"publish_event, pool {opts.pool} x{opts.concurrency}, prefetch {opts.prefetch or 'settings'}, "
        f"DATABASE_CONN_MAX_AGE={opts.conn_max_age}: {figures['tasks']} tasks in {figures['seconds']} s = "
        f"{figures['tasks_per_second']}/s, {figures['worker_cpu_ms_per_task']} ms of worker CPU per task"
    )
    for table in ("project", "self"):
        for name, share in figures.get("py_spy", {}).get(table, []):
            print(f"  {table:9} {share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
