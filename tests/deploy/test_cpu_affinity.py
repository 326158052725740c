"""A web process's threads on one CPU (``CPU_AFFINITY``, liveplatform/cpu_affinity.py), through the real server.

The image's entrypoint runs web processes with ``auto``: every thread, those started
for requests later included, on the CPU the process started on; moved when other
processes keep that CPU busy while another is free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from accounts.api_keys import do_create_api_key
from liveplatform.cpu_affinity import Placement, better_cpu
from tests.deploy.stack import EntrypointUvicorn
from tests.support.processes import ManagedProcess, wait_for

pytestmark = [pytest.mark.stack]

BUSY_LOOP = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def thread_cpus(pid: int) -> dict[int, str]:
    """Each thread of ``pid`` and the CPUs it may run on (``Cpus_allowed_list``)."""
    cpus = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as status:
                for line in status:
                    if line.startswith("Cpus_allowed_list:"):
                        cpus[int(tid)] = line.split(":", 1)[1].strip()
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return cpus


def one_cpu(pid: int) -> str | None:
    """The one CPU every thread of ``pid`` may run on, or ``None`` (several, or a move half done)."""
    cpus = set(thread_cpus(pid).values())
    only = cpus.pop() if len(cpus) == 1 else ""
    return only if only.isdigit() else None


def notify(server, api_key: str, user_id: int) -> None:
    """One API call: the request runs on a request thread the server starts for it."""
    request = urllib.request.Request(
        f"{server.http_url}/api/v1/notifications",
        data=json.dumps({"user_ids": [user_id], "title": "Pinned"}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


def test_auto_keeps_every_thread_on_one_cpu_and_moves_them_off_a_cpu_another_process_keeps_busy(
    transactional_db, make_tenant, make_member, ops_env, started
):
    """Tests ``auto`` (the entrypoint's default): one CPU for all threads, then a move away from a busy loop."""
    allowed = sorted(os.sched_getaffinity(0))
    assert len(allowed) >= 2, f"this test needs two CPUs to choose from; this machine allows {allowed}"
    acme = make_tenant("acme")
    alice = make_member(acme, email="alice@acme.test")
    _, api_key = do_create_api_key(acme, "affinity test")
    server = started.add(EntrypointUvicorn({**ops_env, "CPU_AFFINITY_CHECK_SECONDS": "0.5"}).start())
    for _ in range(3):
        notify(server, api_key, alice.pk)  # starts request threads after the process pinned itself

    placed = thread_cpus(server.pid)
    assert len(placed) > 3, placed  # the loop, request threads, the checker
    assert len(set(placed.values())) == 1, placed  # one CPU for all (a move re-pins all of them at once)
    cpu = wait_for(lambda: one_cpu(server.pid), message="the web process's threads on one CPU")
    assert int(cpu) in allowed

    # Another process takes that CPU: the web process moves all of its threads elsewhere.
    busy = started.add(ManagedProcess([sys.executable, "-c", BUSY_LOOP, cpu], dict(os.environ)).start())
    new_cpu = wait_for(
        lambda: (found := one_cpu(server.pid)) not in (None, cpu) and found,
        timeout=30,
        message=f"the web process's threads to leave CPU {cpu}, which a busy loop holds",
    )
    busy.stop()
    assert int(new_cpu) in allowed
    assert f"from CPU {cpu} to CPU {new_cpu}" in server.output()
    notify(server, api_key, alice.pk)  # still serving


def test_a_cpu_number_pins_there_and_a_value_it_cannot_apply_stops_the_process_with_the_reason(ops_env, started):
    """Tests an explicit CPU (never moved) and a clear refusal of a bad value at start."""
    last = max(os.sched_getaffinity(0))
    server = started.add(EntrypointUvicorn({**ops_env, "CPU_AFFINITY": str(last)}).start())
    assert set(thread_cpus(server.pid).values()) == {str(last)}

    for value, reason in [("banana", "use off, auto or a CPU number"), ("4096", "this process may run on CPUs")]:
        env = {**ops_env, "CPU_AFFINITY": value}
        loaded = subprocess.run(
            [sys.executable, "-c", "import liveplatform.asgi"], env=env, capture_output=True, text=True, timeout=60
        )
        assert loaded.returncode != 0
        assert f"CPU_AFFINITY={value!r}" in loaded.stderr or f"CPU_AFFINITY={value}" in loaded.stderr
        assert reason in loaded.stderr


@pytest.mark.parametrize(
    ("idle", "own_share", "expected"),
    [
        ({0: 0.0, 1: 0.9}, 0.9, None),  # our own load fills CPU 0: nothing else there
        ({0: 0.0, 1: 0.9}, 0.4, 1),  # others take 0.6 of CPU 0, 0.1 of CPU 1
        ({0: 0.0, 1: 0.2}, 0.4, None),  # CPU 1 is as busy with others: stay
        ({0: 0.5, 1: 1.0}, 0.3, None),  # others take 0.2 of ours: not worth a move
        ({0: 0.0, 1: 0.95, 2: 0.6}, 0.2, 1),  # the idlest of several
    ],
)
def test_a_move_needs_other_processes_to_take_clearly_more_of_our_cpu(idle, own_share, expected):
    """Tests the move rule: threads of our own queueing for the GIL are no reason to move."""
    assert better_cpu(0, set(idle), idle, own_share) == expected


def test_a_process_moves_only_when_two_checks_running_want_the_same_cpu_and_then_rests_one():
    """Tests the watcher's damping: two processes sharing a CPU do not jump together and back."""
    busy_here = {0: (0, 100), 1: (90, 100)}  # over the interval: CPU 0 never idle, CPU 1 idle 90%
    readings = iter([busy_here] * 5)
    moved_to: list[int] = []
    placement = Placement(
        allowed={0, 1},
        cpu=0,
        interval=1.0,
        read_times=lambda: next(readings),
        read_own=lambda: 0.3,
        pin=moved_to.append,
    )
    zero = {0: (0, 0), 1: (0, 0)}
    assert placement.check(zero, 0.0, 1.0) is False  # others took 0.7 of CPU 0: wanted once
    assert placement.check(zero, 0.0, 1.0) is True  # and again: moves
    assert (placement.cpu, moved_to) == (1, [1])
    assert placement.check(zero, 0.0, 1.0) is False  # the check after a move is skipped
    # Now on CPU 1, CPU 0 still looks busy to it: no reason to move back.
    assert placement.check(zero, 0.0, 1.0) is False
    assert moved_to == [1]
