"""How a process finds the running platform's Redis: VAR_DIR/redis.url, used only while a Redis answers there."""

from __future__ import annotations

import os
import signal

from liveplatform.embedded_redis import (
    ensure_redis_url,
    forget_redis_url,
    free_loopback_port,
    record_redis_url,
    recorded_redis_url,
)
from tests.support.processes import RedisServer


def test_a_recorded_url_is_used_only_while_a_redis_answers_there(tmp_path, monkeypatch):
    """Tests that a second terminal adopts the platform's Redis, and ignores a URL left by a killed platform."""
    redis = RedisServer().start()
    try:
        record_redis_url(tmp_path, redis.url)
        assert recorded_redis_url(tmp_path) == redis.url
        monkeypatch.delenv("REDIS_URL", raising=False)
        assert ensure_redis_url(tmp_path) == redis.url
        monkeypatch.delenv("REDIS_URL", raising=False)
    finally:
        redis.stop()
    assert recorded_redis_url(tmp_path) is None  # nothing answers there any more
    record_redis_url(tmp_path, f"redis://127.0.0.1:{free_loopback_port()}")
    assert recorded_redis_url(tmp_path) is None


def test_the_test_settings_never_adopt_a_running_platform(tmp_path, monkeypatch):
    """Tests that adopt_running=False starts a Redis of its own even when a platform's is recorded."""
    redis = RedisServer().start()
    try:
        record_redis_url(tmp_path, redis.url)
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.delenv("LIVEPLATFORM_EMBEDDED_REDIS_PID", raising=False)
        own = ensure_redis_url(tmp_path, adopt_running=False)
        assert own != redis.url and own.startswith("redis://127.0.0.1:")
    finally:
        redis.stop()
        if pid := os.environ.get("LIVEPLATFORM_EMBEDDED_REDIS_PID"):
            os.kill(int(pid), signal.SIGTERM)  # the throw-away Redis it started


def test_a_clean_exit_removes_only_its_own_url(tmp_path):
    """Tests that a platform's exit leaves the URL another platform recorded since."""
    record_redis_url(tmp_path, "redis://127.0.0.1:1111")
    forget_redis_url(tmp_path, "redis://127.0.0.1:2222")
    assert (tmp_path / "redis.url").read_text().strip() == "redis://127.0.0.1:1111"
    forget_redis_url(tmp_path, "redis://127.0.0.1:1111")
    assert not (tmp_path / "redis.url").exists()
