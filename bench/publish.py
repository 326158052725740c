"""The ingestion scenario: durable events per second from producer processes (issue 14).

Three paths, each from 1 and from 4 producer processes publishing one event per
user in a loop, all against the suite's own Redis and database:

* ``raw floor``: one Lua script per event (INCR a counter, XADD to a capped stream,
  PUBLISH) on one kept connection: what Redis itself allows, the ceiling;
* ``streams``: ``realtime.streams``' publish (per-stream offset, epoch, history and the
  channel-layer group in one script on the stream's shard);
* ``publish()``: ``realtime.events.publish`` as producers call it today.

Rates are events per second over the slowest producer's time; each path's figure is
also given as a fraction of the raw floor measured in the same run.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

RAW_FLOOR_LUA = """
local top = redis.call("incr", KEYS[1])
redis.call("xadd", KEYS[2], "MAXLEN", "1000", top .. "-0", "d", ARGV[1])
redis.call("publish", ARGV[2], ARGV[1])
return top
"""
PATHS = ("raw floor", "streams", "publish()")
FRAME_REST = '"type":"bench.event","tenant":null,"ts":"2026-12-04T00:00:00+00:00","data":{"n":1}}'


def _producer(path: str, seconds: float, user_ids: list[int], start: Any, results: Any) -> None:
    """One producer process: publish to user after user until ``seconds`` have passed."""
    redis_url = os.environ["REDIS_URL"]
    if path == "raw floor":
        import redis

        client = redis.Redis.from_url(redis_url)
        script = client.register_script(RAW_FLOOR_LUA)

        def send(user_id: int) -> None:
            script(keys=[f"floor:{user_id}:top", f"floor:{user_id}:history"], args=[FRAME_REST, f"floor.{user_id}"])

    elif path == "streams":
        from realtime.streams import RedisStreamStore, StreamMessage

        store = RedisStreamStore([redis_url])

        def send(user_id: int) -> None:
            store.publish(StreamMessage(f"user.{user_id}", FRAME_REST, event_type="bench.event"))

    else:
        import django

        django.setup()
        import logging

        logging.getLogger().setLevel(logging.WARNING)
        from realtime.audience import Audience
        from realtime.events import publish

        def send(user_id: int) -> None:
            publish("bench.event", {"n": 1}, audience=Audience.user(user_id))

    send(user_ids[0])  # connections open, scripts loaded, before the clock starts
    start.wait(60)
    sent, began = 0, time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        send(user_ids[sent % len(user_ids)])
        sent += 1
    results.put((sent, time.perf_counter() - began))


def redis_script_usec() -> tuple[int, int]:
    """Lua script calls and the microseconds Redis spent in them so far (the suite's own Redis)."""
    import redis

    stats = redis.Redis.from_url(os.environ["REDIS_URL"]).info("commandstats")
    calls = usec = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        calls += stats.get(name, {}).get("calls", 0)
        usec += stats.get(name, {}).get("usec", 0)
    return calls, usec


def measure(path: str, producers: int, seconds: float, user_ids: list[int]) -> dict[str, Any]:
    """Events per second from ``producers`` processes on one path, started together, and Redis's time per event."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    shares = [user_ids[index::producers] or user_ids for index in range(producers)]
    processes = [
        context.Process(target=_producer, args=(path, seconds, share, start, results), daemon=True) for share in shares
    ]
    for process in processes:
        process.start()
    try:
        # Each producer sends once before it waits on ``start``, so a warm-up publish is not counted.
        calls_before, usec_before = redis_script_usec()
        start.set()
        outcomes = [results.get(timeout=seconds + 120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    calls_after, usec_after = redis_script_usec()
    calls, usec = calls_after - calls_before, usec_after - usec_before
    sent = sum(count for count, _ in outcomes)
    elapsed = max(took for _, took in outcomes)
    return {
        "producers": producers,
        "events": sent,
        "seconds": round(elapsed, 3),
        "rate": round(sent / elapsed, 1),
        # Redis's own CPU per publish script: what bounds one shard (1e6 / this = scripts/s per core).
        "redis_usec_per_script": round(usec / calls, 1) if calls else None,
    }


def run_publish(user_ids: list[int], seconds: float) -> dict[str, Any]:
    """Every path from 1 and 4 producers; each rate also as a fraction of the raw floor with as many producers."""
    figures: dict[str, Any] = {}
    for path in PATHS:
        for producers in (1, 4):
            print(f"   publish: {path}, {producers} producer(s), {seconds:g} s", flush=True)
            figures.setdefault(path, {})[producers] = measure(path, producers, seconds, user_ids)
    for path in PATHS:
        for producers, row in figures[path].items():
            floor = figures["raw floor"][producers]["rate"]
            row["of_floor"] = round(row["rate"] / floor, 3) if floor else None
    return figures


def publish_table(figures: dict[str, Any]) -> str:
    """The scenario's figures as a Markdown table."""
    lines = [
        "| path | 1 producer (events/s) | of floor | 4 producers (events/s) | of floor | Redis µs per script |",
        "|---|---|---|---|---|---|",
    ]
    for path, rows in figures.items():
        one, four = rows.get(1) or rows.get("1"), rows.get(4) or rows.get("4")
        usec = four.get("redis_usec_per_script")
        lines.append(
            f"| {path} | {one['rate']:,.0f} | {one['of_floor']:.2f} | {four['rate']:,.0f} | {four['of_floor']:.2f}"
            f" | {usec if usec is not None else '-'} |"
        )
    return "\n".join(lines)


DOCS_BEGIN, DOCS_END = "<!-- bench:publish:begin -->", "<!-- bench:publish:end -->"


def write_publish_docs(figures: dict[str, Any], targets: list[str], command: str, started: str, path: Any) -> None:
    """Put the ingestion table and targets between their markers in docs/benchmarks.md (or after the results)."""
    listed = "\n".join(f"- {line.removeprefix('target: ')}" for line in targets)
    block = (
        f"{DOCS_BEGIN}\n**Ingestion (issue 14)**, generated by `{command}` at {started}: durable events per second"
        " from producer processes, one user per event, on the suite's own Redis and database.\n\n"
        f"{publish_table(figures)}\n\n{listed}\n{DOCS_END}"
    )
    text = path.read_text()
    if DOCS_BEGIN in text:
        head, rest = text.split(DOCS_BEGIN, 1)
        text = head + block + rest.split(DOCS_END, 1)[1]
    else:
        text = text.replace("<!-- bench:results:end -->", "<!-- bench:results:end -->\n\n" + block, 1)
    path.write_text(text)


def ingestion_targets(results: list[dict[str, Any]], figures: dict[str, Any] | None) -> list[str]:
    """Issue 14's ingestion targets, each with the figure measured and met / not met / not measured."""
    lines = []

    def add(text: str, met: bool | None, figure: str) -> None:
        status = "not measured" if met is None else "met" if met else "not met"
        lines.append(f"target: {text}: {figure}: {status}")

    rows = (figures or {}).get("publish()", {})
    one, four = rows.get(1) or rows.get("1"), rows.get(4) or rows.get("4")
    if one and four:
        add(
            "durable publish() >= 2,000 events/s from 1 producer, >= 3,000/s from 4, never less with more",
            one["rate"] >= 2000 and four["rate"] >= 3000 and four["rate"] >= one["rate"],
            f"{one['rate']:,.0f}/s and {four['rate']:,.0f}/s ({one['of_floor']:.2f} and {four['of_floor']:.2f}"
            " of the raw Redis floor)",
        )
    else:
        add("durable publish() >= 2,000 events/s from 1 producer, >= 3,000/s from 4", None, "publish scenario not run")
    ours = next((r for r in results if r["target"] == "ours" and r.get("per_user_publish")), None)
    paths = [
        ("per_user_publish", "publish() to a socket at 1,000/s: p99 < 20 ms", 0.020, 1000),
        ("per_user_celery", "Celery publish_event to a socket at 500/s: all reached, p99 < 50 ms", 0.050, 500),
        ("per_user_api", "POST /api/v1/notifications at 400/s per web process: p99 API-to-socket < 100 ms", 0.100, 400),
    ]
    for key, text, limit, rate in paths:
        stats = (ours or {}).get(key)
        if not stats:
            add(text, None, "not run")
            continue
        reached = stats.get("deliveries_per_second") or 0
        p99 = stats.get("latency_p99")
        met = stats.get("all_delivered") and p99 is not None and p99 < limit and reached >= 0.95 * rate
        add(
            text,
            bool(met) if stats.get("asked_rate", 0) >= rate else None,
            f"{stats.get('asked_rate', 0):,.0f}/s asked, {reached:,.0f}/s reached,"
            f" {stats['delivered']:,}/{stats['expected']:,} delivered, p99 {p99 * 1000 if p99 else 0:,.0f} ms",
        )
    return lines
