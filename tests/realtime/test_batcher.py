"""liveplatform.batcher: chores of many requests handed to one call, on a thread of the process."""

from __future__ import annotations

import threading

from liveplatform.batcher import Batcher
from tests.support.processes import wait_for


def test_items_from_many_threads_are_handled_once_each_in_fewer_calls():
    """4 threads add 200 items each: every item is handled once, by the batcher's thread, in batches."""
    handled: list[int] = []
    calls: list[str] = []

    def handle(batch: list[int]) -> None:
        calls.append(threading.current_thread().name)
        handled.extend(batch)

    batcher = Batcher("test-many", handle, delay=lambda: 0.05)

    def add(first: int) -> None:
        for item in range(first, first + 200):
            batcher.add([item])

    threads = [threading.Thread(target=add, args=(n * 200,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    wait_for(lambda: len(handled) == 800, timeout=10, message="every item handled")
    assert sorted(handled) == list(range(800))
    assert 1 <= len(calls) < 100 and set(calls) == {"batcher-test-many"}


def test_flush_handles_what_is_pending_and_a_failing_batch_does_not_stop_the_thread(caplog):
    """A batch whose handler raises is logged and dropped; the next batch is handled."""
    handled: list[str] = []

    def handle(batch: list[str]) -> None:
        if "bad" in batch:
            raise RuntimeError("boom")
        handled.extend(batch)

    batcher = Batcher("test-fail", handle, delay=lambda: 60)  # the thread would wait a minute
    batcher.add(["bad"])
    batcher.flush()
    assert batcher.pending == 0 and "test-fail: a batch of 1 failed" in caplog.text
    batcher.add(["a", "b"])
    batcher.flush()
    assert handled == ["a", "b"]


def test_with_no_delay_items_are_handled_on_the_callers_thread():
    """Delay 0 (the in-process tests' setting): handled at once, inline."""
    seen: list[tuple[str, list[int]]] = []
    batcher = Batcher(
        "test-inline", lambda batch: seen.append((threading.current_thread().name, batch)), delay=lambda: 0
    )
    batcher.add([1, 2])
    assert seen == [(threading.current_thread().name, [1, 2])]
