"""Production settings: Django's deployment checklist passes, and the secure defaults are really on."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from push.vapid import generate_pair

ROOT = Path(__file__).resolve().parents[2]


def _production_env(tmp_path, **extra) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "liveplatform.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "live.example.com",
        # Nothing listens there: the checks must not need Redis (no embedded server is started).
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
    }
    # A deployment sets its VAPID pair (deploy/env.example); without one it has no Web Push.
    env["WEBPUSH_VAPID_PUBLIC_KEY"], env["WEBPUSH_VAPID_PRIVATE_KEY"] = generate_pair()
    env.update(extra)
    return env


def test_check_deploy_prints_no_warning_under_production_settings(tmp_path):
    """Tests `manage.py check --deploy --fail-level WARNING` with the production settings module."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py check`` under ``env``: the first thing any production process does is load the settings."""
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "short",
        "a" * 50,
        "ab" * 40,
        "dev-insecure-0pxq8wz1m3c7-not-for-production" + "x" * 20,
        "django-insecure-" + secrets.token_urlsafe(48),
        "CHANGE-ME",
        "CHANGE-ME-" + secrets.token_urlsafe(48),
    ],
    ids=["missing", "empty", "short", "50-times-a", "low-entropy", "dev-default", "django-default", "placeholder",
         "placeholder-padded"],
)  # fmt: skip
def test_production_refuses_to_start_with_a_weak_or_default_secret_key(tmp_path, secret):
    """Tests that a missing, short, patterned or published secret stops start-up instead of signing with it."""
    env = _production_env(tmp_path)
    if secret is None:
        env.pop("SECRET_KEY")
    else:
        env["SECRET_KEY"] = secret
    result = _start(env)
    assert result.returncode != 0
    assert "SECRET_KEY must be" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_its_database_redis_or_allowed_hosts(tmp_path, missing):
    """Tests no silent fall-back in production: no SQLite file, no embedded Redis, no localhost-only hosts."""
    for unset in (True, False):  # not set at all, or set to nothing
        env = _production_env(tmp_path)
        if unset:
            env.pop(missing)
        else:
            env[missing] = ""
        result = _start(env)
        assert result.returncode != 0
        assert f"{missing} must be set in production" in result.stderr, result.stderr[-2000:]
        # Refused before the shared settings ran: they create var/ and start an embedded Redis.
        assert not (tmp_path / "var").exists()


def test_production_lists_every_problem_at_once(tmp_path):
    """Tests that an operator fixing a deployment sees all that is missing in one start, not one per attempt."""
    env = _production_env(tmp_path)
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"):
        env.pop(name)
    result = _start(env)
    assert result.returncode != 0
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"):
        assert f"{name} must be set in production" in result.stderr


PRINT_SETTINGS = """
import django, json
django.setup()
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": s.SESSION_COOKIE_HTTPONLY,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "X_FRAME_OPTIONS": s.X_FRAME_OPTIONS,
    "SECURE_REFERRER_POLICY": s.SECURE_REFERRER_POLICY,
    "SECURE_CONTENT_TYPE_NOSNIFF": s.SECURE_CONTENT_TYPE_NOSNIFF,
    "CSP": s.CONTENT_SECURITY_POLICY,
    "RATE_LIMITS": bool(s.ACCOUNT_RATE_LIMITS),
    "API_KEY_RATE_LIMIT": s.API_KEY_RATE_LIMIT,
    "CONNECTS_PER_MINUTE": s.REALTIME["CONNECTS_PER_MINUTE"],
}))
"""


def test_production_turns_on_secure_cookies_hsts_framing_referrer_policy_and_limits(tmp_path):
    """Tests the values behind the checklist: what a reviewer would look for in settings/production.py."""
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert "script-src 'self'" in values["CSP"] and "unsafe-inline" not in values["CSP"]
    assert values["RATE_LIMITS"] is True
    assert values["API_KEY_RATE_LIMIT"] and values["CONNECTS_PER_MINUTE"] > 0


def test_api_keys_and_tickets_never_reach_the_logs_of_a_running_server(live, make_tenant, make_member):
    """Tests daphne's own log (access lines included) after requests carrying a key, a cookie and a ticket."""
    import urllib.request

    from accounts.api_keys import do_create_api_key
    from realtime.tickets import issue_ticket
    from tests.support.ws import open_socket

    acme = make_tenant("acme")
    alice = make_member(acme, email="alice@acme.test")
    _, key = do_create_api_key(acme, "logged?")
    ticket, _ = issue_ticket(alice)
    start = len(live.server.output())
    request = urllib.request.Request(
        f"{live.http_url}/api/v1/notifications",
        data=json.dumps({"user_ids": [alice.pk], "title": "hi"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    with open_socket(live.ws_url, path="/ws/app/", origin=None) as sock:
        sock.send({"type": "auth", "ticket": ticket})
        sock.wait_type("hello")
    with live.socket(alice) as sock:
        sock.wait_type("hello")
    log = live.server.output()[start:]
    assert "socket connect" in log  # the log was written (the test would pass vacuously otherwise)
    assert key not in log and key[4:] not in log
    assert ticket not in log and ticket[4:] not in log
