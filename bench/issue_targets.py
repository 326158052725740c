"""Issue 7's targets, judged on a run's results: met, not met, or not measured (and why)."""

from __future__ import annotations

from typing import Any

from bench.markdown import fmt, ms, seconds, times


def primary(results: list[dict[str, Any]]) -> str | None:
    """The platform target the issue's targets are judged on: ``ours`` if it ran, else the first platform target."""
    keys = [r["target"] for r in results if r["target"].startswith("ours")]
    return "ours" if "ours" in keys else (keys[0] if keys else None)


def judge(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each of issue 7's targets with the figure measured and met / not met / not measured."""
    key = primary(results)
    ours = [r for r in results if r["target"] == key]
    fan = {r["sockets"]: r for r in ours if not r.get("idle")}
    largest = max(fan, default=0)

    def at(size: int, scenario: str) -> tuple[dict | None, str]:
        r = fan.get(size)
        if r and r.get(scenario):
            return r[scenario], ""
        measured = [s for s, x in fan.items() if x.get(scenario)]
        return None, f"not run at {size:,} sockets" + (f" (ran at {max(measured):,})" if measured else "")

    out = []

    def add(text: str, met: bool | None, figure: str) -> None:
        status = "not measured" if met is None else "met" if met else "not met"
        out.append({"target": text, "status": status, "figure": figure})

    iso, why = at(3000, "isolated")
    if iso:
        add(
            "tenant broadcast to 3,000 sockets: every socket gets every message, p99 < 300 ms",
            iso["all_delivered"] and iso.get("sent") == iso.get("planned") and (iso["latency_p99"] or 1e9) < 0.3,
            f"{iso['delivered']:,}/{iso['expected']:,} delivered"
            + (f" ({iso['sent']} of {iso['planned']} broadcasts sent)" if iso.get("planned") else "")
            + f", p99 {ms(iso['latency_p99'])}",
        )
    else:
        add("tenant broadcast to 3,000 sockets: every socket gets every message, p99 < 300 ms", None, why)

    plain = {r["sockets"]: r for r in results if r["target"] == "plain-redis" and r.get("isolated")}
    common = [s for s in fan if s in plain and fan[s].get("isolated")]
    size = 3000 if 3000 in common else max(common, default=None)
    if size:
        mine = fan[size]["isolated"]["server_cpu_us_per_delivery"]
        theirs = plain[size]["isolated"]["server_cpu_us_per_delivery"]
        share = mine / theirs if theirs else None
        add(
            "server CPU per delivered fan-out message <= 1/4 of plain Channels' (same run)",
            None if share is None or size < 3000 else share <= 0.25,
            f"{mine:,.0f} vs {theirs:,.0f} µs = {times(share) if share else '-'} at {size:,} sockets"
            + ("" if size >= 3000 else " (judged at 3,000 only)"),
        )
    else:
        add("server CPU per delivered fan-out message <= 1/4 of plain Channels' (same run)", None, "no plain-redis run")

    sus, why = at(3000, "sustained")
    text = "a steady 20 broadcasts/s to 3,000 sockets, none lost, no queueing"
    if sus:
        add(
            text,
            None if (sus.get("asked_rate") or 0) < 20 else sus["steady"],
            f"{sus['delivered']:,}/{sus['expected']:,} delivered at {fmt(sus.get('asked_rate'), '/s')} asked, "
            f"max latency {ms(sus.get('latency_max'))}; highest rate kept up: "
            f"{fmt(sus.get('broadcasts_per_second'), '/s', 1)}",
        )
    else:
        add(text, None, why)

    idle = max((r for r in ours if r.get("idle") and r.get("connect")), key=lambda r: r["sockets"], default=None)
    text = "10,000 idle authenticated sockets in one process at <= 40 KiB each"
    if idle:
        connect = idle["connect"]
        add(
            text,
            None if idle["sockets"] < 10_000 else connect["all_connected"] and idle["rss_per_socket_kib"] <= 40,
            f"{connect['connected']:,}/{idle['sockets']:,} connected in {seconds(connect['connect_seconds'])}, "
            f"{idle['rss_per_socket_kib']:.1f} KiB each",
        )
    else:
        add(text, None, "idle scenario not run")

    rc, why = at(3000, "reconnect")
    text = "reconnect storm of 3,000: all caught up within 10 s, 0 lost"
    if rc and "lost" in rc:
        caught = rc.get("caught_up_seconds")
        add(
            text,
            rc["connected"] == rc["sockets"] and caught is not None and caught <= 10 and rc["lost"] == 0,
            f"{rc['connected']:,}/{rc['sockets']:,} back in {seconds(rc['connect_seconds'])}, caught up "
            f"{'in ' + seconds(caught) if caught is not None else 'not all'}, {rc['lost']} lost",
        )
    else:
        add(text, None, why)

    api = next((r["per_user_api"] for r in ours if r.get("per_user_api")), None)
    text = "200 notifications/s through the HTTP API, one recipient each, p99 API-to-socket < 100 ms"
    if api:
        add(
            text,
            # The target is 200/s: a run that offers more (the publish scenario offers 400) meets
            # it by reaching 200, not by reaching all it offered.
            None
            if (api.get("asked_rate") or 0) < 200
            else api["api_rate"] >= 0.95 * 200 and api["all_delivered"] and (api["latency_p99"] or 1e9) < 0.1,
            f"{fmt(api.get('api_rate'), '/s')} reached of {fmt(api.get('asked_rate'), '/s')} offered, "
            f"{api['http_failures']} failures, "
            f"p99 {ms(api['latency_p99'])}",
        )
    else:
        add(text, None, f"not run at {largest:,} sockets" if largest else "not run")
    for item in out:
        item["judged_on"] = key or "-"
    return out
