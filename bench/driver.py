"""The suite's side of a measurement: the load client process, pacing, the time budget, CPU per delivery.

Every answer from the load client is awaited with a deadline, and every wait is
capped by what is left of the suite's ``Budget``, so a slow platform gives "not
delivered" figures, never a run that does not end.
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.stack import ROOT, Process, cpu_seconds, rss_bytes, stop_group, track, untrack


class Budget:
    """The suite's time limit: each wait is capped by what is left, and late scenarios are skipped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def cap(self, seconds: float) -> float:
        """``seconds``, or what is left of the budget if less (at least one second: a wait must end)."""
        return max(1.0, min(seconds, self.left()))

    def allows(self, seconds: float) -> bool:
        """True when a scenario needing about ``seconds`` can still start."""
        return self.left() >= seconds


class Steps:
    """A target's scenarios in order: each timed, and skipped when the budget no longer allows it."""

    def __init__(self, result: dict[str, Any], budget: Budget) -> None:
        self.result, self.budget = result, budget

    def run(self, name: str, needs: float, scenario) -> None:
        """Put ``scenario()``'s figures under ``name``, unless fewer than ``needs`` seconds are left."""
        if not self.budget.allows(needs):
            self.result.setdefault("skipped", []).append(name)
            return
        started = time.monotonic()
        self.result[name] = scenario()
        self.result.setdefault("scenario_seconds", {})[name] = round(time.monotonic() - started, 1)


def paced(count: int, rate: float, send, until: float | None = None) -> float:
    """Call ``send(i)`` ``count`` times at ``rate`` per second (stopping at ``until``); return the rate reached."""
    started = time.monotonic()
    sent = 0
    for i in range(count):
        due = started + i / rate
        if until is not None and due > until:
            break
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)  # pacing the producer, not synchronisation
        send(i)
        sent += 1
    elapsed = time.monotonic() - started
    return sent / elapsed if elapsed > 0 else float("inf")


# ------------------------------------------------------------------------------
# The client process
# ------------------------------------------------------------------------------
class Client:
    """The load client subprocess (bench.client), driven line by line, every answer awaited with a deadline."""

    def __init__(
        self, url: str, origin: str | None, cookies: list[str | None], workdir: Path, concurrency: int
    ) -> None:
        config = workdir / f"client-{time.monotonic_ns()}.json"
        config.write_text(json.dumps({"url": url, "origin": origin, "cookies": cookies, "concurrency": concurrency}))
        self.popen = track(
            subprocess.Popen(
                [sys.executable, "-m", "bench.client", str(config)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self._read(60)

    def _pump(self) -> None:
        for line in self.popen.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the load client did not answer within {timeout:.0f} s") from None
        if line is None:
            raise RuntimeError("the load client exited")
        return json.loads(line)

    def command(self, line: str, timeout: float = 30) -> dict[str, Any]:
        """Send one command; ``timeout`` is the command's own bound, the answer may take a little longer."""
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()
        return self._read(timeout + 30)

    def open(self, timeout: float, resume: bool = False) -> dict[str, Any]:
        return self.command(f"open {timeout:.1f}{' resume' if resume else ''}", timeout)

    def expect(self, count: int, timeout: float, connected_only: bool = False) -> dict[str, Any]:
        return self.command(f"expect {count} {timeout:.2f}{' connected' if connected_only else ''}", timeout)

    def expect_total(self, total: int, timeout: float) -> dict[str, Any]:
        return self.command(f"expect_total {total} {timeout:.2f}", timeout)

    def cpu(self) -> float:
        return cpu_seconds(self.popen.pid)

    def rss(self) -> int:
        return rss_bytes(self.popen.pid)

    def stop(self) -> None:
        """Ask the client to close its sockets and exit; kill it if it does not within 15 s."""
        try:
            self.popen.stdin.write("quit\n")
            self.popen.stdin.flush()
            self.popen.wait(timeout=15)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            stop_group(self.popen, grace=5)
        untrack(self.popen)


def measure(
    server: Process,
    client: Client,
    send,
    *,
    total: int,
    opts: argparse.Namespace,
    budget: Budget,
    rate: float | None = None,
) -> dict[str, Any]:
    """Publish (``send(until)`` stops by ``until``), wait for ``total`` frames, relate the server's CPU to them."""
    client.command("reset")
    cpu0, ccpu0, started, wall0 = cpu_seconds(server.pid), client.cpu(), time.monotonic(), time.time()
    achieved = send(started + budget.cap(opts.per_user_seconds * 3))
    stats = client.expect_total(total, budget.cap(opts.wait))
    return record_delivery(stats, server, client, cpu0, ccpu0, started, wall0, achieved, rate)


def record_delivery(stats, server, client, cpu0, ccpu0, started, wall0, achieved, rate) -> dict[str, Any]:
    """Add the server's CPU per delivery, the rates and ``all_delivered`` to the client's figures."""
    stats["server_cpu_seconds"] = cpu_seconds(server.pid) - cpu0
    stats["client_cpu_seconds"] = client.cpu() - ccpu0
    stats["elapsed_seconds"] = time.monotonic() - started
    stats["server_cpu_us_per_delivery"] = 1e6 * stats["server_cpu_seconds"] / max(1, stats["delivered"])
    stats["producer_rate"] = achieved
    stats["asked_rate"] = rate
    # Deliveries over the time from the first send to the last frame received.
    span = (stats["last_received_at"] - wall0) if stats["last_received_at"] > wall0 else stats["elapsed_seconds"]
    stats["deliveries_per_second"] = stats["delivered"] / span if span > 0 else None
    stats["all_delivered"] = stats["delivered"] >= stats["expected"] and not stats.get("missing")
    return stats
