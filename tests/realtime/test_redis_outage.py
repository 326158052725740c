"""Sockets while Redis is down: a clean refusal (503 or close 1013), never a 500, and two log lines, not tracebacks."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.processes import Daphne, RedisServer, Uvicorn, wait_for
from tests.support.ws import open_socket, session_cookie_for

pytestmark = [pytest.mark.stack, pytest.mark.fault]


def handshake(ws_url: str, session: str) -> str:
    """One browser handshake: "hello" if served, "http <status>" if refused, "close <code>" if closed."""
    try:
        with open_socket(ws_url, session=session, timeout=5) as sock:
            frame = sock.recv(timeout=5)
            return frame["type"]
    except InvalidStatus as refused:
        return f"http {refused.response.status_code}"
    except ConnectionClosed as closed:
        return f"close {closed.rcvd.code if closed.rcvd else None}"


def healthz_answers(http_url: str) -> bool:
    with urllib.request.urlopen(f"{http_url}/healthz", timeout=2) as response:
        return response.status == 200


@pytest.fixture(params=[Daphne, Uvicorn], ids=["daphne", "uvicorn"])
def own_redis_and_daphne(request, subprocess_env):
    """A Redis of the test's own and a web server on it: daphne (make run) or uvicorn (deployed)."""
    redis = RedisServer().start()
    daphne = request.param({**subprocess_env, "REDIS_URL": redis.url}).start()
    yield redis, daphne
    daphne.stop()
    redis.stop()


def test_handshakes_during_a_redis_outage_are_refused_cleanly_and_logged_once(
    transactional_db, make_member, own_redis_and_daphne
):
    """Tests kill -9 of Redis: sockets close with 1013, handshakes get 503 or 1013, /healthz answers, 2 log lines."""
    redis, daphne = own_redis_and_daphne
    members = [make_member(email=f"outage{i}@example.test") for i in range(4)]
    sessions = [session_cookie_for(member) for member in members]
    open_sockets = [open_socket(daphne.ws_url, session=session) for session in sessions[:2]]
    for sock in open_sockets:
        sock.wait_type("hello")

    redis.kill()
    for sock in open_sockets:
        # Its channel layer's receive fails: the socket is told to come back later.
        assert sock.closed_code(timeout=15) == 1013
    outcomes = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        outcomes += [handshake(daphne.ws_url, session) for session in sessions]
        assert healthz_answers(daphne.http_url)
    # uvicorn can answer a handshake with an HTTP response (the ASGI extension); daphne cannot.
    refusal = "http 503" if isinstance(daphne, Uvicorn) else "close 1013"
    assert outcomes and set(outcomes) == {refusal}, Counter(outcomes)

    redis = RedisServer(redis.port).start()
    try:
        wait_for(lambda: handshake(daphne.ws_url, sessions[0]) == "hello", timeout=20, message="served again")
        output = daphne.output()
        assert output.count("Redis is unavailable") == 1, output[-3000:]
        assert output.count("Redis is back") == 1, output[-3000:]
        assert "Traceback" not in output, output[-5000:]
    finally:
        redis.stop()
