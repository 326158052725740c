"""One CPU for all of a web process's threads: Python runs only one of them at a time anyway.

A web process runs its event loop on one thread and each HTTP request's middleware and
view on another (``liveplatform/handlers.py``), plus a few helper threads, and only
the thread holding the GIL runs. Left to the scheduler, those threads sit on different
cores, and every hand-over of the GIL (a view waiting on SQLite or Redis, the loop
taking the next request, the view getting its turn back) wakes a thread on the other
core: the lock's cache lines and the woken thread's working set cross between cores
each time, a dozen times per API call. On the 2-core benchmark machine
``POST /api/v1/notifications`` cost one uvicorn process 3.0-3.3 ms of CPU per call
with its threads spread over both cores and 2.6-2.7 ms with all of them on one
(``python -m bench.api_cost --uvicorn --keep-alive --rate 400``; docs/benchmarks.md).
A process pinned to one core loses nothing to its own parallelism: it had none.

``CPU_AFFINITY`` says where the process's threads run:

* ``off`` (the default outside ``deploy/``): wherever the scheduler puts them;
* ``auto``: all on the CPU the process runs on when the application loads. A pinned
  process cannot be moved by the scheduler away from a busy neighbour, so a thread of
  this module looks every ``CPU_AFFINITY_CHECK_SECONDS`` or so: when other processes
  took a quarter of a CPU more of ours than of another allowed CPU, twice running, it
  moves there (one log line);
* a CPU number: that CPU, never moved (an operator who gives each web process its own).

Threads started later inherit their creator's CPU; a forked child starts unpinned.
Where the system cannot pin (not Linux), ``auto`` does nothing.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Move when other processes took this much more of our CPU than of another allowed one.
OTHERS_BY_TO_MOVE = 0.25


def parse_setting(value: str, allowed: set[int]) -> int | str | None:
    """``None`` for off, ``"auto"``, or the CPU number; raises ``ValueError`` with the reason otherwise."""
    value = (value or "off").strip().lower()
    if value in {"off", "no", "false", ""}:
        return None
    if value == "auto":
        return "auto"
    try:
        cpu = int(value)
    except ValueError:
        raise ValueError(f"CPU_AFFINITY={value!r}: use off, auto or a CPU number") from None
    if cpu not in allowed:
        raise ValueError(f"CPU_AFFINITY={cpu}: this process may run on CPUs {sorted(allowed)}")
    return cpu


def running_cpu(pid: int | str = "self") -> int:
    """The CPU a process's main thread last ran on (``/proc/<pid>/stat``, field 39)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces and parentheses: count fields after its last ')'.
        return int(stat.read().rsplit(")", 1)[1].split()[36])


def pin_threads(cpu: int, pid: int | str = "self") -> None:
    """Put every thread of a process on ``cpu``; threads started later inherit it from their creator.

    The threads are listed again until a pass finds none not yet pinned: one started
    meanwhile by a thread not yet pinned would keep the old CPU.
    """
    pinned: set[str] = set()
    while tids := set(os.listdir(f"/proc/{pid}/task")) - pinned:
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), {cpu})
            except (ProcessLookupError, FileNotFoundError):
                pass  # the thread ended meanwhile
        pinned |= tids


def cpu_times() -> dict[int, tuple[int, int]]:
    """Per CPU, (idle, total) clock ticks since boot, from ``/proc/stat``."""
    times = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *ticks = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(tick) for tick in ticks]
                times[int(name[3:])] = (values[3] + values[4], sum(values[:8]))  # idle + iowait
    return times


def process_cpu_seconds() -> float:
    """CPU seconds this process has used, all threads, user and system."""
    times = os.times()
    return times.user + times.system


