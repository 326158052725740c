"""Liveness and readiness: /healthz never depends on anything, /readyz names what is down."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from liveplatform import health, shutdown


def get(url: str) -> tuple[int, dict]:
    """GET a URL; return the status and the JSON body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_readyz_answers_ok_when_database_redis_and_channel_layer_answer(client, db):
    """Tests the happy path in-process: every check ran and passed."""
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "channel_layer"}
    assert response.headers["Cache-Control"].startswith("max-age=0")


def test_a_failing_or_hung_dependency_is_named_and_readiness_answers_503(client, db, monkeypatch, settings):
    """Tests that a failing check and one that does not answer in time are both named."""
    settings.READINESS_TIMEOUT_SECONDS = 0.3
    release = threading.Event()

    def database_down() -> None:
        raise RuntimeError("could not connect to server")

    def hangs() -> None:
        release.wait(5)  # a dependency that never answers within the deadline

    monkeypatch.setitem(health.CHECKS, "database", database_down)
    monkeypatch.setitem(health.CHECKS, "channel_layer", hangs)
    try:
        response = client.get("/readyz")
    finally:
        release.set()
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database", "channel_layer"]
    assert "could not connect" in body["checks"]["database"]["error"]
    assert "no answer within" in body["checks"]["channel_layer"]["error"]
    assert body["checks"]["redis"] == {"ok": True}
    # Liveness does not care.
    assert client.get("/healthz").status_code == 200


def test_a_draining_process_is_not_ready(client, db, monkeypatch):
    """Tests that after SIGTERM the proxy is told to stop sending traffic here."""
    monkeypatch.setattr(shutdown.STATE, "draining", True)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["draining"]


@pytest.mark.stack
@pytest.mark.fault
def test_daphne_with_its_redis_killed_is_alive_but_not_ready(transactional_db, ops_env, started):
    """Tests the real thing: kill the Redis a daphne uses; /readyz names redis and channel_layer."""
    redis = started.redis()
    env = {
        **ops_env,
        "REDIS_URL": redis.url,
        "CHANNEL_LAYER_REDIS_URLS": f"{redis.url}/0",
        "READINESS_TIMEOUT_SECONDS": "1",
    }
    (server,) = started.daphnes(env)

    status, body = get(f"{server.http_url}/readyz")
    assert (status, body["failed"]) == (200, [])

    redis.kill()
    status, body = get(f"{server.http_url}/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["failed"] == ["redis", "channel_layer"]
    assert body["checks"]["database"] == {"ok": True}
    status, body = get(f"{server.http_url}/healthz")
    assert (status, body) == (200, {"status": "ok"})
