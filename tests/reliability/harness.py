"""A platform of the test's own (Redis, daphne, Celery worker) plus a realistic load on it.

Fault tests kill parts of this stack, never the session's: each piece is started
here, on 127.0.0.1, and stopped by its process id.

The load: members of two tenants connected through sockets that behave like
``static/js/realtime.js`` (keep the newest cursor, drop ids already seen, resume with
``?after=<cursor>``, full-jitter exponential backoff, ``resume`` when a heartbeat
shows a newer cursor), notifications sent through the HTTP API with tenant API keys,
and events published by a Celery worker. Afterwards every client's sequence of
durable events is compared with the Event table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from django.conf import settings

from tests.support.processes import CeleryWorker, Daphne, RedisServer, wait_for
from tests.support.ws import session_cookie_for

STACK_ENV_DROP = ("CHANNEL_LAYER_REDIS_URLS", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


class TunedDaphne(Daphne):
    """daphne with extra command-line options (e.g. protocol ping interval and timeout)."""

    def __init__(self, env: dict[str, str], port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        super().__init__(env, port)
        self.argv[-1:-1] = list(extra)


class OwnStack:
    """Redis, daphne and (optionally) a Celery worker that this test may kill and restart."""

    def __init__(
        self,
        base_env: dict[str, str],
        *,
        worker: bool = True,
        daphne_extra: tuple[str, ...] = (),
        server: str = "daphne",
    ):
        """``server`` is the web server: daphne (``make run``'s), or uvicorn through the image's entrypoint."""
        self.redis = self.daphne = None
        self.workers: list[CeleryWorker] = []
        try:
            self.redis = RedisServer().start()
            wait_for(self._redis_answers, timeout=20, message="own redis")
            self.env = {k: v for k, v in base_env.items() if k not in STACK_ENV_DROP}
            self.env["REDIS_URL"] = self.redis.url
            self.env["API_KEY_RATE_LIMIT"] = "100000/m"  # the load is one key per tenant
            self.daphne_extra = daphne_extra
            if server == "uvicorn":
                from tests.deploy.stack import EntrypointUvicorn

                self.daphne = EntrypointUvicorn(self.env).start()
            else:
                self.daphne = TunedDaphne(self.env, extra=daphne_extra).start()
            if worker:
                self.add_worker()
        except BaseException:
            # The fixture never gets this object: stop here whatever did start.
            self.stop()
            raise

    @property
    def web(self) -> Daphne:
        """The web server process, whichever server it is (``daphne`` is its older name)."""
        return self.daphne

    @property
    def broker_url(self) -> str:
        return f"{self.redis.url}/1"

    def _redis_answers(self) -> bool:
        import redis

        return redis.Redis.from_url(self.redis.url, socket_timeout=1).ping()

    def redis_info(self, section: str = "clients") -> dict[str, Any]:
        import redis

        return redis.Redis.from_url(self.redis.url, socket_timeout=2).info(section)

    def add_worker(self, concurrency: int = 2) -> CeleryWorker:
        worker = CeleryWorker(self.env, concurrency=concurrency)
        # The test process pings workers through its own Celery app: point it at this broker.
        worker.start = _start_worker_on(worker, self.broker_url)  # type: ignore[method-assign]
        self.workers.append(worker)  # before start: a worker that never answers is still stopped
        worker.start()
        return worker

    def kill_redis(self) -> None:
        self.redis.kill()

    def restart_redis(self) -> None:
        self.redis = RedisServer(port=self.redis.port).start()
        wait_for(self._redis_answers, timeout=20, message="own redis after restart")

    def kill_daphne(self) -> None:
        self.daphne.kill()

    def restart_daphne(self) -> None:
        self.daphne.log.close()
        self.daphne = TunedDaphne(self.env, port=self.daphne.port, extra=self.daphne_extra).start()

    def logs(self) -> str:
        texts = []
        for process in [self.daphne, *self.workers]:
            try:
                texts.append(process.output())
            except FileNotFoundError:  # another run's start-up emptied var/test-logs
                texts.append("")
        return "\n".join(texts)

    def stop(self) -> None:
        """Stop every process this stack started, even if stopping one of them fails."""
        errors = []
        for process in [*self.workers, self.daphne, self.redis]:
            if process is None:
                continue
            try:
                process.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest, then report
                errors.append(exc)
        if errors:
            raise errors[0]


def _start_worker_on(worker: CeleryWorker, broker_url: str) -> Callable[[], CeleryWorker]:
    from celery import Celery

    from tests.support.processes import ManagedProcess

    def start() -> CeleryWorker:
        ManagedProcess.start(worker)
        app = Celery(broker=broker_url, set_as_current=False)

        def answered() -> bool:
            if not worker.alive():
                raise RuntimeError(f"worker exited: {worker.output()[-3000:]}")
            replies = app.control.ping(destination=[worker.node], timeout=0.5)
            return any(worker.node in reply for reply in replies)

        wait_for(answered, timeout=60, interval=0.3, message=f"celery worker {worker.node}")
        return worker

    return start


# ------------------------------------------------------------------------------
# The people: two tenants, their members, API keys
# ------------------------------------------------------------------------------
@dataclass
class Cast:
    tenants: list
    members: list  # (user, tenant)
    keys: dict  # tenant pk -> raw API key
    admins: dict  # tenant pk -> admin user


def make_cast(make_tenant, make_member, per_tenant: int) -> Cast:
    from accounts.api_keys import do_create_api_key

    tenants = [make_tenant("north"), make_tenant("south")]
    members, keys, admins = [], {}, {}
    for tenant in tenants:
        for n in range(per_tenant):
            role = "admin" if n == 0 else "member"
            user = make_member(tenant, role=role, email=f"m{n}@{tenant.slug}.test")
            members.append((user, tenant))
            if n == 0:
                admins[tenant.pk] = user
        keys[tenant.pk] = do_create_api_key(tenant, "load")[1]
    return Cast(tenants, members, keys, admins)


# ------------------------------------------------------------------------------
# Clients that behave like static/js/realtime.js
# ------------------------------------------------------------------------------
@dataclass
class ClientState:
    user: Any
    cookie: str
    cursor: int
    received: list[int] = field(default_factory=list)  # durable ids, first arrival only, in order
    seen_set: set[int] = field(default_factory=set)
    raw: int = 0  # durable frames received, duplicates included
    connects: list[float] = field(default_factory=list)  # wall-clock time of each connection attempt
    opened: list[float] = field(default_factory=list)
    closes: list[Any] = field(default_factory=list)
    resyncs: list[dict] = field(default_factory=list)
    connected: bool = False
    ws: Any = None


class Fleet:
    """Many resuming clients on one asyncio loop in a background thread."""

    # The constants of static/js/realtime.js.
    BASE_BACKOFF, MAX_BACKOFF, STABLE_AFTER, GAP_CONFIRM = 0.5, 30.0, 10.0, 1.5

    def __init__(self, ws_url: str, users: list, cursor: int, heartbeat: float = 5.0) -> None:
        self.ws_url = ws_url
        self.origin = ws_url.replace("ws://", "http://")
        self.heartbeat = heartbeat
        self.clients = [ClientState(user, session_cookie_for(user), cursor) for user in users]
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Fleet:
        self.thread.start()
        try:
            wait_for(
                lambda: all(c.connected for c in self.clients),
                timeout=60 + len(self.clients) / 5,
                interval=0.2,
                message="every client connected",
            )
        except TimeoutError:
            from collections import Counter

            waiting = [c for c in self.clients if not c.connected]
            print(
                f"{len(waiting)} clients not connected; failures: {Counter(str(x) for c in waiting for x in c.closes)}"
            )
            self.stop()  # no client may go on reconnecting after the test has failed
            raise
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.gather(*(self._client(c) for c in self.clients)))

    async def _client(self, state: ClientState) -> None:
        attempt = 0
        # Spread the first connections like page loads, not a thundering herd.
        # One daphne does every handshake's database work on one thread (Channels'
        # thread-sensitive default): about 20 handshakes a second here.
        await asyncio.sleep(random.uniform(0, max(1.0, len(self.clients) / 20)))
        while not self.stopping:
            state.connects.append(time.time())
            opened_at = None
            try:
                async with websockets.connect(
                    f"{self.ws_url}/ws/?after={state.cursor}",
                    additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={state.cookie}"},
                    origin=self.origin,
                    open_timeout=10,
                    max_size=2**22,
                    ping_interval=None,
                ) as ws:
                    opened_at = time.monotonic()
                    state.opened.append(time.time())
                    state.connected = True
                    state.ws = ws
                    await self._read(state, ws, opened_at)
                    state.closes.append(ws.close_code)
            except Exception as exc:  # noqa: BLE001 - any failure means: back off and reconnect
                state.closes.append(type(exc).__name__)
            state.connected = False
            if opened_at is not None and time.monotonic() - opened_at > self.STABLE_AFTER:
                attempt = 0
            if self.stopping:
                break
            ceiling = min(self.MAX_BACKOFF, self.BASE_BACKOFF * 2**attempt)
            attempt += 1
            await asyncio.sleep(random.uniform(0, ceiling))

    async def _read(self, state: ClientState, ws, opened_at: float) -> None:
        dead_after = self.heartbeat * 2 + 5
        while not self.stopping:
            text = await asyncio.wait_for(ws.recv(), timeout=dead_after)
            frame = json.loads(text)
            event_id = frame.get("id")
            if event_id is not None:
                state.raw += 1
                if event_id in state.seen_set:
                    continue
                state.seen_set.add(event_id)
                state.received.append(event_id)
                state.cursor = max(state.cursor, event_id)
            elif frame["type"] == "ping" and frame["data"].get("cursor", 0) > state.cursor:
                behind = frame["data"]["cursor"]

                async def confirm(ws=ws, behind=behind):
                    await asyncio.sleep(self.GAP_CONFIRM)
                    if behind > state.cursor:
                        with contextlib.suppress(websockets.ConnectionClosed):  # it reconnects with a cursor
                            await ws.send(json.dumps({"type": "resume", "after": state.cursor}))

                asyncio.ensure_future(confirm())
            elif frame["type"] == "resync":
                state.resyncs.append(frame["data"])
                state.cursor = frame["data"]["cursor"]

    def drop(self, count: int) -> None:
        """Connection churn: close ``count`` random open sockets; their clients resume by themselves."""
        for state in random.sample(self.clients, min(count, len(self.clients))):
            if state.connected and state.ws is not None:
                asyncio.run_coroutine_threadsafe(state.ws.close(), self.loop)

    def stop(self) -> None:
        self.stopping = True
        for state in self.clients:
            if state.ws is not None:
                asyncio.run_coroutine_threadsafe(state.ws.close(), self.loop)
        if self.thread.is_alive():
            self.thread.join(timeout=30)


# ------------------------------------------------------------------------------
# Traffic: notifications through the HTTP API, events from a Celery worker
# ------------------------------------------------------------------------------
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
# The verdict
# ------------------------------------------------------------------------------
def expected_ids(user, after: int) -> list[int]:
    """Every durable event the user may see after ``after``, in cursor order (the Event table)."""
    from realtime.models import Event
    from realtime.services import subscriptions_for, visible_events_filter

    visible = visible_events_filter(subscriptions_for(user))
    return list(Event.objects.filter(visible, id__gt=after).order_by("id").values_list("id", flat=True))


def wait_until_published(quiet_for: float = 3.0, timeout: float = 120.0) -> int:
    """Wait until nothing more is being published; return the newest cursor.

    Publishers stop before the verdict, but work they started may still publish:
    tasks waiting in the broker, jobs finishing, an API call in flight. The
    expectations are read from the Event table only once it has stopped growing,
    or a client would be blamed for receiving an event published a moment later.
    """
    from realtime.services import latest_cursor

    seen = {"cursor": latest_cursor(), "since": time.monotonic()}

    def quiet() -> bool:
        cursor = latest_cursor()
        if cursor != seen["cursor"]:
            seen.update(cursor=cursor, since=time.monotonic())
        return time.monotonic() - seen["since"] >= quiet_for

    wait_for(quiet, timeout=timeout, interval=0.25, message=f"no new event for {quiet_for}s")
    return seen["cursor"]


def wait_until_caught_up(fleet: Fleet, start: int, timeout: float = 90.0) -> dict[int, list[int]]:
    """Wait until every client has every durable event it may see; return the expectations."""
    wait_until_published()
    expected = {id(c): expected_ids(c.user, start) for c in fleet.clients}

    def caught_up() -> bool:
        return all(set(expected[id(c)]) <= c.seen_set for c in fleet.clients)

    try:
        wait_for(caught_up, timeout=timeout, interval=0.5, message="every client caught up")
    except TimeoutError:
        pass  # the assertion below says who is missing what
    return expected


def assert_exact_sequences(fleet: Fleet, start: int) -> dict[str, int]:
    """Per client: the durable ids received equal the ids published for them, once each, in order."""
    expected = wait_until_caught_up(fleet, start)
    problems = []
    for client in fleet.clients:
        want = expected[id(client)]
        got = client.received
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            disorder = [a for a, b in zip(got, got[1:], strict=False) if b < a][:5]
            problems.append(
                f"{client.user.email}: {len(got)} received, {len(want)} published; missing {missing[:10]}, "
                f"not theirs {extra[:10]}, out of order after {disorder}"
            )
        if client.resyncs:
            problems.append(f"{client.user.email}: told to resync {client.resyncs}")
    assert not problems, "\n".join(problems)
    return {
        "clients": len(fleet.clients),
        "events_per_client_min": min(len(expected[id(c)]) for c in fleet.clients),
        "events_per_client_max": max(len(expected[id(c)]) for c in fleet.clients),
        "duplicates_dropped": sum(c.raw - len(c.received) for c in fleet.clients),
        "reconnects": sum(len(c.opened) - 1 for c in fleet.clients),
    }


def error_lines(text: str) -> list[str]:
    """Log lines at ERROR or worse, and tracebacks."""
    return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line or " CRITICAL " in line]


def describe(fleet: Fleet, stack: OwnStack | None = None) -> str:
    """What each client and the stack's logs look like (printed when a wait fails)."""
    lines = [
        f"{c.user.email}: connected={c.connected} opens={len(c.opened)} last_open={c.opened[-1:]} "
        f"closes={c.closes[-4:]} received={len(c.received)} cursor={c.cursor}"
        for c in fleet.clients
    ]
    if stack is not None:
        lines += error_lines(stack.logs())[-40:]
        lines.append(stack.daphne.output()[-3000:])
    return "\n".join(lines)
