"""The load a fault test keeps up while it breaks something: API calls and Celery tasks at a steady rate."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable


class ApiPublisher(threading.Thread):
    """POST a tenant-wide notification every ``interval`` seconds, alternating tenants."""

    def __init__(self, http_url: str, keys: dict, interval: float = 0.5, payload: Callable | None = None) -> None:
        super().__init__(daemon=True)
        self.http_url, self.keys, self.interval = http_url, list(keys.values()), interval
        self.payload = payload or (lambda n: {"tenant": True, "title": f"load {n}", "category": "load"})
        self.results: list[tuple[float, int | str, float, str]] = []  # (time, status, seconds, body)
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            key = self.keys[n % len(self.keys)]
            body = json.dumps(self.payload(n)).encode()
            request = urllib.request.Request(
                f"{self.http_url}/api/v1/notifications",
                data=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                method="POST",
            )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, text = response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                status, text = error.code, error.read().decode(errors="replace")
            except Exception as exc:  # noqa: BLE001 - the server is down: note it and go on
                status, text = type(exc).__name__, ""
            self.results.append((time.time(), status, time.monotonic() - started, text[:300]))
            n += 1
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


class TaskPublisher(threading.Thread):
    """Send ``realtime.tasks.publish_event`` to the stack's worker: events published by Celery."""

    def __init__(self, broker_url: str, tenant_ids: list[int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.broker_url, self.tenant_ids, self.interval = broker_url, tenant_ids, interval
        self.sent = 0
        self.sent_numbers: list[int] = []  # the ``n`` of each task the broker took
        self.sent_at: dict[int, float] = {}  # when (time.time()) the broker took each
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        from celery import Celery

        app = Celery(broker=self.broker_url, set_as_current=False)
        n = 0
        while not self.stopping.is_set():
            tenant_id = self.tenant_ids[n % len(self.tenant_ids)]
            try:
                app.send_task(
                    "realtime.tasks.publish_event",
                    args=["load.tick", {"n": n}],
                    kwargs={"audience_kind": "tenant", "tenant_id": tenant_id},
                    retry=False,
                )
                self.sent += 1
                self.sent_numbers.append(n)
                self.sent_at[n] = time.time()
            except Exception:  # noqa: BLE001 - broker down: this tick is not sent
                self.failed += 1
            n += 1
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def send_task(broker_url: str, name: str, args: list, task_id: str | None = None) -> None:
    """Send one task to the stack's broker (the test process's own Celery app points elsewhere)."""
    from celery import Celery

    Celery(broker=broker_url, set_as_current=False).send_task(name, args=args, task_id=task_id)


# ------------------------------------------------------------------------------
# The verdict: per stream, against the stream's own history
# ------------------------------------------------------------------------------


def start_traffic(stack, cast) -> tuple[ApiPublisher, TaskPublisher]:
    """Start a tenant-wide notification every 0.4 s and a Celery event every 0.5 s; return once both flow."""
    from tests.support.processes import wait_for

    api = ApiPublisher(stack.daphne.http_url, cast.keys, interval=0.4)
    tasks = TaskPublisher(stack.broker_url, [t.pk for t in cast.tenants], interval=0.5)
    api.start()
    tasks.start()
    wait_for(lambda: len(api.results) >= 4 and tasks.sent >= 4, timeout=30, message="traffic flowing")
    return api, tasks
