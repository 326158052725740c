"""Run the whole platform in one terminal: Redis (if needed), daphne, a Celery worker and beat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import IO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from liveplatform.embedded_redis import _die_with_parent

PREFIX_COLOURS = {"daphne": "\033[36m", "worker": "\033[35m", "beat": "\033[33m"}
RESET = "\033[0m"


class Child:
    """One supervised process, in its own process group so it can be stopped whole."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            bufsize=1,
            text=True,
        )
        self.reader = threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _pump(self, stream: IO[str]) -> None:
        colour = PREFIX_COLOURS.get(self.name, "") if sys.stdout.isatty() else ""
        reset = RESET if colour else ""
        for line in stream:
            sys.stdout.write(f"{colour}[{self.name}]{reset} {line}")
            sys.stdout.flush()

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


class Command(BaseCommand):
    help = "Start the embedded Redis (if REDIS_URL is unset), daphne, a Celery worker and beat; Ctrl-C stops all."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--no-worker", action="store_true")
        parser.add_argument("--no-beat", action="store_true")
        parser.add_argument("--ready-timeout", type=float, default=60.0)

    def handle(self, *args, **options) -> None:
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "PYTHONUNBUFFERED": "1"}
        env.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "liveplatform.settings.dev"))
        python = sys.executable
        host, port = options["host"], options["port"]
        specs = [
            (
                "daphne",
                [
                    python,
                    "-m",
                    "daphne",
                    "-b",
                    host,
                    "-p",
                    str(port),
                    "--websocket_timeout",
                    str(settings.WEBSOCKET_TIMEOUT),
                    "--proxy-headers",
                    "liveplatform.asgi:application",
                ],
            ),
        ]
        if not options["no_worker"]:
            specs.append(
                (
                    "worker",
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "liveplatform",
                        "worker",
                        "-l",
                        "INFO",
                        "--concurrency",
                        str(options["concurrency"]),
                        "-n",
                        f"worker-{port}@%h",
                    ],
                )
            )
        if not options["no_beat"]:
            schedule = str(settings.VAR_DIR / f"celerybeat-schedule-{port}")
            specs.append(
                (
                    "beat",
                    [python, "-m", "celery", "-A", "liveplatform", "beat", "-l", "INFO", "-s", schedule, "--pidfile="],
                )
            )

        stopping = threading.Event()

        def request_stop(signum, frame) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        self.stdout.write(f"Redis: {settings.REDIS_URL}")
        children = [Child(name, argv, env) for name, argv in specs]
        crashed: Child | None = None
        try:
            if not self._wait_ready(host, port, children, options["ready_timeout"], stopping):
                crashed = next((c for c in children if not c.alive()), None)
                if not stopping.is_set() and crashed is None:
                    raise CommandError(f"daphne did not become ready on {host}:{port}")
            else:
                self._announce(host, port)
            while not stopping.is_set() and crashed is None:
                crashed = next((c for c in children if not c.alive()), None)
                stopping.wait(0.5)
        finally:
            self._stop(children)
        if crashed is not None:
            raise CommandError(f"{crashed.name} exited with code {crashed.process.returncode}; stopped the others")
        self.stdout.write("Stopped cleanly.")

    def _wait_ready(self, host: str, port: int, children: list[Child], timeout: float, stopping) -> bool:
        deadline = time.monotonic() + timeout
        url = f"http://{host}:{port}/healthz"
        while time.monotonic() < deadline and not stopping.is_set():
            if any(not c.alive() for c in children):
                return False
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

    def _stop(self, children: list[Child]) -> None:
        for child in children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.signal_group(signal.SIGKILL)
                child.process.wait()
            # The group may still hold pool processes that outlived their parent.
            child.signal_group(signal.SIGKILL)
