"""What a connect storm costs the sockets that watch a tenant's presence, and how soon they see it right.

``python -m bench.presence_storm`` sets up what the benchmark's platform target uses (a
fresh SQLite database, a Redis of its own, one uvicorn web process as ``ours`` runs it)
with one tenant of ``--members`` members. It opens ``--watchers`` sockets first; each
sends ``presence.watch`` after its ``hello`` and gets the full list, and the bench waits
until every watcher sees every watcher online. Then the storm: every other member's
socket opens as fast as the load client goes (``--concurrency`` handshakes in flight),
none of them watching. It prints:

* the storm's length, from its first connect to its last ``hello``;
* ``presence`` diff frames (and their bytes) per watcher, during the storm and until
  the watcher's view (full frame, then each diff in order) equals all the members;
* how long after the storm's start (and after its last hello) every view was right;
* the web process's CPU seconds over the storm, and until every view was right;
* ``presence`` frames on the sockets that did not watch (must be 0).

``--json`` prints the figures as one JSON line instead. Every wait has a deadline.
Examples::

    .venv/bin/python -m bench.presence_storm --members 3000 --watchers 100
    .venv/bin/python -m bench.presence_storm --members 60 --watchers 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.api_cost import prepare
from bench.client import LoadClient, Socket, raise_fd_limit
from bench.client import cpu_seconds as own_cpu_seconds
from bench.stack import cpu_seconds, load_average, start_server, stop_all
from bench.targets import resolve

SLUG = "storm"  # the storm's tenant


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (the defaults are the sizes the storm is meant to be measured at)."""
    parser = argparse.ArgumentParser(prog="python -m bench.presence_storm", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--members", type=int, default=3000, help="members of the tenant, one socket each (3000)")
    add("--watchers", type=int, default=100, help="sockets that watch presence, opened before the storm (100)")
    add("--concurrency", type=int, default=100, help="handshakes the client keeps in flight in the storm (100)")
    add("--connect-timeout", type=float, default=180, help="seconds allowed to open each phase's sockets (180)")
    add("--settle-timeout", type=float, default=60, help="seconds allowed after the last hello for the views (60)")
    add("--quiet", type=float, default=0, help="seconds to count frames after the views are right (2 x throttle)")
    add("--conn-max-age", default="600", help="DATABASE_CONN_MAX_AGE (the bench sets 600)")
    add("--json", action="store_true", help="print the figures as one JSON line")
    opts = parser.parse_args(argv)
    if not 0 < opts.watchers < opts.members:
        parser.error("--watchers must be at least 1 and fewer than --members")
    return opts


# ------------------------------------------------------------------------------
# The client: bench.client's sockets, with presence views instead of latencies
# ------------------------------------------------------------------------------
@dataclass
class View:
    """What one watching socket knows of the tenant's presence, and the presence frames it got."""

    online: set[int] | None = None  # None until the full frame
    full_bytes: int = 0
    early_diffs: int = 0  # diffs before the full frame (the protocol promises none)
    diffs: list[tuple[float, int]] = field(default_factory=list)  # (arrival, bytes), after the full frame
    right_at: float | None = None  # since when the view equals the expected set (None: not now)


class PresenceClient(LoadClient):
    """The bench's load client (one ``Link`` per socket, no task per socket) keeping a presence view per watcher."""

    def __init__(self, url: str, origin: str, cookies: list[str], concurrency: int) -> None:
        super().__init__({"url": url, "origin": origin, "cookies": cookies, "concurrency": concurrency})
        self.views: dict[int, View] = {}  # socket index -> its view, watchers only
        self.hello_at: dict[int, float] = {}
        self.stray: dict[int, list[int]] = {}  # socket index -> bytes of each presence frame to a non-watcher
        self.expected: set[int] = set()
        self.changed = asyncio.Event()
        self.on_all_hellos: Callable[[], None] | None = None
        self.on_all_right: Callable[[], None] | None = None
        self.first_error: str | None = None

    def add_sockets(self, cookies: list[str]) -> None:
        """Sockets opened later (the storm): added, not connected until the next ``open_all``."""
        start = len(self.sockets)
        self.sockets += [Socket(start + i, cookie) for i, cookie in enumerate(cookies)]

    def watch(self, sock: Socket, slug: str) -> None:
        """Send ``presence.watch`` for ``slug`` on an open socket; its frames are followed from now on."""
        self.views[sock.index] = View()
        send_text(sock.connection, json.dumps({"type": "presence.watch", "tenant": slug}))

    def on_text(self, sock: Socket, text: str) -> None:
        """Note hellos; apply presence frames to the watcher's view; count presence frames to anyone else."""
        head = text[:40]
        now = time.monotonic()
        if '"type":"hello"' in head:
            self.hello_at[sock.index] = now
            if len(self.hello_at) == len(self.sockets) and self.on_all_hellos is not None:
                self.on_all_hellos()
            self.changed.set()
        elif '"type":"error"' in head and self.first_error is None:
            self.first_error = text[:300]
        elif '"type":"presence"' in head:
            view = self.views.get(sock.index)
            if view is None:
                self.stray.setdefault(sock.index, []).append(len(text.encode()))
            else:
                self._apply(view, json.loads(text)["data"], len(text.encode()), now)
            self.changed.set()

    def _apply(self, view: View, data: dict[str, Any], size: int, now: float) -> None:
        if data.get("full"):
            view.online = {entry["user"] for entry in data["online"]}
            view.full_bytes = size
        else:
            if view.online is None:
                view.early_diffs += 1
                return
            view.diffs.append((now, size))
            view.online.update(entry["user"] for entry in data["joined"])
            view.online.difference_update(data["left"])
        right = view.online == self.expected
        if not right:
            view.right_at = None
        elif view.right_at is None:
            view.right_at = now
            if self.on_all_right is not None and self.all_right():
                self.on_all_right()

    def all_right(self) -> bool:
        """Every watcher's view equals the expected set now."""
        return all(view.right_at is not None for view in self.views.values())

    async def until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until ``condition()`` holds, woken by each frame; True if it did."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(0.5, left))
            except TimeoutError:
                pass
        return True


def send_text(link: Any, text: str) -> None:
    """Write one masked text frame on a ``bench.client.Link`` (the load client only ever answers pings)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    if len(payload) < 126:
        header = bytes((0x81, 0x80 | len(payload)))
    else:
        header = bytes((0x81, 0x80 | 126)) + len(payload).to_bytes(2, "big")
    link.transport.write(header + mask + masked)


# ------------------------------------------------------------------------------
# The scenario
# ------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float]:
    """Mean and max of per-socket figures (0 for none): the typical watcher and the worst one."""
    return {"mean": round(sum(values) / len(values), 2) if values else 0, "max": max(values, default=0)}


async def open_watchers(
    client: PresenceClient, opts: argparse.Namespace, watchers: set[int], throttle: float
) -> dict[str, Any]:
    """Open the watchers, watch after each hello, and wait until each sees every watcher online.

    The storm's figures then count only the storm's diffs: the watchers' own joins
    (a diff of their own, or already in a later full frame) are settled before it starts.
    """
    started = time.monotonic()
    opened = await client.open_all(opts.connect_timeout)
    if not opened["all_connected"]:
        raise RuntimeError(f"watchers not connected: {opened}")
    await client.until(lambda: len(client.hello_at) == opts.watchers, opts.connect_timeout)
    for sock in client.sockets:
        client.watch(sock, SLUG)
    full = await client.until(lambda: all(v.online is not None for v in client.views.values()), 30)
    client.expected = watchers
    for view in client.views.values():  # views the full frame alone made right
        view.right_at = time.monotonic() if view.online == client.expected else None
    settled = full and await client.until(client.all_right, 10 + 3 * throttle)
    setup = {
        "seconds": round(time.monotonic() - started, 2),
        "full_frames": sum(v.online is not None for v in client.views.values()),
        "views_right": settled,
        "full_frame_bytes": spread([v.full_bytes for v in client.views.values()])["mean"],
        "error_frame": client.first_error,
    }
    if not settled:
        raise RuntimeError(f"the watchers' views did not settle: {setup}")
    return setup


async def storm(
    opts: argparse.Namespace, port: int, server_pid: int, cookies: list[str], user_ids: list[int]
) -> dict[str, Any]:
    """Open the watchers, then the storm; follow every view until it is right, then count a quiet window more."""
    from django.conf import settings

    throttle = settings.REALTIME["PRESENCE_THROTTLE_SECONDS"]
    client = PresenceClient(f"ws://127.0.0.1:{port}/ws/", f"http://127.0.0.1:{port}", cookies[: opts.watchers], 50)
    figures: dict[str, Any] = {"members": opts.members, "watchers": opts.watchers, "throttle_seconds": throttle}
    try:
        figures["watchers_setup"] = await open_watchers(client, opts, set(user_ids[: opts.watchers]), throttle)

        # 2. The storm: every other member at once; nobody else watches.
        marks: dict[str, float] = {}

        def mark(name: str) -> Callable[[], None]:
            def note() -> None:  # called from on_text at the moment it happens: when, and the server's CPU
                if name not in marks:
                    marks[name], marks[f"{name}_cpu"] = time.monotonic(), cpu_seconds(server_pid)

            return note

        client.add_sockets(cookies[opts.watchers :])
        client.expected = set(user_ids)
        for view in client.views.values():
            view.right_at, view.diffs = None, []
        client.on_all_hellos, client.on_all_right = mark("last_hello"), mark("all_right")
        client.concurrency = opts.concurrency
        cpu0, own_cpu0, storm_start = cpu_seconds(server_pid), own_cpu_seconds(), time.monotonic()
        opened = await client.open_all(opts.connect_timeout)
        hellos = await client.until(lambda: len(client.hello_at) == len(client.sockets), 30)
        right = hellos and await client.until(client.all_right, opts.settle_timeout)
        ended = quiet_start = time.monotonic()
        cpu_end, own_cpu = cpu_seconds(server_pid), own_cpu_seconds() - own_cpu0
        await asyncio.sleep(opts.quiet or 2 * throttle)  # a counting window after the end, not synchronisation
        last_hello = marks.get("last_hello", max(client.hello_at.values()))
        all_right = marks.get("all_right") if right else None
        views = list(client.views.values())

        def frames(until: float | None) -> list[float]:
            return [sum(1 for at, _ in v.diffs if at <= (until or ended)) for v in views]

        figures["storm"] = {
            "sockets": len(client.sockets) - opts.watchers,
            "connected": opened["connected"] - opts.watchers,
            "errors": opened["errors"],
            "seconds_first_connect_to_last_hello": round(last_hello - storm_start, 2),
            "server_cpu_seconds_to_last_hello": round(marks.get("last_hello_cpu", cpu_end) - cpu0, 2),
        }
        figures["views_right"] = right
        figures["watchers_right"] = sum(v.right_at is not None for v in views)
        figures["seconds_storm_start_to_views_right"] = round(all_right - storm_start, 2) if right else None
        figures["seconds_last_hello_to_views_right"] = round(all_right - last_hello, 2) if right else None
        figures["server_cpu_seconds_to_views_right"] = round(marks.get("all_right_cpu", cpu_end) - cpu0, 2)
        figures["client_cpu_seconds"] = round(own_cpu, 2)
        figures["watcher_frames_during_storm"] = spread(frames(last_hello))
        figures["watcher_frames_until_views_right"] = spread(frames(all_right))
        figures["watcher_bytes_until_views_right"] = spread(
            [sum(size for at, size in v.diffs if at <= (all_right or ended)) for v in views]
        )
        figures["watcher_frames_after_views_right"] = spread(
            [sum(1 for at, _ in v.diffs if at > (all_right or quiet_start)) for v in views]
        )
        figures["watcher_diffs_before_full"] = sum(v.early_diffs for v in views)
        strays = [client.stray.get(sock.index, []) for sock in client.sockets[opts.watchers :]]
        figures["nonwatcher_frames"] = {"total": sum(map(len, strays)), "max": max(map(len, strays), default=0)}
        figures["nonwatcher_bytes"] = sum(map(sum, strays))
        figures["error_frame"] = client.first_error
    finally:
        await client.close()
    return figures


def report(figures: dict[str, Any], target: str) -> str:
    """The human-readable block: one line per question the benchmark answers, for a terminal or a report."""
    storm, setup = figures["storm"], figures["watchers_setup"]

    def mm(key: str, unit: str = "") -> str:
        return f"mean {figures[key]['mean']}{unit}, max {figures[key]['max']}{unit}"

    right = figures["seconds_storm_start_to_views_right"]
    lines = [
        f"presence storm: {figures['members']} members, {figures['watchers']} watchers, "
        f"throttle {figures['throttle_seconds']:g} s, {target}",
        f"  watchers: opened and settled in {setup['seconds']} s, full frame {setup['full_frame_bytes']} bytes",
        f"  storm: {storm['connected']}/{storm['sockets']} sockets, first connect to last hello "
        f"{storm['seconds_first_connect_to_last_hello']} s, server CPU {storm['server_cpu_seconds_to_last_hello']} s",
        f"  views right: {'yes' if figures['views_right'] else 'NO'} ({figures['watchers_right']}/"
        f"{figures['watchers']} watchers), {right} s after the storm's start, "
        f"{figures['seconds_last_hello_to_views_right']} s after the last hello",
        f"  server CPU from the storm's start until views right: {figures['server_cpu_seconds_to_views_right']} s"
        f" (client {figures['client_cpu_seconds']} s)",
        f"  presence frames per watcher during the storm: {mm('watcher_frames_during_storm')}",
        f"  presence frames per watcher until views right: {mm('watcher_frames_until_views_right')}",
        f"  presence bytes per watcher until views right: {mm('watcher_bytes_until_views_right')}",
        f"  presence frames per watcher after views right: {mm('watcher_frames_after_views_right')}, "
        f"diffs before the full frame: {figures['watcher_diffs_before_full']}",
        f"  presence frames to non-watching sockets: {figures['nonwatcher_frames']['total']} "
        f"(max {figures['nonwatcher_frames']['max']} per socket, {figures['nonwatcher_bytes']} bytes)",
    ]
    if storm["errors"] or figures["error_frame"]:
        lines.append(f"  errors: {storm['errors']} {figures['error_frame'] or ''}")
    lines.append(f"  load average {load_average()}")
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: every process we started is stopped


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Set up, run the storm against one uvicorn process, print the figures, stop everything."""
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    raise_fd_limit(opts.members + 512)  # the server inherits it: one fd per socket on both sides
    if os.environ.get("VAR_DIR"):
        os.makedirs(os.environ["VAR_DIR"], exist_ok=True)  # prepare() makes its work folder in it
    # prepare() makes its own one-member tenant ("bench") and an API key; the storm's tenant is another.
    ctx = prepare(argparse.Namespace(members=1, conn_max_age=opts.conn_max_age))
    logging.getLogger().setLevel(logging.WARNING)
    from bench.run import make_population

    _tenant, user_ids, cookies = make_population(opts.members, SLUG)
    server = None
    try:
        target = resolve("ours")
        env = {**ctx["env"], "CHANNEL_LAYER_BACKEND": target.layer}
        server, port = start_server(target.server, env, ctx["workdir"] / "logs", ws=target.ws)
        import uvloop

        figures = uvloop.run(storm(opts, port, server.pid, cookies, user_ids))
        figures["ws"] = target.ws
    finally:
        if server is not None:
            server.stop()
        stop_all()
        ctx["redis_process"].terminate()
        ctx["redis_process"].wait(timeout=10)
    print(json.dumps(figures) if opts.json else report(figures, target.name), flush=True)
    return figures


if __name__ == "__main__":
    main()
