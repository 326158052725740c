"""The load client: N WebSocket connections in one asyncio process, driven over stdin.

Run by the suite as ``python -m bench.client <config.json>``. It prints ``{"ready":
true}``, then obeys commands read line by line from stdin, answering each with one
JSON line. Every command is bounded by the timeout it is given:

* ``open <timeout> [resume]``: connect every socket that is not connected, at most
  ``concurrency`` handshakes in flight; with ``resume``, each asks for
  ``?pos=<its position in each stream>`` (a reconnect storm), the token a browser
  keeps: hello's positions, moved on by every durable frame and resync it saw.
  Sockets still not connected at the timeout are given up and counted;
* ``close``: drop every socket (the server sees a mass disconnect);
* ``expect <count> <timeout> [connected]``: wait until every socket has received
  ``count`` frames of the bench type since the last ``reset`` (or until ``timeout``)
  and print the latency statistics; with ``connected``, sockets that are not
  connected are left out (a storm in which some did not come back);
* ``expect_total <total> <timeout>``: the same for all sockets together;
* ``progress <quiet seconds> <timeout>``: wait until no ``job.progress`` frame has
  arrived for ``quiet`` seconds, then print how many each socket got and over how long;
* ``reset``: forget the frames received so far; ``quit``: close and exit.

Latency is the receive time minus ``data.sent_at`` (wall clock, same machine);
``notification.created`` frames count too, with ``data.notification.data.sent_at``.
A durable frame is known by its ``(stream, offset)``: one seen twice since the last
``reset`` is a duplicate and not counted again; offsets a socket skipped within a
stream are reported as ``offset_gaps`` (lost events, whatever their type).
Frames carrying ``seq`` are also grouped per message, for the first and the last
socket to get each one. The client reports its own CPU time and memory so that a
client bottleneck is visible, and freezes its sockets out of the garbage collector once
they are open (``gc.freeze``), so its own collections do not count as latency.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri


def raise_fd_limit(want: int = 0) -> int:
    """Lift the soft file-descriptor limit (one socket is one fd); return the new soft limit.

    As root the hard limit can be raised too, up to ``want``. Children inherit the
    limit, so the suite calls this before it starts the servers.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            pass  # not privileged: the hard limit stays, and the caller sizes to it
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """This process's resident memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def _number_after(text: str, key: str) -> str | None:
    """The literal after ``"key":`` in a JSON text (its first occurrence), or None."""
    start = text.find(key)
    if start < 0:
        return None
    start += len(key)
    comma, brace = text.find(",", start), text.find("}", start)
    return text[start : brace if comma < 0 or 0 <= brace < comma else comma]


STREAM_PREFIX = '{"stream":"'


def bench_fields(text: str) -> tuple[str | None, int | None, str | None, float | None, int | None]:
    """The frame's stream, offset and epoch, and the ``sent_at`` and ``seq`` the producer put in its data.

    Read from the text, not ``json.loads``: at 60,000 frames a second the client's
    own parsing was most of its CPU. A durable frame starts with its position
    (``{"stream":…,"offset":…,"epoch":…,``, as the stream store writes it); an
    ephemeral one has none. A notification carries the producer's data inside it,
    and its first ``sent_at`` and ``seq`` are those. Anything unexpected falls back
    to the JSON parser.
    """
    try:
        stream = offset = epoch = None
        if text.startswith(STREAM_PREFIX):
            stream = text[len(STREAM_PREFIX) : text.index('"', len(STREAM_PREFIX))]
            offset = int(_number_after(text, '"offset":'))
            epoch = _number_after(text, '"epoch":').strip('"')
        sent_at = _number_after(text, '"sent_at":')
        seq = _number_after(text, '"seq":')
        return (
            stream,
            offset,
            epoch,
            None if sent_at is None else float(sent_at),
            None if seq is None else int(seq),
        )
    except (ValueError, TypeError, AttributeError):
        frame = json.loads(text)
        data = frame.get("data") or {}
        inner = (data.get("notification") or {}).get("data") or {}
        offset = frame.get("offset")
        return (
            frame.get("stream"),
            offset if isinstance(offset, int) else None,
            frame.get("epoch"),
            data.get("sent_at") or inner.get("sent_at"),
            data.get("seq", inner.get("seq")),
        )


def positions_token(positions: dict[str, tuple[int, str]]) -> str:
    """The resume token for ``?pos=``: ``stream:offset:epoch`` per stream (realtime.streams.encode_positions)."""
    return ",".join(f"{stream}:{offset}:{epoch}" for stream, (offset, epoch) in sorted(positions.items()))


def offset_gaps(seen: set[tuple[str, int]]) -> int:
    """Offsets missing inside each stream's run of counted frames: events lost between two that arrived."""
    runs: dict[str, list[int]] = {}
    for stream, offset in seen:
        runs.setdefault(stream, []).append(offset)
    return sum(max(offsets) - min(offsets) + 1 - len(offsets) for offsets in runs.values())


class Link(asyncio.Protocol):
    """One WebSocket connection without a task, queue or coroutine per socket.

    websockets' asyncio client runs a task and a queue per connection and cost about
    46 µs of client CPU per received frame: at 3,000 sockets the client, not the
    server, set the latency (even the raw ceiling's p99 passed 300 ms), and at 20
    broadcasts a second it needed more than a core of its own. Here websockets'
    sans-I/O client does the handshake (request, response, its checks); after it, the
    server's frames (complete, unmasked) are cut from the byte stream here, and text
    frames go straight to ``LoadClient.on_text``: about 1 µs of framing per frame
    instead of 3 for the sans-I/O parser. Pings are answered and a close is echoed,
    as any client does.
    """

    def __init__(self, client: LoadClient, sock: Socket, url: str, headers: dict[str, str], origin: str | None):
        self.client, self.sock = client, sock
        self.protocol: ClientProtocol | None = ClientProtocol(
            parse_uri(url), origin=Origin(origin) if origin else None, max_size=None
        )
        self.request = self.protocol.connect()
        for name, value in headers.items():
            self.request.headers[name] = value
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.lost: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.request)
        for chunk in self.protocol.data_to_send():
            transport.write(chunk)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.protocol is not None:
            self._handshake(data)
            return
        buffer = self.buffer
        buffer += data
        size, position = len(buffer), 0
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            end = position + header + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode == 1:  # text (the server never fragments its frames)
                self.client.on_text(self.sock, buffer[position + header : end].decode())
            elif opcode == 9:  # ping: pong with the same payload
                self._send(0xA, bytes(buffer[position + header : end]))
            elif opcode == 8 and not self.closing:  # close: echo it, then the server closes the connection
                self.closing = True
                self._send(0x8, bytes(buffer[position + header : position + header + 2]))
            position = end
        del buffer[:position]

    def _handshake(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if type(event) is Frame:
                if event.opcode is Opcode.TEXT:
                    self.client.on_text(self.sock, event.data.decode())
            elif isinstance(event, Response) and not self.opened.done():
                if protocol.handshake_exc is not None:
                    self.opened.set_exception(protocol.handshake_exc)
                    self.transport.close()
                    return
                self.opened.set_result(None)
        if self.opened.done():
            # Open: from here on the frames are cut here; keep what the parser had buffered.
            self.buffer += protocol.reader.buffer
            self.protocol = None

    def _send(self, opcode: int, payload: bytes) -> None:
        """Write one masked client frame (RFC 6455: a client masks every frame)."""
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)
        if self.sock.connection is self:
            self.sock.connection = None

    async def close(self) -> None:
        """Close the connection (close handshake, bounded), as a browser closing a tab."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self.closing:
            self.closing = True
            self._send(0x8, (1000).to_bytes(2, "big"))
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), 5)
        except TimeoutError:
            self.transport.abort()


async def open_link(client: LoadClient, sock: Socket, url: str, headers: dict[str, str], origin: str | None) -> Link:
    """Connect and complete the WebSocket handshake; raises what the handshake raised."""
    parts = urlsplit(url)
    link = Link(client, sock, url, headers, origin)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: link, parts.hostname, parts.port)
    try:
        await asyncio.wait_for(asyncio.shield(link.opened), 60)
    except BaseException:
        link.transport.abort()
        raise
    return link


@dataclass
class Socket:
    """One connection and what it has seen."""

    index: int
    cookie: str | None
    connection: Link | None = None
    latencies: list[float] = field(default_factory=list)
    # Per stream: (offset, epoch) through which this socket has seen events; what it resumes from.
    positions: dict[str, tuple[int, str]] = field(default_factory=dict)
    received: int = 0
    ids: set[tuple[str, int]] = field(default_factory=set)  # (stream, offset) counted since the last reset
    offsets: set[tuple[str, int]] = field(default_factory=set)  # every durable frame's, since the last reset
    duplicates: int = 0
    resyncs: int = 0  # streams the server could not replay since the last reset
    progress_times: list[float] = field(default_factory=list)  # arrival of each job.progress frame


class LoadClient:
    """Hold N sockets open and measure what arrives on them."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url: str = config["url"]
        self.origin: str | None = config.get("origin")
        self.frame_type: str = config.get("frame_type", "bench.ping")
        self.concurrency: int = config.get("concurrency", 50)
        self.sockets = [Socket(i, cookie) for i, cookie in enumerate(config["cookies"])]
        self.errors: list[str] = []
        self.progress = asyncio.Event()
        # seq -> [first latency, last latency, sockets that got it], since the last reset
        self.per_message: dict[int, list[float]] = {}
        self.last_at = 0.0
        self.markers = [f'"type":"{self.frame_type}"', f'"type": "{self.frame_type}"', '"type":"notification.created"']

    async def _open(self, sock: Socket, gate: asyncio.Semaphore, resume: str | None, opened: list[float]) -> None:
        headers = {"Cookie": sock.cookie} if sock.cookie else {}
        url = self.url if not resume else f"{self.url}?pos={quote(resume, safe=':,')}"
        async with gate:
            for attempt in range(5):
                try:
                    sock.connection = await open_link(self, sock, url, headers, self.origin)
                    break
                except Exception as exc:  # noqa: BLE001 - retried, then reported
                    sock.connection = None
                    if attempt == 4:
                        self.errors.append(f"connect {sock.index}: {exc!r}"[:200])
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))
        opened.append(time.monotonic())

    def on_text(self, sock: Socket, text: str) -> None:
        """One text frame arrived on ``sock``: count it and note its latency and position."""
        now = time.time()
        # Cheap filter before parsing: hello, snapshot and ping frames are not counted.
        if not any(marker in text for marker in self.markers):
            if '"type":"job.progress"' in text:
                sock.progress_times.append(now)
                self.progress.set()
            elif '"type":"hello"' in text or '"type":"resync"' in text:
                self._note_positions(sock, text)
            elif text.startswith(STREAM_PREFIX):
                stream, offset, epoch, _, _ = bench_fields(text)
                self._advance(sock, stream, offset, epoch)
            return
        stream, offset, epoch, sent_at, seq = bench_fields(text)
        if stream is not None and offset is not None:
            self._advance(sock, stream, offset, epoch)
            if (stream, offset) in sock.ids:
                sock.duplicates += 1
                return
            sock.ids.add((stream, offset))
        sock.received += 1
        self.last_at = now
        if sent_at is not None:
            latency = now - sent_at
            sock.latencies.append(latency)
            if seq is not None:
                entry = self.per_message.get(seq)
                if entry is None:
                    self.per_message[seq] = [latency, latency, 1]
                else:
                    entry[0], entry[1], entry[2] = min(entry[0], latency), max(entry[1], latency), entry[2] + 1
        self.progress.set()

    @staticmethod
    def _advance(sock: Socket, stream: str, offset: int, epoch: str | None) -> None:
        """Move the socket's position in ``stream`` on to ``offset`` (a new epoch replaces the old one)."""
        sock.offsets.add((stream, offset))
        known = sock.positions.get(stream)
        if known is None or known[1] != epoch or offset > known[0]:
            sock.positions[stream] = (offset, epoch or "")

    @staticmethod
    def _note_positions(sock: Socket, text: str) -> None:
        """hello: each followed stream's position (kept where the socket already got further); resync: reset one."""
        try:
            frame = json.loads(text)
        except ValueError:
            return
        data = frame.get("data") or {}
        if frame.get("type") == "hello":
            for stream, position in (data.get("positions") or {}).items():
                sock.positions.setdefault(stream, (position["offset"], position["epoch"]))
        elif frame.get("type") == "resync":
            sock.resyncs += 1
            sock.positions[data["stream"]] = (data["offset"], data["epoch"])

    async def open_all(self, timeout: float, resume: bool = False) -> dict[str, Any]:
        """Connect every socket not connected; give up on the rest after ``timeout`` seconds."""
        self.errors = []
        started, cpu = time.monotonic(), cpu_seconds()
        gate = asyncio.Semaphore(self.concurrency)
        opened: list[float] = []
        todo = [s for s in self.sockets if s.connection is None]
        tasks = [
            asyncio.create_task(self._open(s, gate, positions_token(s.positions) if resume else None, opened))
            for s in todo
        ]
        pending: set[asyncio.Task] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        connected = sum(1 for s in self.sockets if s.connection is not None)
        # As the server does (realtime.memory): what the open sockets hold is never walked
        # again by the collector. A full collection over thousands of them paused this
        # process, and the frames waiting meanwhile showed as the platform's latency.
        gc.collect()
        gc.freeze()
        if pending:
            self.errors.insert(0, f"{len(pending)} handshakes unfinished after {timeout:g} s")
        return {
            "requested": len(self.sockets),
            "connected": connected,
            "all_connected": connected == len(self.sockets),
            # Until the last socket that made it was connected (the whole wait if some did not).
            "connect_seconds": (max(opened) - started if opened else 0.0)
            if connected == len(self.sockets)
            else time.monotonic() - started,
            "client_cpu_seconds": cpu_seconds() - cpu,
            "client_rss_bytes": rss_bytes(),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }

    async def close_all(self) -> dict[str, Any]:
        """Drop every socket (the server sees a mass disconnect)."""
        await self.close()
        for sock in self.sockets:
            sock.connection = None
        return {"closed": len(self.sockets)}

    async def expect(
        self, count: int, timeout: float, total: int | None = None, connected_only: bool = False
    ) -> dict[str, Any]:
        """Wait until every socket got ``count`` frames (or, with ``total``, all sockets together)."""
        started, cpu = time.monotonic(), cpu_seconds()
        deadline = started + timeout
        sockets = [s for s in self.sockets if s.connection is not None] if connected_only else self.sockets
        while True:
            done = sum(1 for s in sockets if s.received >= count)
            finished = sum(s.received for s in sockets) >= total if total is not None else done == len(sockets)
            if finished or time.monotonic() >= deadline:
                break
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), min(0.5, max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                pass
        latencies = [value for s in sockets for value in s.latencies]
        firsts = [entry[0] for entry in self.per_message.values()]
        # The last socket is only known for a message every socket got.
        lasts = [entry[1] for entry in self.per_message.values() if entry[2] >= len(sockets)]
        return {
            "sockets": len(sockets),
            "complete_sockets": done,
            "delivered": sum(s.received for s in sockets),
            "expected": total if total is not None else count * len(sockets),
            "missing": 0 if total is not None else sum(max(0, count - s.received) for s in sockets),
            "duplicates": sum(s.duplicates for s in sockets),
            "offset_gaps": sum(offset_gaps(s.offsets) for s in sockets),
            "resyncs": sum(s.resyncs for s in sockets),
            "wait_seconds": time.monotonic() - started,
            "last_received_at": self.last_at,
            "latency_min": min(latencies) if latencies else None,
            "latency_p50": percentile(latencies, 0.50),
            "latency_p95": percentile(latencies, 0.95),
            "latency_p99": percentile(latencies, 0.99),
            "latency_max": max(latencies) if latencies else None,
            "messages": len(self.per_message),
            "first_socket_latency": percentile(firsts, 0.50),
            "last_socket_latency": percentile(lasts, 0.50),
            "last_socket_latency_max": max(lasts) if lasts else None,
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
            sock.ids = set()
            sock.offsets = set()
            sock.duplicates = 0
            sock.resyncs = 0
            sock.progress_times = []
        self.per_message = {}

    async def close(self) -> None:
        await asyncio.gather(
            *(s.connection.close() for s in self.sockets if s.connection is not None), return_exceptions=True
        )


async def _main(config: dict[str, Any]) -> None:
    raise_fd_limit(len(config["cookies"]) + 256)
    client = LoadClient(config)
    _emit({"ready": True})
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, *args = line.split()
        if command == "open":
            _emit(await client.open_all(float(args[0]), resume="resume" in args[1:]))
        elif command == "expect":
            _emit(await client.expect(int(args[0]), float(args[1]), connected_only="connected" in args[2:]))
        elif command == "expect_total":
            _emit(await client.expect(0, float(args[1]), total=int(args[0])))
        elif command == "close":
            _emit(await client.close_all())
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
    import uvloop  # uvicorn[standard]'s event loop: the client's own cost per frame matters too

    with open(sys.argv[1]) as config_file:
        uvloop.run(_main(json.load(config_file)))
