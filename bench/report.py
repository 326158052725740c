"""The benchmark's report: Markdown tables with ratios to the baselines, and issue 7's targets.

The same text is printed at the end of a run and, with ``--write-docs``, put between
the ``bench:results`` markers of docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.issue_targets import judge, primary
from bench.markdown import fmt, markdown_table, ms, seconds, times
from bench.stack import ROOT

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
BASELINES = (("raw", "raw"), ("plain-redis", "plain"))


def upgrade(result: dict[str, Any]) -> dict[str, Any]:
    """Fill in what JSON written by earlier versions of the suite lacks, so that ``--report`` reads it."""
    for key in ("isolated", "tenant_notification"):
        stats = result.get(key)
        if stats and "planned" not in stats and result["sockets"]:
            # Before 29 Nov 2026 ``expected`` counted every planned message, sent or not.
            planned = stats["expected"] // result["sockets"]
            sent = stats.get("sent", planned)
            stats.update(planned=planned, sent=sent, expected=sent * result["sockets"])
    if result.get("reconnect"):
        result["reconnect"].setdefault("sockets", result["sockets"])
    return result


def find(results: list[dict[str, Any]], key: str, sockets: int, idle: bool) -> dict[str, Any] | None:
    for r in results:
        if r["target"] == key and r["sockets"] == sockets and bool(r.get("idle")) == idle:
            return r
    return None


def versus(results: list[dict[str, Any]], r: dict[str, Any], get: Callable[[dict], float | None]) -> str:
    """`` (7.8x raw, 0.18x plain)``: the figure over the same figure of each baseline at the same size."""
    value = _get(get, r)
    if not value:
        return ""
    parts = []
    for key, label in BASELINES:
        if r["target"] == key:
            continue
        base = find(results, key, r["sockets"], bool(r.get("idle")))
        reference = _get(get, base) if base else None
        # None when the reference is too small to measure (CPU ticks are 10 ms).
        if reference:
            parts.append(f"{times(value / reference)} {label}")
    return f" ({', '.join(parts)})" if parts else ""


def _get(get: Callable[[dict], float | None], r: dict[str, Any]) -> float | None:
    try:
        return get(r)
    except (KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------
def table(results: list[dict[str, Any]]) -> str:
    """Every table of a run, as Markdown."""
    lines: list[str] = []
    lines += _fan_out(results)
    lines += _notification(results)
    lines += _sustained(results)
    lines += _per_user(results)
    lines += _storm(results)
    lines += _idle(results)
    lines += _progress(results)
    errors = [r for r in results if r.get("error")]
    for r in errors:
        lines.append(f"\nError in {r['name']} ({r['sockets']:,} sockets): `{r['error'][:300]}`")
    return "\n".join(lines).strip("\n")


def _fan_out(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        iso = r.get("isolated")
        if not iso:
            continue
        connect = r.get("connect") or {}
        rows.append(
            [
                r["name"] + (" (idle run)" if r.get("idle") else ""),
                f"{r['sockets']:,}",
                f"{connect.get('connected', 0):,} in {seconds(connect.get('connect_seconds'))}"
                + versus(results, r, lambda x: x["connect"]["connect_seconds"]),
                f"{iso['delivered']:,}/{iso['expected']:,}" + _unsent(iso),
                ms(iso.get("first_socket_latency")),
                ms(iso.get("last_socket_latency")),
                ms(iso["latency_p50"]),
                ms(iso["latency_p95"]),
                ms(iso["latency_p99"]) + versus(results, r, lambda x: x["isolated"]["latency_p99"]),
                fmt(iso["server_cpu_us_per_delivery"], " µs")
                + versus(results, r, lambda x: x["isolated"]["server_cpu_us_per_delivery"]),
                fmt(r.get("rss_per_socket_kib"), " KiB", 1) + versus(results, r, lambda x: x["rss_per_socket_kib"]),
            ]
        )
    header = ["target", "sockets", "connected (all N)", "delivered", "first socket", "last socket", "p50", "p95"]
    header += ["p99", "server CPU / delivery", "server RSS / socket"]
    return markdown_table(
        "Fan-out: tenant broadcasts, one at a time",
        header,
        rows,
        "(first and last socket: the median over messages of the first and the last socket to get each one)",
    )


def _unsent(stats: dict[str, Any]) -> str:
    planned, sent = stats.get("planned"), stats.get("sent")
    return f" ({sent} of {planned} sent: time limit)" if planned and sent is not None and sent < planned else ""


def _notification(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        tn = r.get("tenant_notification")
        if not tn:
            continue
        rows.append(
            [
                r["name"],
                f"{r['sockets']:,}",
                f"{tn['delivered']:,}/{tn['expected']:,}" + _unsent(tn),
                ms(tn.get("first_socket_latency")),
                ms(tn.get("last_socket_latency")),
                ms(tn["latency_p50"]),
                ms(tn["latency_p99"]),
                fmt(tn["server_cpu_us_per_delivery"], " µs"),
            ]
        )
    header = ["target", "sockets", "delivered", "first socket", "last socket", "p50", "p99", "server CPU / delivery"]
    return markdown_table(
        "Tenant-wide notification",
        header,
        rows,
        "(`notify(tenant, ALL_MEMBERS)`: one row and one event per member; the baselines have no equivalent)",
    )


def _sustained(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        sus = r.get("sustained")
        if not sus:
            continue
        asked = (sus.get("asked_rate") or 0) * r["sockets"]
        rows.append(
            [
                r["name"],
                f"{r['sockets']:,}",
                f"{sus.get('asked_rate') or 0:g}/s ({asked:,.0f} deliveries/s)",
                f"{sus['delivered']:,}/{sus['expected']:,}",
                fmt(sus.get("deliveries_per_second"), "/s")
                + versus(results, r, lambda x: x["sustained"]["deliveries_per_second"]),
                fmt(sus.get("broadcasts_per_second"), "/s", 1),
                ms(sus["latency_p99"]) + versus(results, r, lambda x: x["sustained"]["latency_p99"]),
                ms(sus.get("latency_max")),
                fmt(sus["server_cpu_us_per_delivery"], " µs")
                + versus(results, r, lambda x: x["sustained"]["server_cpu_us_per_delivery"]),
                {True: "yes", False: "no"}.get(sus.get("steady"), "-"),
                fmt(100 * sus["client_cpu_seconds"] / sus["elapsed_seconds"], "%"),
            ]
        )
    header = ["target", "sockets", "asked", "delivered", "deliveries/s", "broadcasts/s kept up", "p99", "max"]
    header += ["server CPU / delivery", "steady", "load client CPU"]
    return markdown_table(
        "Sustained tenant broadcasts",
        header,
        rows,
        "(steady: every frame delivered, none later than `--steady-latency`; load client CPU in % of one core: "
        "near 100% the client, not the server, is the limit)",
    )


def _per_user(results: list[dict[str, Any]]) -> list[str]:
    labels = {
        "per_user_publish": "`publish()` in the producer",
        "per_user_notify": "`notify()`, the bulk notify service, one recipient per call",
        "per_user_celery": "Celery task `realtime.tasks.publish_event`",
        "per_user_api": "HTTP `POST /api/v1/notifications`, 16 client threads",
    }
    rows = []
    for r in results:
        for key, label in labels.items():
            pu = r.get(key)
            if not pu:
                continue
            failures = str(pu.get("http_failures", "-"))
            rows.append(
                [
                    r["name"],
                    label,
                    fmt(pu.get("asked_rate"), "/s"),
                    fmt(pu.get("deliveries_per_second"), "/s"),
                    f"{pu['delivered']:,}/{pu['expected']:,}",
                    ms(pu["latency_p50"]),
                    ms(pu["latency_p99"]),
                    failures,
                ]
            )
    header = ["target", "path", "asked", "reached (at the sockets)", "delivered", "p50 to the socket", "p99"]
    header += ["HTTP failures"]
    return markdown_table("Per-user events, one recipient each", header, rows, "(the baselines have no users)")


def _storm(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        rc = r.get("reconnect")
        if not rc:
            continue
        lost = f"{rc['lost']:,}" if "lost" in rc else "- (no replay)"
        if "lost" in rc and rc.get("missed"):
            lost += f" of {rc['missed'] * rc['connected']:,}"
        rows.append(
            [
                r["name"],
                f"{r['sockets']:,}",
                f"{rc['connected']:,}/{rc['sockets']:,}",
                seconds(rc["connect_seconds"]) + versus(results, r, lambda x: x["reconnect"]["connect_seconds"]),
                seconds(rc.get("caught_up_seconds")) if "lost" in rc else "-",
                lost,
                str(rc.get("duplicates", "-")),
                str(rc.get("offset_gaps", "-")),
                str(rc.get("resyncs", "-")),
                fmt(rc.get("server_cpu_ms_per_connect"), " ms", 1)
                + versus(results, r, lambda x: x["reconnect"]["server_cpu_ms_per_connect"]),
            ]
        )
    header = ["target", "sockets", "reconnected", "all connected in", "all caught up in", "missed events lost"]
    header += ["duplicates", "offset gaps", "resyncs", "server CPU / connect"]
    return markdown_table(
        "Reconnect storm: every socket at once, resuming with `?pos=<stream:offset:epoch,...>`",
        header,
        rows,
        "(events published while the sockets were away; lost = not received within the catch-up wait;"
        " duplicates and gaps are counted per (stream, offset); a resync is a stream the server could not replay)",
    )


def _idle(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        if not r.get("idle") or "connect" not in r:
            continue
        connect = r["connect"]
        rows.append(
            [
                r["name"],
                f"{r['sockets']:,}",
                f"{connect['connected']:,}",
                seconds(connect["connect_seconds"]) + versus(results, r, lambda x: x["connect"]["connect_seconds"]),
                fmt(r.get("rss_per_socket_kib"), " KiB", 1) + versus(results, r, lambda x: x["rss_per_socket_kib"]),
                fmt(r.get("server_rss_mib"), " MiB"),
                fmt(100 * r["idle_cpu_share"], "%", 1) if "idle_cpu_share" in r else "-",
                fmt(r.get("client_rss_per_socket_kib"), " KiB", 1),
                seconds(connect.get("client_cpu_seconds")),
            ]
        )
    header = ["target", "sockets asked", "connected", "connect time", "server RSS / socket", "server RSS"]
    header += ["server CPU while idle", "client RSS / socket", "client CPU for the connects"]
    return markdown_table("Idle sockets in one server process", header, rows)


def _progress(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        for label, p in (r.get("progress") or {}).items():
            rows.append(
                [
                    r["name"],
                    label.replace("_", " "),
                    fmt(p["calls_per_second"]),
                    f"{p['published_per_second']:.1f} ({p['published']})",
                    f"{p['socket_frames_per_second']:.1f} ({p['socket_frames']})",
                ]
            )
    header = ["target", "total", "progress() calls/s", "messages published/s", "frames at the socket/s"]
    return markdown_table(
        "Job progress: `progress()` in a tight loop (the job's own `JobContext`), and what the owner's socket got",
        header,
        rows,
    )


def timing(results: list[dict[str, Any]]) -> str:
    """How long each target took, and what the budget made the suite skip."""
    rows = []
    for r in results:
        skipped = ", ".join(r.get("skipped", [])) or "-"
        kind = "idle" if r.get("idle") else "every scenario" if r.get("full") else "fan-out"
        rows.append([r["name"], f"{r['sockets']:,}", kind, seconds(r.get("seconds")), skipped])
    return "\n".join(
        markdown_table("Time per target", ["target", "sockets", "scenarios", "took", "skipped"], rows)
    ).strip()


def target_lines(results: list[dict[str, Any]]) -> str:
    """One ``target: ...: met / not met`` line per target, for the console."""
    return "\n".join(f"target: {t['target']}: {t['status']} ({t['figure']})" for t in judge(results))


def targets_table(results: list[dict[str, Any]]) -> str:
    key = primary(results)
    name = next((r["name"] for r in results if r["target"] == key), "-")
    rows = [[t["target"], t["figure"], f"**{t['status']}**"] for t in judge(results)]
    return "\n".join(
        markdown_table("Targets (issue 7)", ["target", "measured", "status"], rows, f"judged on `{key}`: {name}")
    ).strip()


def write_docs(results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Replace the generated section of docs/benchmarks.md with this run's tables."""
    text = DOCS.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    m = meta["machine"]
    body = (
        f"\nGenerated by `{meta['command']}` at {meta['started']}; the suite took {meta['seconds']:.0f} s"
        + (
            f" (set-up: migrations, members and sessions, {meta['setup_seconds']:.0f} s)"
            if "setup_seconds" in meta
            else ""
        )
        + ".\n"
        f"Machine: {m['nproc']} cores ({m.get('cpu', '?')}), {m.get('memory', '?')} memory, "
        f"Python {m['python']}, {m['platform']}; load average at the start {m['load_average']}, "
        f"at the end {meta['load_end']}. "
        f"Database: {meta.get('database', 'SQLite')}; queries per authenticated connect: "
        f"{meta['queries_per_connect']}.\n\n"
        f"{targets_table(results)}\n\n{table(results)}\n\n{timing(results)}\n\n"
        "Ratios in brackets: the figure divided by the same figure of the raw ceiling and of plain "
        "Channels at the same socket count in the same run (below 1 is better for times, CPU and "
        "memory; above 1 is better for rates). The sections after this generated block are "
        "hand-written: what the figures mean, what changed, and where the time goes.\n"
    )
    DOCS.write_text(head + BEGIN + body + END + tail)
