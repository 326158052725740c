"""Garbage collection with thousands of sockets (realtime.memory): long-lived state frozen, cycles still reclaimed."""

from __future__ import annotations

import gc
import weakref

import pytest

from realtime.memory import Collector


class Node:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thawed():
    """No automatic collection during the test; whatever it froze is handed back afterwards."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def test_state_frozen_at_a_beat_waits_for_the_periodic_full_collection(thawed, settings):
    """Tests that a cycle alive at a beat, dropped later, survives ordinary collections and goes at the full one."""
    settings.REALTIME = {**settings.REALTIME, "GC_FREEZE": True, "GC_FULL_SECONDS": 600}
    collector = Collector()
    node = Node()  # a socket's state: alive when the beat freezes it
    collector.on_beat()
    assert gc.get_freeze_count() > 0
    dropped = weakref.ref(node)
    del node  # the socket closes: its state is now garbage in a cycle
    gc.collect()
    assert dropped() is not None, "a frozen object was walked by an ordinary collection"

    settings.REALTIME = {**settings.REALTIME, "GC_FULL_SECONDS": 0}
    collector.on_beat()
    assert dropped() is None, "the periodic full collection did not reclaim a frozen cycle"
    assert gc.get_freeze_count() > 0  # what survived is frozen again


def test_garbage_present_at_a_beat_is_collected_not_frozen(thawed, settings):
    """Tests that a beat collects what is already garbage before freezing the rest (no leak until the full one)."""
    settings.REALTIME = {**settings.REALTIME, "GC_FREEZE": True, "GC_FULL_SECONDS": 600}
    garbage = weakref.ref(Node())  # unreachable already, in a cycle
    assert garbage() is not None
    Collector().on_beat()
    assert garbage() is None


def test_a_burst_of_new_sockets_is_frozen_before_the_beat(thawed, settings):
    """Tests that a reconnect storm's sockets are frozen every FREEZE_AFTER_OPENED, not at the next beat."""
    settings.REALTIME = {**settings.REALTIME, "GC_FREEZE": True}
    collector = Collector()
    gc.unfreeze()
    for _ in range(Collector.FREEZE_AFTER_OPENED - 1):
        collector.on_socket_opened()
    assert gc.get_freeze_count() == 0
    collector.on_socket_opened()
    assert gc.get_freeze_count() > 0


def test_freezing_can_be_turned_off(thawed, settings):
    """Tests REALTIME_GC_FREEZE=false: the collector walks everything, as CPython does by default."""
    settings.REALTIME = {**settings.REALTIME, "GC_FREEZE": False}
    collector = Collector()
    gc.unfreeze()
    collector.on_beat()
    for _ in range(Collector.FREEZE_AFTER_OPENED):
        collector.on_socket_opened()
    assert gc.get_freeze_count() == 0
