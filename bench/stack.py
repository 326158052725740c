"""The real stack for the benchmark: Redis, the web server, a Celery worker, each stopped by pid.

Everything listens on 127.0.0.1 only. Every start waits on a readiness condition
with a deadline; every stop signals the process group it created.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from liveplatform.embedded_redis import free_loopback_port

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_until(condition: Callable[[], object], timeout: float, message: str) -> None:
    """Poll ``condition`` until it is true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {message}")


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def fd_limit(pid: int) -> int | None:
    """A process's soft limit on open files, from /proc (the servers inherit the suite's)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            value = line.split()[3]
            return None if value == "unlimited" else int(value)
    return None


def settle(pid: int, busy: float = 0.2, timeout: float = 5.0) -> float:
    """Wait (at most ``timeout``) until a process uses under ``busy`` of a core; return the seconds waited.

    A server holding thousands of sockets is never idle (heartbeats), so this is a
    fraction of a core, not zero, and the wait is short: it only lets a connect
    burst finish before memory is read.
    """
    started = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(0.5)  # a sampling window, not synchronisation
        now = cpu_seconds(pid)
        if now - last < busy * 0.5:
            break
        last = now
    return time.monotonic() - started


# Every child this process started and has not stopped yet, by pid, for the last sweep.
_RUNNING: dict[int, subprocess.Popen] = {}


def track(popen: subprocess.Popen) -> subprocess.Popen:
    """Remember a child (started with ``start_new_session``) so that ``stop_all`` can stop it."""
    _RUNNING[popen.pid] = popen
    return popen


def untrack(popen: subprocess.Popen) -> None:
    """Forget a child that has exited."""
    _RUNNING.pop(popen.pid, None)


def stop_group(popen: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the child's process group, wait, then SIGKILL what is left."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            break
        try:
            popen.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    _RUNNING.pop(popen.pid, None)


def stop_all() -> None:
    """Stop every child still running (the suite's last ``finally``: Ctrl-C, SIGTERM, an error)."""
    for popen in list(_RUNNING.values()):
        if popen.poll() is None:
            stop_group(popen, grace=5)
        _RUNNING.pop(popen.pid, None)


def load_average() -> str:
    """The machine's 1/5/15-minute load averages, for the record."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Process:
    """A child in its own process group with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = track(
            subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM the group, wait, then SIGKILL what is left."""
        if self.popen is None:
            return
        stop_group(self.popen)
        self.log.close()


def start_server(
    kind: str, env: dict[str, str], log_dir: Path, ws: str = "websockets", port: int | None = None
) -> tuple[Process, int]:
    """Start one web process: ``daphne``, ``uvicorn``, ``plain`` (tutorial consumer) or ``raw``.

    ``ws`` is uvicorn's ``--ws``: a name uvicorn knows or a ``module:Class`` path.
    """
    port = port or free_loopback_port()
    python = sys.executable
    # Every server runs as deploy/entrypoint.sh runs ours: its threads on one CPU
    # (liveplatform/cpu_affinity.py). Ours pins itself; the baselines are pinned from here.
    env = {"CPU_AFFINITY": "auto", **env}
    if kind == "daphne":
        argv = [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "liveplatform.asgi:application"]
    elif kind == "uvicorn":
        argv = [
            python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--ws", ws, "--ws-per-message-deflate", "false", "--backlog", "4096",
            "--log-level", "warning", "liveplatform.asgi:application",
        ]  # fmt: skip
    elif kind == "plain":
        argv = [
            python,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "bench.baselines.plain_channels:application",
        ]
    elif kind == "raw":
        argv = [python, "-m", "bench.baselines.raw_websockets", str(port), env["REDIS_URL"]]
    else:
        raise ValueError(kind)
    process = Process(f"server-{kind}-{port}", argv, env, log_dir).start()

    def ready() -> bool:
        if not process.alive():
            raise RuntimeError(f"{kind} exited:\n{process.output()}")
        return port_open(port)

    try:
        wait_until(ready, 60, f"{kind} on port {port}")
    except BaseException:
        process.stop()
        raise
    if kind in ("plain", "raw") and env["CPU_AFFINITY"] != "off":
        from liveplatform.cpu_affinity import pin_threads, running_cpu

        pin_threads(running_cpu(process.pid), process.pid)
    return process, port


def start_celery_worker(env: dict[str, str], log_dir: Path, *, realtime_queue: bool = False) -> Process:
    """A real Celery worker, as deploy/ runs them.

    The main worker: prefork with one child (the machine has two cores), consuming
    every queue. With ``realtime_queue``: the worker of the "realtime" queue
    (``publish_event`` only), a solo pool.
    """
    role = "realtime" if realtime_queue else "main"
    node = f"bench-{role}-{os.getpid()}@localhost"
    argv = [
        sys.executable, "-m", "celery", "-A", "liveplatform", "worker", "-l", "WARNING", "-n", node,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if realtime_queue:
        argv += ["-Q", "realtime", "--pool", "solo", "--concurrency", "1"]
    else:
        argv += ["--pool", "prefork", "--concurrency", "1"]
    process = Process(f"celery-worker-{role}", argv, env, log_dir).start()
    from liveplatform.celery import app

    def answered() -> bool:
        if not process.alive():
            raise RuntimeError(f"worker exited:\n{process.output()}")
        return any(node in reply for reply in app.control.ping(destination=[node], timeout=0.5))

    try:
        wait_until(answered, 60, "celery worker")
    except BaseException:
        process.stop()
        raise
    return process


def start_profiler(pid: int, path: Path) -> tuple[subprocess.Popen, Path]:
    """Sample the server with py-spy (``pip install py-spy``) while a scenario runs.

    Only the thread holding the GIL is sampled (``--gil``): otherwise the database
    threads waiting for it are counted too, and show as time in SQLite.
    """
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw", "--gil"]
    argv += ["--rate", "250", "--output", str(path), "--nonblocking"]
    popen = track(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    time.sleep(1.0)  # py-spy attaches before the scenario starts; it has no readiness signal
    return popen, path


def stop_profiler(popen: subprocess.Popen, path: Path) -> dict[str, Any]:
    """Stop py-spy and summarise its stacks: the share of samples each function appears in."""
    popen.send_signal(signal.SIGINT)
    popen.wait(timeout=30)
    _RUNNING.pop(popen.pid, None)
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";")]  # fmt: skip
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples

    def top(table: dict[str, int]) -> list[tuple[str, float]]:
        return [
            (name, round(100 * value / total, 1)) for name, value in sorted(table.items(), key=lambda kv: -kv[1])[:25]
        ]

    return (
        {"samples": total, "file": str(path), "inclusive_percent": top(inclusive), "self_percent": top(own)}
        if total
        else {}
    )
