"""The image's default web server: ``deploy/entrypoint.sh web`` (uvicorn) on the real stack.

deploy/README.md's "Server choice" has the benchmark figures that made uvicorn the
default. The test runs the entrypoint exactly as the image does (only HOST and PORT
point it at a free loopback port).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from realtime.audience import Audience
from realtime.consumers import CloseCode
from realtime.events import publish
from tests.deploy.stack import DRAIN_SECONDS, EntrypointUvicorn
from tests.support.ws import open_socket, session_cookie_for

pytestmark = [pytest.mark.stack]


def test_uvicorn_serves_the_socket_delivers_a_published_event_and_drains_with_1012_on_sigterm(
    transactional_db, make_tenant, make_member, ops_env, started
):
    """Tests hello, a live event, a refused foreign tenant's event and the rolling-deploy close code."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    alice = make_member(acme, email="alice@acme.test")
    server = started.add(EntrypointUvicorn({**ops_env, "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)}).start())
    sock = started.add(open_socket(server.ws_url, session=session_cookie_for(alice)))
    hello = sock.wait_type("hello")
    assert [t["slug"] for t in hello["data"]["tenants"]] == ["acme"]

    publish("test.uvicorn", {"n": 1}, audience=Audience.tenant(globex.pk), tenant=globex)
    publish("test.uvicorn", {"n": 2}, audience=Audience.tenant(acme.pk), tenant=acme)
    event = sock.wait_type("test.uvicorn")
    assert (event["tenant"], event["data"]) == ("acme", {"n": 2})  # globex's event never reached alice

    sent_at = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    assert sock.closed_code(timeout=DRAIN_SECONDS) == CloseCode.SERVICE_RESTART
    server.process.wait(timeout=DRAIN_SECONDS + 5)
    assert time.monotonic() - sent_at < DRAIN_SECONDS + 2
