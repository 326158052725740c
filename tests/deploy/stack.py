"""Processes the deployment tests start on their own: nginx from Debian, isolated workers, uvicorn.

``render_nginx_conf`` turns ``deploy/nginx.conf`` (the production file) into one that
runs on this machine: upstream addresses, listen ports, certificates and temp paths
change; every proxy rule stays as shipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from liveplatform.embedded_redis import free_loopback_port
from tests.support.processes import LOG_DIR, ROOT, CeleryWorker, Daphne, wait_for

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate so the TLS server block passes ``nginx -t``."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def render_nginx_conf(
    workdir: Path,
    upstreams: list[str],
    *,
    http_port: int,
    https_port: int | None = None,
) -> Path:
    """Write deploy/nginx.conf for this machine into ``workdir``; returns the file's path."""
    text = NGINX_CONF.read_text()
    servers = re.findall(r"^\s*server (web\d+:8000)", text, flags=re.M)
    assert len(servers) == len(upstreams), f"nginx.conf lists {servers}"
    for name, address in zip(servers, upstreams, strict=True):
        text = text.replace(f"server {name} ", f"server {address} ")
    text = text.replace("worker_processes auto;", "worker_processes 1;")
    text = text.replace("listen 80 default_server;", f"listen 127.0.0.1:{http_port} default_server;")
    if https_port:
        cert, key = self_signed_certificate(workdir)
        text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
        text = text.replace("/etc/nginx/certs/fullchain.pem", str(cert))
        text = text.replace("/etc/nginx/certs/privkey.pem", str(key))
    else:
        text = re.sub(r"^\s*listen 443 .*$\n", "", text, flags=re.M)
        text = re.sub(r"^\s*ssl_\w+ .*$\n", "", text, flags=re.M)
    # Temp files and logs inside the work dir, so nginx runs without root.
    temp_paths = "".join(
        f"    {kind}_temp_path {workdir / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp_paths, 1)
    text = text.replace("access_log /dev/stdout json_combined;", f"access_log {workdir / 'access.log'} json_combined;")
    path = workdir / "nginx.conf"
    path.write_text(text)
    return path


def nginx_test(conf: Path, workdir: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` on a rendered config."""
    return subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log"), "-g", _pid(workdir)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _pid(workdir: Path) -> str:
    return f"pid {workdir / 'nginx.pid'};"


class Nginx:
    """nginx in the foreground, as this test's own process, stopped by pid."""

    def __init__(self, upstreams: list[str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="nginx-", dir=LOG_DIR))
        self.port = free_loopback_port()
        self.conf = render_nginx_conf(self.workdir, upstreams, http_port=self.port)
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        self.log = open(self.workdir / "stderr.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(self.workdir), "-e", str(self.workdir / "error.log")]
            + ["-g", f"daemon off; {_pid(self.workdir)}"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.output()}")
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2) as response:
                return response.status == 200

        wait_for(answers, timeout=30, message="nginx")
        return self

    def output(self) -> str:
        parts = [self.workdir / name for name in ("stderr.log", "error.log")]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish and exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


class IsolatedCeleryWorker(CeleryWorker):
    """A worker on its own broker (not the session's), pinged through that broker."""

    def __init__(self, env: dict[str, str], broker_url: str, concurrency: int = 1) -> None:
        super().__init__({**env, "CELERY_BROKER_URL": broker_url}, concurrency=concurrency)
        self.broker_url = broker_url

    def start(self, wait: bool = True) -> IsolatedCeleryWorker:
        """Start the process; with ``wait=False`` call ``wait_ready()`` later (boot in parallel)."""
        super(CeleryWorker, self).start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"worker exited: {self.output()[-3000:]}")
            return f"{self.node} ready." in self.output()

        wait_for(ready, timeout=60, interval=0.2, message=f"celery worker {self.node}")

    def send(self, task, *args, **kwargs) -> None:
        """Queue ``task`` on this worker's broker."""
        from liveplatform.celery import app

        with app.connection_for_write(self.broker_url) as connection:
            task.apply_async(args=args, kwargs=kwargs, connection=connection)


class EntrypointRealtimeWorker(IsolatedCeleryWorker):
    """``deploy/entrypoint.sh realtime-worker`` on its own broker: the "realtime" queue's worker.

    It logs at WARNING, so there is no "ready." line to wait for: a test queues its
    tasks at once (the broker keeps them) and waits for them to arrive.
    """

    name = "realtime-worker"

    def __init__(self, env: dict[str, str], broker_url: str) -> None:
        super().__init__(env, broker_url)
        self.node = f"realtime-test-{free_loopback_port()}@localhost"
        self.argv = ["sh", str(ROOT / "deploy" / "entrypoint.sh"), "realtime-worker", "-n", self.node]
        self.argv += ["--without-gossip", "--without-mingle"]
        self.env = {**self.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}

    def wait_ready(self) -> None:
        if not self.alive():
            raise RuntimeError(f"worker exited: {self.output()[-3000:]}")


DRAIN_SECONDS = 5


class EntrypointUvicorn(Daphne):
    """``deploy/entrypoint.sh web`` (uvicorn, the image's default) on 127.0.0.1:<free port>.

    A ``Daphne`` in every other respect: the same URLs, readiness check and stopping.
    """

    name = "uvicorn"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.argv = ["sh", str(ROOT / "deploy" / "entrypoint.sh"), "web"]
        self.env = {
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "SHUTDOWN_DRAIN_SECONDS": env.get("SHUTDOWN_DRAIN_SECONDS", str(DRAIN_SECONDS)),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
