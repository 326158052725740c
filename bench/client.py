"""The load client: N WebSocket connections in one asyncio process, driven over stdin.

Run by the suite as ``python -m bench.client '<json config>'``. It connects every
socket, prints one JSON line, then obeys commands read line by line from stdin:

* ``expect <count> <timeout>``: wait until every socket has received ``count``
  frames of the bench type since the last ``reset`` (or until ``timeout``) and
  print the latency statistics as one JSON line;
* ``expect_total <total> <timeout>``: the same for all sockets together;
* ``close`` then ``reopen <timeout>``: drop every socket, then reconnect them all at
  once with ``?after=<last cursor seen>``; print the time until all are connected;
* ``progress <quiet seconds> <timeout>``: wait until no ``job.progress`` frame has
  arrived for ``quiet`` seconds, then print how many each socket got and over how long;
* ``reset``: forget the frames received so far; ``quit``: close and exit.

Latency is the receive time minus ``data.sent_at`` (wall clock, same machine);
``notification.created`` frames count too, with ``data.notification.data.sent_at``.
The client reports its own CPU time so that a client bottleneck is visible.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def raise_fd_limit() -> int:
    """Lift the soft file-descriptor limit to the hard one: one socket is one fd."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


@dataclass
class Socket:
    """One connection and what it has seen."""

    index: int
    cookie: str | None
    connection: ClientConnection | None = None
    latencies: list[float] = field(default_factory=list)
    last_cursor: int = 0
    received: int = 0
    progress_times: list[float] = field(default_factory=list)  # arrival of each job.progress frame
    task: asyncio.Task | None = None


