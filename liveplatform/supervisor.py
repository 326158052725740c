"""Keep a set of child processes running, as supervisord or systemd would, for ``runplatform``.

A child that exits is logged once, its process group is killed (a Celery worker's pool
outlives its parent), and it is started again after a backoff that doubles with each
recent failure. The supervisor gives up, stopping everything, only when one child
fails ``max_failures`` times within ``window`` seconds; otherwise it runs until asked
to stop (Ctrl-C, SIGTERM), and then stops the children in the reverse order of their
start, so Redis outlives the worker that acknowledges tasks in it.

Why our own code and not honcho or supervisor: honcho stops every process when one
exits (what ``runplatform`` did before), and supervisord is a daemon with its own
configuration file and control socket, one more thing a newcomer must install and
learn to read the logs of. What we need is small: start in order with a readiness
check, restart with backoff, a hook when a child died (to give a dead worker's tasks
back to the queue), and prefixed output in one terminal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

COLOURS = {"redis": "\033[31m", "daphne": "\033[36m", "worker": "\033[35m", "beat": "\033[33m"}
RESET = "\033[0m"


@dataclass
class ChildSpec:
    """How to run one child: its command, environment, readiness check and what to do after it died."""

    name: str
    argv: list[str]
    env: dict[str, str]
    # Called until true (or the child exits) before the next child starts; None: started is ready.
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 30.0
    # Called with the wall-clock time the death was noticed, once the child runs again.
    after_restart: Callable[[float], None] | None = None
    # Run in the child before it starts (runplatform: die with the supervisor, even if it is killed).
    preexec_fn: Callable[[], None] | None = None
    # Stopped after every other child (the Redis that the others still write to while they stop).
    stop_last: bool = False
    failures: list[float] = field(default_factory=list)


class Child:
    """One running child, in its own process group so that it can be stopped whole."""

    def __init__(self, spec: ChildSpec, write: Callable[[str], None]) -> None:
        self.spec = spec
        self.write = write
        self.process = subprocess.Popen(
            spec.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=spec.env,
            start_new_session=True,
            preexec_fn=spec.preexec_fn,
            bufsize=1,
            text=True,
            errors="replace",
        )
        self.started_at = time.monotonic()
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        colour = COLOURS.get(self.spec.name, "") if sys.stdout.isatty() else ""
        prefix = f"{colour}[{self.spec.name}]{RESET if colour else ''} "
        for line in stream:
            self.write(prefix + line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class ChildKeepsFailing(Exception):
    """A child failed too often in too short a time: restarting it again would not help."""


class StopFlag:
    """A stop request a signal handler can make: ``set``, ``is_set``, ``wait`` as on ``threading.Event``, with no lock.

    ``Event.set`` takes the lock ``Event.wait`` holds while it wakes up, and a handler
    runs in the main thread between two bytecodes, possibly inside that ``wait``: the
    handler then waits for a lock its own thread holds, for ever. ``make run`` stopped
    answering Ctrl-C and SIGTERM that way (seen here with two signals a moment apart).
    A plain attribute needs no lock; ``wait`` polls it, as every caller here waits in
    steps of 0.2 s or less anyway.
    """

    POLL_SECONDS = 0.02

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Until set or ``timeout`` seconds have passed; whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._set and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self.POLL_SECONDS))
        return self._set


class Supervisor:
    """Start children in order, restart the ones that die, stop them all on request."""

    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        max_failures: int = 5,
        window: float = 60.0,
        backoff_max: float = 8.0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.specs = specs
        self.max_failures, self.window, self.backoff_max = max_failures, window, backoff_max
        self.log = log
        self.children: dict[str, Child] = {}
        self._write_lock = threading.Lock()
        # name -> (monotonic time of the next start, wall-clock time the death was noticed)
        self._pending: dict[str, tuple[float, float]] = {}

    def write(self, text: str) -> None:
        """One line of a child's output (lines of several children never interleave)."""
        with self._write_lock:
            sys.stdout.write(text)
            sys.stdout.flush()

    def pids(self) -> dict[str, int]:
        """The pid of each running child, by name (what the fault tests kill)."""
        return {name: child.pid for name, child in self.children.items() if child.alive()}

    def start(self, stopping: StopFlag | threading.Event) -> None:
        """Start every child in order, each once the previous one is ready."""
        for spec in self.specs:
            if stopping.is_set():
                return
            self._start(spec, stopping)

    def _start(self, spec: ChildSpec, stopping: StopFlag | threading.Event) -> Child:
        child = Child(spec, self.write)
        self.children[spec.name] = child
        if spec.ready is not None:
            deadline = time.monotonic() + spec.ready_timeout
            while not stopping.is_set() and child.alive() and time.monotonic() < deadline:
                if spec.ready():
                    break
                stopping.wait(0.05)
        return child

    def watch(self, stopping: StopFlag | threading.Event) -> None:
        """Restart children that die until ``stopping`` is set; raise ChildKeepsFailing to give up."""
        while not stopping.wait(0.1):
            now = time.monotonic()
            for spec in self.specs:
                child = self.children.get(spec.name)
                if spec.name in self._pending:
                    due, died_at = self._pending[spec.name]
                    if now >= due:
                        del self._pending[spec.name]
                        child = self._start(spec, stopping)
                        self.log(f"{spec.name} restarted (pid {child.pid})")
                        if spec.after_restart is not None and child.alive():
                            self._run_hook(spec, died_at)
                elif child is not None and not child.alive():
                    self._died(spec, child, now)

    def _died(self, spec: ChildSpec, child: Child, now: float) -> None:
        # Whatever the child left in its group (a worker's pool) goes with it.
        child.signal_group(signal.SIGKILL)
        spec.failures = [t for t in spec.failures if now - t < self.window] + [now]
        code = child.process.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if len(spec.failures) >= self.max_failures:
            self.log(f"{spec.name} {how}; {len(spec.failures)} failures in {self.window:g} s: giving up")
            raise ChildKeepsFailing(f"{spec.name} failed {len(spec.failures)} times in {self.window:g} s")
        delay = min(self.backoff_max, 0.25 * 2 ** (len(spec.failures) - 1))
        self.log(f"{spec.name} {how}; restarting it in {delay:g} s")
        self._pending[spec.name] = (now + delay, time.time())

    def _run_hook(self, spec: ChildSpec, died_at: float) -> None:
        try:
            spec.after_restart(died_at)
        except Exception as exc:  # noqa: BLE001 - a failed hook must not stop the platform
            self.log(f"{spec.name}: after-restart step failed: {type(exc).__name__}: {exc}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the children (those marked ``stop_last`` after the others): SIGTERM, wait, then SIGKILL."""
        for last in (False, True):
            batch = [c for c in self.children.values() if c.spec.stop_last is last]
            for child in batch:
                # The main process only: a Celery worker stops its own pool after its tasks finish
                # (a SIGTERM to the pool processes would kill the tasks: WorkerLostError).
                if child.alive():
                    child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for child in batch:
                try:
                    child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.signal_group(signal.SIGKILL)
                    child.process.wait()
                # The group may still hold pool processes that outlived their parent.
                child.signal_group(signal.SIGKILL)
