"""A platform of the test's own (Redis, daphne, Celery worker) and the people on it.

Fault tests kill parts of this stack, never the session's: each piece is started
here, on 127.0.0.1, and stopped by its process id. The people: members of two
tenants with their API keys (``make_cast``). Their sockets are in
``tests/reliability/clients.py``, the traffic in ``load.py``, the verdict in ``verdict.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from realtime.streams import RedisStreamStore
from tests.support.processes import CeleryBeat, CeleryWorker, Daphne, RedisServer, wait_for

PER_TENANT = 20  # 40 sockets: what two shared cores carry next to daphne, a worker and Redis
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
        beat: bool = False,
        daphne_extra: tuple[str, ...] = (),
        server: str = "daphne",
    ):
        """``server`` is the web server: daphne (``make run``'s), or uvicorn through the image's entrypoint.

        ``beat``: also Celery beat, whose schedule relays the outbox (events a refused
        publish left in the database) and reaps crashed jobs.
        """
        self.redis = self.daphne = self.beat = None
        self._streams: RedisStreamStore | None = None
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
            if beat:
                self.beat = CeleryBeat(self.env).start()
        except BaseException:
            # The fixture never gets this object: stop here whatever did start.
            self.stop()
            raise

    @property
    def web(self) -> Daphne:
        """The web server process, whichever server it is (``daphne`` is its older name)."""
        return self.daphne

    @property
    def streams(self) -> RedisStreamStore:
        """The stack's streams, read from this process (positions, history); never published to from here."""
        if self._streams is None:
            self._streams = RedisStreamStore(
                [f"{self.redis.url}/0"],
                history_size=settings.REALTIME["STREAM_HISTORY_SIZE"],
                history_seconds=settings.REALTIME["STREAM_HISTORY_SECONDS"],
                key_prefix=settings.REALTIME["STREAM_KEY_PREFIX"],
                layer_prefix="",
            )
        return self._streams

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
        if self._streams is not None:
            self._streams.close()
        for process in [self.beat, *self.workers, self.daphne, self.redis]:
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
