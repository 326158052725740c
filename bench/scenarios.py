"""The benchmark's scenarios: one server under test, the load client, and what to send.

``run_target`` runs the fan-out scenarios at one socket count (and, at the largest
count, every other scenario); ``run_idle`` holds many idle sockets. Every wait is
bounded twice: by the scenario's own limit and by the suite's ``Budget``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.driver import Budget, Client, Steps, paced, record_delivery
from bench.per_user import progress_loop, run_per_user
from bench.stack import (
    Process,
    cpu_seconds,
    fd_limit,
    load_average,
    rss_bytes,
    settle,
    start_profiler,
    start_server,
    stop_profiler,
)
from bench.targets import Publisher, Target, resolve


# ------------------------------------------------------------------------------
# One target at one socket count
# ------------------------------------------------------------------------------
def run_target(
    key: str, n: int, full: bool, ctx: dict[str, Any], opts: argparse.Namespace, budget: Budget
) -> dict[str, Any]:
    """Start one server, connect ``n`` sockets, run the scenarios that apply, stop everything.

    At every size: connect, memory per socket, isolated tenant broadcasts and (ours) a
    tenant-wide notification. With ``full`` (the largest size) also: sustained
    broadcasts, per-user events (ours), job progress (ours) and the reconnect storm.
    """
    target = resolve(key)
    started = time.monotonic()
    result: dict[str, Any] = {"target": key, "name": target.name, "ws": target.ws, "sockets": n, "full": full}
    result["load_before"] = load_average()
    env = {**ctx["env"], "CHANNEL_LAYER_BACKEND": target.layer if target.layer != "-" else "redis"}
    ctx["redis"].flushdb()
    server = client = None
    steps = Steps(result, budget)
    try:
        server, port = start_server(target.server, env, ctx["logs"], ws=target.ws)
        publisher = Publisher(target, ctx["tenant"], env["REDIS_URL"])
        settle(server.pid)
        rss_before = rss_bytes(server.pid)
        cookies = ctx["cookies"][:n] if target.ours else [None] * n
        origin = f"http://127.0.0.1:{port}" if target.ours else None
        client = Client(f"ws://127.0.0.1:{port}/ws/", origin, cookies, ctx["workdir"], opts.concurrency)
        profiler = start_profiler(server.pid, ctx["workdir"] / f"connect-{key}-{n}.txt") if opts.profile else None
        cpu0 = cpu_seconds(server.pid)
        result["connect"] = client.open(budget.cap(opts.connect_timeout))
        result["connect"]["server_cpu_seconds"] = cpu_seconds(server.pid) - cpu0
        if profiler is not None:
            result["connect_profile"] = stop_profiler(*profiler)
        settle(server.pid)
        connected = max(1, result["connect"]["connected"])
        result["rss_per_socket_kib"] = (rss_bytes(server.pid) - rss_before) / connected / 1024
        result["server_rss_mib"] = rss_bytes(server.pid) / 2**20
        result["scenario_seconds"] = {"start_and_connect": round(time.monotonic() - started, 1)}
        steps.run("isolated", 10, lambda: fan_out(server, client, publisher.broadcast, n, opts.messages, opts, budget))
        if target.ours and opts.notifications:
            steps.run(
                "tenant_notification",
                10,
                lambda: fan_out(server, client, publisher.notify_tenant, n, opts.notifications_count, opts, budget),
            )
        if full:
            steps.run("sustained", 15, lambda: sustained(server, client, publisher, n, opts, budget, ctx))
            if target.ours and not opts.fanout_only:
                run_per_user(steps, server, client, publisher, port, ctx, env, opts, budget)
                steps.run("progress", 15, lambda: progress_loop(client, ctx, opts, budget))
            if not opts.fanout_only:
                steps.run("reconnect", 20, lambda: reconnect_storm(server, client, publisher, target, opts, budget))
    except Exception as exc:  # noqa: BLE001 - one failed target must not lose the others' figures
        result["error"] = f"{exc!r}"[:500]
    finally:
        if client is not None:
            client.stop()
        if server is not None:
            server.stop()
    result["seconds"] = time.monotonic() - started
    return result


def fan_out(server: Process, client: Client, send, n: int, messages: int, opts, budget: Budget) -> dict[str, Any]:
    """``messages`` broadcasts one at a time: each goes out once every socket has the previous one (or time is up)."""
    client.command("reset")
    cpu0, ccpu0, started, wall0 = cpu_seconds(server.pid), client.cpu(), time.monotonic(), time.time()
    stop_at = started + budget.cap(opts.wait)
    stats: dict[str, Any] = {}
    sent = 0
    for i in range(messages):
        if sent and time.monotonic() >= stop_at:
            break
        send(i)
        sent += 1
        stats = client.expect(i + 1, max(0.5, stop_at - time.monotonic()))
        if opts.interval:
            time.sleep(opts.interval)  # a gap between broadcasts, so each is delivered alone
    if not sent:
        stats = client.expect(0, 0.1)
    # Messages the time limit left unsent are reported as such, not as lost.
    stats["planned"], stats["sent"] = messages, sent
    stats["expected"] = sent * n
    stats["missing"] = stats["expected"] - min(stats["delivered"], stats["expected"])
    return record_delivery(stats, server, client, cpu0, ccpu0, started, wall0, None, None)


def sustained(server: Process, client: Client, publisher: Publisher, n: int, opts, budget: Budget, ctx) -> dict:
    """``rate`` tenant broadcasts per second for ``rate_seconds``: steady, or queueing up?"""
    count = int(opts.rate * opts.rate_seconds)
    profiler = start_profiler(server.pid, ctx["workdir"] / f"profile-{n}.txt") if opts.profile else None
    client.command("reset")
    cpu0, ccpu0, started, wall0 = cpu_seconds(server.pid), client.cpu(), time.monotonic(), time.time()
    achieved = paced(count, opts.rate, publisher.broadcast, started + budget.cap(opts.rate_seconds * 2))
    stats = client.expect(count, budget.cap(opts.wait))
    if profiler is not None:
        stats["profile"] = stop_profiler(*profiler)
    stats = record_delivery(stats, server, client, cpu0, ccpu0, started, wall0, achieved, opts.rate)
    # The broadcast rate the server kept up with: every socket's frames over the time they took.
    if stats["deliveries_per_second"]:
        stats["broadcasts_per_second"] = min(opts.rate, stats["deliveries_per_second"] / n)
    # Steady: nothing lost and no frame waited long (a backlog makes the latency grow with time).
    stats["steady"] = stats["all_delivered"] and (stats["latency_max"] or 0) <= opts.steady_latency
    return stats


def reconnect_storm(server, client: Client, publisher: Publisher, target: Target, opts, budget: Budget) -> dict:
    """Drop every socket, publish while they are gone, reconnect all at once (ours: each with ``?pos=``).

    Ours resume from their position in each stream they follow; what they missed comes
    back by replay, and it is counted per (stream, offset): lost, duplicated, or skipped
    inside a stream (``offset_gaps``). The baselines have no positions and no replay:
    for them only the reconnect is timed.
    """
    client.command("reset")
    client.command("close")
    missed = opts.missed if target.ours else 0
    for i in range(missed):
        publisher.broadcast(10_000 + i)
    profile_path = Path(tempfile.gettempdir()) / f"storm-{server.pid}.txt"
    profiler = start_profiler(server.pid, profile_path) if opts.profile else None
    cpu0 = cpu_seconds(server.pid)
    reopened = client.open(budget.cap(opts.storm_timeout), resume=target.ours)
    figures = {
        "sockets": reopened["requested"],
        "connected": reopened["connected"],
        "connect_seconds": reopened["connect_seconds"],
        "errors": reopened["errors"],
    }
    if missed:
        caught_up = client.expect(missed, budget.cap(opts.catch_up_timeout), connected_only=True)
        complete = caught_up["complete_sockets"] == caught_up["sockets"]
        figures["caught_up_seconds"] = reopened["connect_seconds"] + caught_up["wait_seconds"] if complete else None
        figures["complete_sockets"] = caught_up["complete_sockets"]
        figures["missed"] = missed
        figures["lost"] = caught_up["missing"]
        figures["duplicates"] = caught_up["duplicates"]
        figures["offset_gaps"] = caught_up["offset_gaps"]
        figures["resyncs"] = caught_up["resyncs"]
    figures["server_cpu_seconds"] = cpu_seconds(server.pid) - cpu0
    figures["server_cpu_ms_per_connect"] = 1000 * figures["server_cpu_seconds"] / max(1, reopened["connected"])
    if profiler is not None:
        figures["profile"] = stop_profiler(*profiler)
    return figures


# ------------------------------------------------------------------------------
# Idle sockets
# ------------------------------------------------------------------------------
def run_idle(key: str, n: int, ctx: dict[str, Any], opts: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    """Connect ``n`` sockets that do nothing: memory and CPU per socket, connect time; then a few broadcasts."""
    target = resolve(key)
    started = time.monotonic()
    result: dict[str, Any] = {"target": key, "name": target.name, "ws": target.ws, "sockets": n, "idle": True}
    result["load_before"] = load_average()
    env = {**ctx["env"], "CHANNEL_LAYER_BACKEND": target.layer if target.layer != "-" else "redis"}
    ctx["redis"].flushdb()
    server = client = None
    try:
        server, port = start_server(target.server, env, ctx["logs"], ws=target.ws)
        publisher = Publisher(target, ctx["idle_tenant"], env["REDIS_URL"])
        result["server_fd_limit"] = fd_limit(server.pid)
        settle(server.pid)
        rss_before = rss_bytes(server.pid)
        cookies = ctx["idle_cookies"][:n] if target.ours else [None] * n
        origin = f"http://127.0.0.1:{port}" if target.ours else None
        client = Client(f"ws://127.0.0.1:{port}/ws/", origin, cookies, ctx["workdir"], opts.concurrency)
        client_rss_before = client.rss()
        cpu0 = cpu_seconds(server.pid)
        opened = client.open(budget.cap(opts.idle_timeout))
        opened["server_cpu_seconds"] = cpu_seconds(server.pid) - cpu0
        result["connect"] = opened
        result["scenario_seconds"] = {"start_and_connect": round(time.monotonic() - started, 1)}
        settle(server.pid, timeout=10)
        connected = max(1, opened["connected"])
        rss_after = rss_bytes(server.pid)
        result["rss_per_socket_kib"] = (rss_after - rss_before) / connected / 1024
        result["server_rss_mib"] = rss_after / 2**20
        result["client_rss_per_socket_kib"] = (client.rss() - client_rss_before) / connected / 1024
        # What holding the sockets costs while nothing is sent (heartbeats, pings).
        cpu1, window = cpu_seconds(server.pid), time.monotonic()
        time.sleep(opts.idle_window)  # the measurement window
        result["idle_cpu_share"] = (cpu_seconds(server.pid) - cpu1) / (time.monotonic() - window)
        if opts.idle_broadcasts and budget.allows(10):
            result["isolated"] = fan_out(server, client, publisher.broadcast, n, opts.idle_broadcasts, opts, budget)
    except Exception as exc:  # noqa: BLE001 - one failed target must not lose the others' figures
        result["error"] = f"{exc!r}"[:500]
    finally:
        if client is not None:
            client.stop()
        if server is not None:
            server.stop()
    result["seconds"] = time.monotonic() - started
    return result