class LoadClient:
    """Hold N sockets open and measure what arrives on them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url: str = config["url"]
        self.origin: str | None = config.get("origin")
        self.frame_type: str = config.get("frame_type", "bench.ping")
        self.concurrency: int = config.get("concurrency", 200)
        self.sockets = [Socket(i, cookie) for i, cookie in enumerate(config["cookies"])]
        self.errors: list[str] = []
        self.progress = asyncio.Event()

    async def _open(self, sock: Socket, gate: asyncio.Semaphore, after: int | None = None) -> None:
        headers = {"Cookie": sock.cookie} if sock.cookie else None
        url = self.url if after is None else f"{self.url}?after={after}"
        async with gate:
            for attempt in range(5):
                try:
                    sock.connection = await connect(
                        url,
                        additional_headers=headers,
                        origin=self.origin,
                        compression=None,
                        open_timeout=60,
                        ping_interval=None,
                        max_queue=None,
                    )
                    break
                except (OSError, TimeoutError, Exception) as exc:  # noqa: BLE001 - retried, then reported
                    if attempt == 4:
                        self.errors.append(f"connect {sock.index}: {exc!r}"[:200])
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))
        sock.task = asyncio.create_task(self._read(sock))

    async def _read(self, sock: Socket) -> None:
        markers = [f'"type":"{self.frame_type}"', f'"type": "{self.frame_type}"', '"type":"notification.created"']
        try:
            async for text in sock.connection:
                now = time.time()
                # Cheap filter before parsing: hello, snapshot and ping frames are not counted.
                if not any(marker in text for marker in markers):
                    if '"type":"job.progress"' in text:
                        sock.progress_times.append(now)
                        self.progress.set()
                    elif '"type":"hello"' in text:
                        self._note_cursor(sock, text)
                    continue
                frame = json.loads(text)
                data = frame.get("data") or {}
                # Notifications carry the sender's data inside the notification.
                sent_at = data.get("sent_at") or ((data.get("notification") or {}).get("data") or {}).get("sent_at")
                if isinstance(frame.get("id"), int):
                    sock.last_cursor = max(sock.last_cursor, frame["id"])
                sock.received += 1
                if sent_at is not None:
                    sock.latencies.append(now - sent_at)
                self.progress.set()
        except ConnectionClosed:
            pass

    @staticmethod
    def _note_cursor(sock: Socket, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            return
        cursor = frame.get("id") or (frame.get("data") or {}).get("cursor")
        if isinstance(cursor, int):
            sock.last_cursor = max(sock.last_cursor, cursor)

    async def connect_all(self) -> dict[str, Any]:
        started, cpu = time.monotonic(), cpu_seconds()
        gate = asyncio.Semaphore(self.concurrency)
        await asyncio.gather(*(self._open(sock, gate) for sock in self.sockets))
        return {
            "connected": sum(1 for s in self.sockets if s.connection is not None),
            "connect_seconds": time.monotonic() - started,
            "client_cpu_seconds": cpu_seconds() - cpu,
            "errors": self.errors[:5],
        }

    async def close_all(self) -> dict[str, Any]:
        """Drop every socket (the server sees a mass disconnect)."""
        await self.close()
        await asyncio.gather(*(s.task for s in self.sockets if s.task), return_exceptions=True)
        for sock in self.sockets:
            sock.connection, sock.task = None, None
        return {"closed": len(self.sockets)}

    async def reopen_all(self, timeout: float) -> dict[str, Any]:
        """Reconnect every socket at once, each resuming after the last cursor it saw."""
        cursors = {s.index: s.last_cursor for s in self.sockets}
        self.errors = []
        started, cpu = time.monotonic(), cpu_seconds()
        gate = asyncio.Semaphore(self.concurrency)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._open(s, gate, after=cursors[s.index] or None) for s in self.sockets)), timeout
            )
        except TimeoutError:
            self.errors.append(f"not all sockets reconnected within {timeout}s")
        return {
            "connected": sum(1 for s in self.sockets if s.connection is not None),
            "connect_seconds": time.monotonic() - started,
            "client_cpu_seconds": cpu_seconds() - cpu,
            "errors": self.errors[:5],
        }

    async def expect(self, count: int, timeout: float, total: int | None = None) -> dict[str, Any]:
        """Wait until every socket got ``count`` frames (or, with ``total``, all sockets together)."""
        started, cpu = time.monotonic(), cpu_seconds()
        deadline = started + timeout
        while True:
            done = sum(1 for s in self.sockets if s.received >= count)
            if total is not None:
                finished = sum(s.received for s in self.sockets) >= total
            else:
                finished = done == len(self.sockets)
            if finished or time.monotonic() >= deadline:
                break
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), min(0.5, max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                pass
        latencies = [value for s in self.sockets for value in s.latencies]
        firsts = [min(s.latencies) for s in self.sockets if s.latencies]
        return {
            "sockets": len(self.sockets),
            "complete_sockets": done,
            "delivered": sum(s.received for s in self.sockets),
            "expected": total if total is not None else count * len(self.sockets),
            "wait_seconds": time.monotonic() - started,
            "latency_min": min(latencies) if latencies else None,
            "latency_p50": percentile(latencies, 0.50),
            "latency_p95": percentile(latencies, 0.95),
            "latency_p99": percentile(latencies, 0.99),
            "latency_max": max(latencies) if latencies else None,
            "first_socket_latency": min(firsts) if firsts else None,
            "client_cpu_seconds": cpu_seconds() - cpu,
        }

    async def progress_frames(self, quiet: float, timeout: float) -> dict[str, Any]:
        """Once ``job.progress`` frames stop for ``quiet`` seconds: how many, and at what rate."""
        deadline = time.monotonic() + timeout
        last_count = -1
        while time.monotonic() < deadline:
            count = sum(len(s.progress_times) for s in self.sockets)
            if count == last_count:
                break
            last_count = count
            await asyncio.sleep(quiet)  # the client's own observation window
        receiving = [s for s in self.sockets if s.progress_times]
        spans = [s.progress_times[-1] - s.progress_times[0] for s in receiving if len(s.progress_times) > 1]
        return {
            "sockets_receiving": len(receiving),
            "frames": sum(len(s.progress_times) for s in receiving),
            "max_per_socket": max((len(s.progress_times) for s in receiving), default=0),
            "span_seconds": max(spans, default=0.0),
        }

    def reset(self) -> None:
        for sock in self.sockets:
            sock.latencies = []
            sock.received = 0
            sock.progress_times = []

    async def close(self) -> None:
        await asyncio.gather(
            *(s.connection.close() for s in self.sockets if s.connection is not None), return_exceptions=True
        )


async def _main(config: dict[str, Any]) -> None:
    raise_fd_limit()
    client = LoadClient(config)
    _emit(await client.connect_all())
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, *args = line.split()
        if command == "expect":
            _emit(await client.expect(int(args[0]), float(args[1])))
        elif command == "expect_total":
            _emit(await client.expect(0, float(args[1]), total=int(args[0])))
        elif command == "close":
            _emit(await client.close_all())
        elif command == "reopen":
            _emit(await client.reopen_all(float(args[0])))
        elif command == "progress":
            _emit(await client.progress_frames(float(args[0]), float(args[1])))
        elif command == "reset":
            client.reset()
            _emit({"ok": True})
        elif command == "quit":
            break
    await client.close()


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    with open(sys.argv[1]) as config_file:
        asyncio.run(_main(json.load(config_file)))
