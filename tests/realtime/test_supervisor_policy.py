"""The supervisor's policy, with tiny children: restart with backoff, give up on a crash loop, stop in order."""

from __future__ import annotations

import sys
import threading

import pytest

from liveplatform.supervisor import ChildKeepsFailing, ChildSpec, Supervisor
from tests.support.processes import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]


def watch_in_thread(supervisor: Supervisor, stopping: threading.Event) -> dict:
    outcome: dict = {}

    def run() -> None:
        try:
            supervisor.watch(stopping)
        except ChildKeepsFailing as exc:
            outcome["gave_up"] = str(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_a_child_that_dies_is_restarted_and_logged_once_per_death():
    """Tests that a killed child gets a new process and one log line, and the others keep their pids."""
    lines: list[str] = []
    supervisor = Supervisor([ChildSpec("a", SLEEPER, {}), ChildSpec("b", SLEEPER, {})], log=lines.append)
    stopping = threading.Event()
    supervisor.start(stopping)
    try:
        before = supervisor.pids()
        watch_in_thread(supervisor, stopping)
        supervisor.children["a"].process.kill()
        wait_for(lambda: supervisor.pids().get("a") not in (None, before["a"]), timeout=10, message="a restarted")
        assert supervisor.pids()["b"] == before["b"]
        assert [line for line in lines if "a was killed by signal 9" in line] == [lines[0]]
    finally:
        stopping.set()
        supervisor.stop(timeout=5)
    assert not any(child.alive() for child in supervisor.children.values())


def test_a_child_that_keeps_failing_stops_the_platform():
    """Tests that five failures within the window end watch() with ChildKeepsFailing, naming the child."""
    lines: list[str] = []
    supervisor = Supervisor(
        [ChildSpec("sleeper", SLEEPER, {}), ChildSpec("crasher", CRASHER, {})],
        max_failures=5,
        window=60,
        log=lines.append,
    )
    stopping = threading.Event()
    supervisor.start(stopping)
    try:
        outcome = watch_in_thread(supervisor, stopping)
        outcome["thread"].join(timeout=30)
        assert "crasher failed 5 times" in outcome.get("gave_up", ""), lines
        # Backoff doubles: 0.25, 0.5, 1, 2 s between the restarts.
        assert [line.rsplit(" ", 2)[-2] for line in lines if "restarting it in" in line] == ["0.25", "0.5", "1", "2"]
    finally:
        stopping.set()
        supervisor.stop(timeout=5)


@pytest.mark.parametrize("hook_fails", [False, True])
def test_the_after_restart_hook_gets_the_time_of_death_and_cannot_stop_the_platform(hook_fails):
    """Tests that the hook runs once the child runs again, with when the death was seen; a failing hook is logged."""
    import time

    calls: list[float] = []
    lines: list[str] = []

    def hook(died_at: float) -> None:
        calls.append(died_at)
        if hook_fails:
            raise RuntimeError("broker gone")

    supervisor = Supervisor([ChildSpec("a", SLEEPER, {}, after_restart=hook)], log=lines.append)
    stopping = threading.Event()
    supervisor.start(stopping)
    try:
        watch_in_thread(supervisor, stopping)
        killed_at = time.time()
        supervisor.children["a"].process.kill()
        wait_for(lambda: calls, timeout=10, message="hook called")
        assert killed_at <= calls[0] <= time.time()
        assert supervisor.children["a"].alive()
        assert any("after-restart step failed" in line for line in lines) is hook_fails
    finally:
        stopping.set()
        supervisor.stop(timeout=5)


def test_the_stop_flag_is_set_by_signals_arriving_while_the_main_thread_waits_on_it():
    """Tests that Ctrl-C and SIGTERM, arriving in bursts while the supervisor waits, always stop it.

    ``threading.Event.set`` in a handler could wait for ever on the lock its own thread
    held inside ``Event.wait``; ``make run`` then ignored every further signal.
    """
    import signal

    from liveplatform.supervisor import StopFlag

    previous = signal.signal(signal.SIGALRM, lambda signum, frame: flag.set())
    try:
        for _ in range(200):
            flag = StopFlag()
            signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0001)  # a burst: every 0.1 ms until cancelled
            try:
                assert flag.wait(30)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
