"""PostgreSQL unreachable for a moment: a server of the test's own is stopped and started by pid.

Collected only when the suite runs on PostgreSQL (tests/reliability/conftest.py):
SQLite cannot be made unreachable; its equivalent is in test_faults_database_and_slow_client.py.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from liveplatform.embedded_redis import free_loopback_port
from tests.reliability.harness import OwnStack
from tests.support.processes import ROOT, wait_for
from tests.support.ws import open_socket, positions_token

pytestmark = [pytest.mark.fault, pytest.mark.stack]

SEED = """
import json
from django.contrib.sessions.backends.db import SessionStore
from accounts.api_keys import do_create_api_key
from accounts.services import do_add_member, do_create_tenant, get_or_create_user
tenant = do_create_tenant(slug="acme", name="Acme")
user, _ = get_or_create_user("alice@acme.test", password="pw-123456")
do_add_member(tenant, user)
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print(json.dumps({"key": do_create_api_key(tenant, "k")[1], "session": session.session_key, "user": user.pk}))
"""

COUNT = """
from notifications.models import Notification
print(Notification.objects.filter(title__startswith="pg ").values_list("title", flat=True).count())
"""


class OwnPostgres:
    """A throw-away PostgreSQL cluster (Debian's initdb/pg_ctl, run as the postgres user)."""

    def __init__(self) -> None:
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="reliab-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_loopback_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/outage"

    def _run(self, *argv: str) -> str:
        command = ["runuser", "-u", "postgres", "--", f"{self.bin}/{argv[0]}", *argv[1:]]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout

    def init(self) -> None:
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-o", options, "-w", "start")

    @property
    def pid(self) -> int:
        return int((self.dir / "data" / "postmaster.pid").read_text().splitlines()[0])

    def stop(self) -> None:
        """Fast shutdown of the postmaster by its pid; wait until it is gone."""
        pid = self.pid
        os.kill(pid, signal.SIGINT)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, message="postgres stopped")

    def destroy(self) -> None:
        try:
            if (self.dir / "data" / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300
    ).stdout


def _post(url: str, key: str, title: str, idempotency_key: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{url}/api/v1/notifications",
        data=json.dumps({"user_ids": [SEEDED["user"]], "title": title}).encode(),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


SEEDED: dict = {}


def test_postgres_down_for_a_moment_gives_503_then_recovers_with_nothing_half_written(subprocess_env):
    """Tests the API's 503 while PostgreSQL is stopped, and full recovery of API and sockets after."""
    pg = OwnPostgres()
    stack = None
    try:
        pg.init()
        pg.start()
        pg._run("createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "outage")
        env = {**subprocess_env, "DATABASE_URL": pg.url}
        _manage(env, "migrate", "--no-input")
        SEEDED.update(json.loads(_manage(env, "shell", "-c", SEED).strip().splitlines()[-1]))
        stack = OwnStack(env, worker=False)
        base = stack.daphne.http_url
        assert _post(base, SEEDED["key"], "pg before", "k-before")[0] == 201
        sock = open_socket(stack.daphne.ws_url, session=SEEDED["session"])
        hello = sock.wait_type("hello")

        pg.stop()
        status, headers, body = _post(base, SEEDED["key"], "pg during", "k-during")
        assert status == 503, body
        assert headers.get("Retry-After") == "5"
        assert "unavailable" in body["detail"]

        pg.start()
        # The client retries with the same Idempotency-Key: one notification, not two.
        wait_for(lambda: _post(base, SEEDED["key"], "pg during", "k-during")[0] == 201, timeout=60, interval=1)
        assert _post(base, SEEDED["key"], "pg during", "k-during")[0] == 201
        assert _post(base, SEEDED["key"], "pg after", "k-after")[0] == 201
        assert int(_manage(env, "shell", "-c", COUNT).strip().splitlines()[-1]) == 3

        # The socket side recovers: by the open socket, or by a reconnect that replays.
        # From the positions hello gave before the outage: each stream replays from there.
        with open_socket(stack.daphne.ws_url, session=SEEDED["session"], positions=positions_token([hello])) as again:
            again.wait_type("hello")
            titles = []
            wait_for(
                lambda: (
                    titles.extend(
                        f["data"]["notification"]["title"]
                        for f in again.listen(0.5)
                        if f["type"] == "notification.created"
                    )
                    or {"pg during", "pg after"} <= set(titles)
                ),
                timeout=30,
            )
            # Once each: the retried request published one event, not two.
            assert sorted(titles) == ["pg after", "pg during"], titles
        # The socket open through the outage is either still served or was closed with 1011
        # (its consumer hit the outage); either way its client reconnects and replays, as above.
        try:
            sock.send({"type": "ping"})
            assert sock.wait_type("pong", timeout=30)["type"] == "pong"
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1011
        sock.close()
    finally:
        if stack is not None:
            stack.stop()
        pg.destroy()
