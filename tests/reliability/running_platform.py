"""``manage.py runplatform`` as a test runs it: a subprocess with its own VAR_DIR, on free ports, stopped by pid.

The fault tests kill the children of this very process (the embedded Redis, the
worker's main process, daphne), as an operator's ``kill -9`` would, and watch its
supervisor bring them back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from liveplatform.embedded_redis import free_loopback_port
from tests.support.processes import LOG_DIR, ROOT, wait_for

# The direct children of runplatform, recognised by their command lines.
CHILD_MARKERS = {
    "redis": "redis-server",
    "daphne": "-m liveplatform.daphne_server",
    "worker": "liveplatform worker",
    "beat": "liveplatform beat",
}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class RunningPlatform:
    """One ``runplatform`` subprocess and what a test needs of it."""

    def __init__(self, env: dict[str, str], var_dir: Path, *args: str) -> None:
        self.var_dir = var_dir
        self.port = free_loopback_port()
        # No REDIS_URL: the platform starts and supervises its own, persistent, under var_dir.
        self.env = {k: v for k, v in env.items() if k != "REDIS_URL"} | {"VAR_DIR": str(var_dir)}
        self.args = ["--port", str(self.port), "--concurrency", "1", *args]
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"runplatform-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> RunningPlatform:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runplatform", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: "is ready" in self.output() or self.process.poll() is not None,
            timeout=90,
            message="runplatform ready",
        )
        assert self.process.poll() is None, self.output()[-3000:]
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return (self.var_dir / "redis.url").read_text().strip()

    @property
    def broker_url(self) -> str:
        return f"{self.redis_url}/1"

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port

    def child_pids(self) -> dict[str, int]:
        """The pid of each child of runplatform, by name (redis, daphne, worker, beat)."""
        pids = {}
        for pid in _children(self.process.pid):
            line = _cmdline(pid)
            for name, marker in CHILD_MARKERS.items():
                if marker in line:
                    pids[name] = pid
        return pids

    def kill_child(self, name: str) -> int:
        """kill -9 one child (only its main process, as an operator would); return its pid."""
        pid = self.child_pids()[name]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 10.0) -> int:
        """Wait until runplatform runs a new ``name``; return its pid."""
        return wait_for(
            lambda: (pid := self.child_pids().get(name)) and pid != old_pid and pid,
            timeout=timeout,
            message=f"{name} restarted\n{self.output()[-2000:]}",
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C: SIGINT to runplatform alone (its children are in process groups of their own)."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        self.log.close()
        return code

    def stop(self) -> None:
        """Stop whatever is left: runplatform by SIGINT, then its children's groups by pid."""
        if self.process is None:
            return
        children = list(self.child_pids().values()) if self.process.poll() is None else []
        if self.process.poll() is None:
            try:
                self.interrupt(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not self.log.closed:
            self.log.close()
