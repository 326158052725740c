"""Fixtures of the deployment tests: processes of their own, stopped by pid after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import CeleryWorker, Daphne, RedisServer, wait_for


class Started:
    """Everything a test started, stopped in reverse order at the end (even on failure)."""

    def __init__(self) -> None:
        self.items: list = []

    def add(self, item):
        self.items.append(item)
        return item

    def redis(self) -> RedisServer:
        return self.add(RedisServer().start())

    def daphnes(self, env: dict[str, str], count: int = 1) -> list[Daphne]:
        """Start ``count`` daphne processes at once and wait until each answers /healthz."""
        servers = [self.add(Daphne(env)) for _ in range(count)]
        for server in servers:
            super(Daphne, server).start()
        for server in servers:
            wait_for(server._ready, timeout=45, message=f"daphne on {server.port}")
        return servers

    def stop_all(self) -> None:
        for item in reversed(self.items):
            try:
                if isinstance(item, CeleryWorker):
                    item.kill()  # a worker's warm shutdown is not under test and takes seconds
                stop = getattr(item, "stop", None) or item.close
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest anyway
                print(f"could not stop {item!r}: {exc!r}")


@pytest.fixture
def started() -> Iterator[Started]:
    """Start processes with ``started.redis()``, ``started.daphnes(env)``, ``started.add(...)``."""
    keeper = Started()
    yield keeper
    keeper.stop_all()


@pytest.fixture
def ops_env(subprocess_env) -> dict[str, str]:
    """The environment for processes these tests start (test settings, the test database)."""
    return {**subprocess_env, "LOG_LEVEL": "INFO"}
