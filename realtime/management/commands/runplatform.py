"""Run the whole platform in one terminal and keep it running: Redis, daphne, a Celery worker and beat.

The processes are children of a supervisor (``liveplatform.supervisor``): one that dies
is restarted with backoff, and the platform stops only on Ctrl-C or SIGTERM, or when a
child keeps failing. Without ``REDIS_URL`` the embedded Redis is one of the children,
persistent under ``VAR_DIR/redis/`` and on the same port for as long as this command
runs; its URL is in ``VAR_DIR/redis.url`` so that other terminals use it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from liveplatform.embedded_redis import (
    DATA_DIR,
    SITE_FILE,
    _die_with_parent,
    answers_ping,
    forget_redis_url,
    forget_url,
    record_redis_url,
    record_url,
    redis_server_argv,
)
from liveplatform.supervisor import ChildKeepsFailing, ChildSpec, StopFlag, Supervisor


class Command(BaseCommand):
    help = (
        "Start the embedded Redis (if REDIS_URL is unset), daphne, a Celery worker and beat, and restart "
        "any of them that dies; Ctrl-C stops all."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address daphne listens on (default 127.0.0.1)")
        parser.add_argument(
            "--port", type=int, default=8000, help="TCP port daphne serves the site on (default 8000; make run PORT=…)"
        )
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (default 2)")
        parser.add_argument("--no-worker", action="store_true", help="start no Celery worker")
        parser.add_argument("--no-beat", action="store_true", help="start no Celery beat")
        parser.add_argument(
            "--ready-timeout", type=float, default=60.0, help="seconds to wait for the site to answer (default 60)"
        )
        parser.add_argument(
            "--max-failures",
            type=int,
            default=5,
            help="give up when one process fails this many times within --failure-window (default 5)",
        )
        parser.add_argument("--failure-window", type=float, default=60.0, help="seconds (default 60)")

    def handle(self, *args, **options) -> None:
        supervise_redis = os.environ.pop("LIVEPLATFORM_SUPERVISE_REDIS", "") == "1"
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PYTHONUNBUFFERED": "1"}
        env.setdefault("DJANGO_SETTINGS_MODULE", "liveplatform.settings.dev")
        host, port = options["host"], options["port"]
        specs = self._specs(env, host, port, options, supervise_redis)

        # Set from the signal handlers below: a StopFlag, which takes no lock (see its docstring).
        stopping = StopFlag()

        def request_stop(signum, frame) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        self.stdout.write(
            f"Redis: {settings.REDIS_URL}" + (f" (data in {self._redis_dir()})" if supervise_redis else "")
        )
        supervisor = Supervisor(
            specs, max_failures=options["max_failures"], window=options["failure_window"], log=self._log
        )
        failure: str | None = None
        try:
            supervisor.start(stopping)
            if supervise_redis:
                record_redis_url(settings.VAR_DIR, settings.REDIS_URL)
            if self._wait_ready(host, port, options["ready_timeout"], stopping):
                record_url(settings.VAR_DIR, SITE_FILE, self._site_url(host, port))
                self._announce(host, port)
            elif not stopping.is_set():
                self._log(f"daphne did not answer on {host}:{port} within {options['ready_timeout']:g} s")
            supervisor.watch(stopping)
        except ChildKeepsFailing as exc:
            failure = str(exc)
        finally:
            self._log("Stopping…")
            supervisor.stop()
            forget_url(settings.VAR_DIR, SITE_FILE, self._site_url(host, port))
            if supervise_redis:
                forget_redis_url(settings.VAR_DIR, settings.REDIS_URL)
        if failure:
            raise CommandError(f"{failure}; stopped the others")
        self.stdout.write("Stopped cleanly.")

    def _site_url(self, host: str, port: int) -> str:
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"

    def _redis_dir(self):
        return settings.VAR_DIR / DATA_DIR

    def _specs(self, env: dict[str, str], host: str, port: int, options, supervise_redis: bool) -> list[ChildSpec]:
        python = sys.executable
        redis_port = urlsplit(settings.REDIS_URL).port
        specs = []
        worker = not options["no_worker"]
        if supervise_redis:
            specs.append(
                ChildSpec(
                    "redis",
                    redis_server_argv(redis_port, self._redis_dir()),
                    env,
                    ready=lambda: answers_ping(redis_port),
                    # The worker's unacknowledged tasks would wait an hour (the visibility timeout).
                    after_restart=self._restore_tasks if worker else None,
                    stop_last=True,
                )
            )
        daphne = [python, "-m", "liveplatform.daphne_server", "-b", host, "-p", str(port)]
        daphne += ["--websocket_timeout", str(settings.WEBSOCKET_TIMEOUT), "--proxy-headers"]
        specs.append(ChildSpec("daphne", [*daphne, "liveplatform.asgi:application"], env))
        if worker:
            celery = [python, "-m", "celery", "-A", "liveplatform", "worker", "-l", "INFO"]
            celery += ["--concurrency", str(options["concurrency"]), "-n", f"worker-{port}@%h"]
            # Only with our own Redis do we know that no other worker holds its unacknowledged tasks.
            specs.append(
                ChildSpec("worker", celery, env, after_restart=self._restore_tasks if supervise_redis else None)
            )
        if not options["no_beat"]:
            schedule = str(settings.VAR_DIR / f"celerybeat-schedule-{port}")
            beat = [python, "-m", "celery", "-A", "liveplatform", "beat", "-l", "INFO", "-s", schedule, "--pidfile="]
            specs.append(ChildSpec("beat", beat, env))
        for spec in specs:
            # Even if runplatform itself is killed (-9), no child is left behind (Linux).
            spec.preexec_fn = _die_with_parent
        return specs

    def _restore_tasks(self, died_at: float) -> None:
        from liveplatform.celery import restore_unacknowledged

        restored = restore_unacknowledged(died_at)
        if restored:
            self._log(f"{restored} task(s) the worker had taken but not finished are queued again")

    def _log(self, message: str) -> None:
        self.stdout.write(f"[runplatform] {message}")

    def _wait_ready(self, host: str, port: int, timeout: float, stopping: StopFlag) -> bool:
        deadline = time.monotonic() + timeout
        url = f"http://{host}:{port}/healthz"
        while time.monotonic() < deadline and not stopping.is_set():
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            stopping.wait(0.2)
        return False

    def _announce(self, host: str, port: int) -> None:
        self.stdout.write(self.style.SUCCESS(f"Live Platform is ready: http://{host}:{port}/"))
        if settings.DEBUG:
            from accounts.demo import DEMO_PASSWORD, demo_logins

            logins = demo_logins()
            if logins:
                self.stdout.write(f"Demo logins (password {DEMO_PASSWORD!r}):")
                for line in logins:
                    self.stdout.write(f"  {line}")
        self.stdout.write("Press Ctrl-C to stop.")