def idle_shares(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> dict[int, float]:
    """Each CPU's idle share of the time between two ``cpu_times`` readings."""
    shares = {}
    for cpu, (idle, total) in after.items():
        idle0, total0 = before.get(cpu, (idle, total))
        shares[cpu] = (idle - idle0) / (total - total0) if total > total0 else 1.0
    return shares


def others_on(cpu: int, idle: dict[int, float], own_share: float) -> float:
    """The share of ``cpu`` other processes used: its busy share less ours (which is 0 off our CPU)."""
    return max(0.0, 1.0 - idle.get(cpu, 1.0) - own_share)


def better_cpu(current: int, allowed: set[int], idle: dict[int, float], own_share: float) -> int | None:
    """The CPU to move to, or ``None``: only when others take clearly more of ours than of another.

    ``idle`` is each CPU's idle share over the last interval and ``own_share`` the share
    of one CPU this process used meanwhile: what else ran on our CPU is its busy share
    less ours. Our own threads queueing behind each other is no reason to move: they
    would queue for the GIL anyway.
    """
    others_here = others_on(current, idle, own_share)
    candidates = [cpu for cpu in allowed if cpu != current and cpu in idle]
    if not candidates:
        return None
    idlest = max(candidates, key=lambda cpu: idle[cpu])
    return idlest if others_here - others_on(idlest, idle, 0.0) >= OTHERS_BY_TO_MOVE else None


@dataclass
class Placement:
    """Where this process's threads run, and (for ``auto``) the thread that moves them off a busy CPU.

    Processes started together check on their own schedules (each interval drawn
    between half and one and a half times ``interval``), want the same CPU on two
    checks in a row before they move, and let one check pass after a move: two
    processes sharing a CPU do not both jump to the free one and back.
    """

    allowed: set[int]
    cpu: int
    interval: float
    read_times: Callable[[], dict[int, tuple[int, int]]] = cpu_times
    read_own: Callable[[], float] = process_cpu_seconds
    pin: Callable[[int], None] = pin_threads
    wanted: int | None = None
    resting: bool = False

    def check(self, times_before: dict[int, tuple[int, int]], own_before: float, seconds: float) -> bool:
        """Move to a less busy CPU if the last ``seconds`` say so, twice running; whether it moved."""
        own_share = (self.read_own() - own_before) / seconds if seconds > 0 else 0.0
        idle = idle_shares(times_before, self.read_times())
        if self.resting:
            self.resting = False
            return False
        target = better_cpu(self.cpu, self.allowed, idle, own_share)
        confirmed = target is not None and target == self.wanted
        self.wanted = None if confirmed else target
        if not confirmed:
            return False
        logger.info(
            "moved this process's threads from CPU %d to CPU %d: other processes used %.0f%% of CPU %d, %.0f%% of %d",
            self.cpu,
            target,
            100 * others_on(self.cpu, idle, own_share),
            self.cpu,
            100 * others_on(target, idle, 0.0),
            target,
        )
        self.pin(target)
        self.cpu, self.resting = target, True
        return True

    def watch(self) -> None:
        """Check every ``interval`` seconds or so, for the process's life (a daemon thread that mostly sleeps)."""
        while True:
            times, own, started = self.read_times(), self.read_own(), time.monotonic()
            time.sleep(self.interval * random.uniform(0.5, 1.5))  # the check's period, not a wait for an event
            try:
                self.check(times, own, time.monotonic() - started)
            except OSError:
                logger.warning("could not check this process's CPU placement", exc_info=True)


def place_process(setting: str, check_seconds: float) -> Placement | None:
    """Apply ``CPU_AFFINITY`` to this process's threads; raises ``ValueError`` for a value it cannot apply.

    With ``auto`` on a system that cannot pin (no ``/proc``, no ``sched_setaffinity``)
    the process runs unpinned after one warning. A child forked later (a server that
    loads the application, then forks workers) starts unpinned: the watcher does not
    survive a fork, and a pin it cannot revise would keep every worker on one CPU.
    """
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    chosen = parse_setting(setting, allowed)
    if chosen is None:
        return None
    try:
        cpu = running_cpu() if chosen == "auto" else chosen
        pin_threads(cpu)
    except (AttributeError, OSError) as error:
        if chosen != "auto":
            raise ValueError(f"CPU_AFFINITY={setting}: this system cannot pin a process to a CPU ({error})") from error
        logger.warning("CPU_AFFINITY=auto: this system cannot pin a process to a CPU (%s); running unpinned", error)
        return None
    os.register_at_fork(after_in_child=lambda: os.sched_setaffinity(0, allowed))
    placement = Placement(allowed=set(allowed), cpu=cpu, interval=check_seconds)
    logger.info("this process's threads run on CPU %d (CPU_AFFINITY=%s)", cpu, setting)
    if chosen == "auto" and len(allowed) > 1 and check_seconds > 0:
        # Started after pinning, so it shares the CPU; it only reads /proc and sleeps.
        threading.Thread(target=placement.watch, name="cpu-affinity", daemon=True).start()
    return placement
