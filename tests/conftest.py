"""Shared fixtures: factories, the real stack (uvicorn, Celery, Redis) and the browser.

Tests through real processes share one web server (uvicorn, as deployed) and one Celery worker per session;
tests that kill a process start their own with ``tests.support.processes``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from tests.support.processes import LOG_DIR, CeleryWorker, Daphne, Uvicorn
from tests.support.ws import LiveSocket, open_socket, session_cookie_for

# Playwright's sync API keeps an event loop running in the test's thread, which makes
# Django refuse ORM calls there; the tests' own ORM use is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


# ------------------------------------------------------------------------------
# Factories
# ------------------------------------------------------------------------------
@pytest.fixture
def make_tenant(db):
    """Create a tenant: ``make_tenant("acme")``."""
    from accounts.services import do_create_tenant

    def make(slug: str = "acme", name: str | None = None):
        return do_create_tenant(slug=slug, name=name or slug.title())

    return make


@pytest.fixture
def make_user(db):
    """Create an active user with a usable password: ``make_user("a@x.test")``."""
    from accounts.services import get_or_create_user

    counter = {"n": 0}

    def make(email: str | None = None, password: str = "pw-123456", **extra):
        counter["n"] += 1
        user, _ = get_or_create_user(email or f"user{counter['n']}@example.test", password=password, **extra)
        return user

    return make


@pytest.fixture
def make_member(make_tenant, make_user):
    """Create a user who belongs to a tenant: ``make_member(tenant, role="admin")``."""
    from accounts.services import do_add_member

    def make(tenant=None, role: str = "member", email: str | None = None, user=None):
        tenant = tenant or make_tenant()
        user = user or make_user(email)
        do_add_member(tenant, user, role=role)
        return user

    return make


# ------------------------------------------------------------------------------
# Channels in memory (unit tests of consumers only)
# ------------------------------------------------------------------------------
@pytest.fixture
def inmemory_channel_layer(settings):
    """Swap the Redis channel layer for Channels' in-memory one for this test."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


# ------------------------------------------------------------------------------
# The real stack
# ------------------------------------------------------------------------------
def database_url_for_subprocesses() -> str:
    """DATABASE_URL of the test database, for the servers and Celery workers tests start."""
    from django.db import connection

    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = quote(params.get("USER") or "")
    password = quote(params.get("PASSWORD") or "")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{credentials}{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}/{params['NAME']}"


@pytest.fixture(scope="session")
def subprocess_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    """Environment for processes the tests start: same database, same Redis, test settings."""
    with django_db_blocker.unblock():
        database_url = database_url_for_subprocesses()
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "liveplatform.settings.test",
        "PYTHONUNBUFFERED": "1",
        "REALTIME_HEARTBEAT_SECONDS": os.environ.get("REALTIME_HEARTBEAT_SECONDS", "5"),
    }


@pytest.fixture(scope="session")
def web_server(subprocess_env) -> Iterator[Uvicorn]:
    """One web process for the session, as deployed (uvicorn, prepared frames), on a free port.

    daphne, which ``make run`` uses, is started by the tests that are about it
    (tests/deploy, tests/reliability, the browser reconnect tests).
    """
    server = Uvicorn(subprocess_env).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def celery_worker(subprocess_env) -> Iterator[CeleryWorker]:
    """One real Celery worker process for the session."""
    worker = CeleryWorker(subprocess_env).start()
    yield worker
    worker.stop()


@dataclass
class LiveStack:
    """The running platform as a test sees it."""

    server: Daphne

    @property
    def http_url(self) -> str:
        return self.server.http_url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def socket(self, user=None, **kwargs) -> LiveSocket:
        """Open a socket as ``user`` (a browser-like socket with cookie and Origin)."""
        session = session_cookie_for(user) if user is not None else None
        return open_socket(self.ws_url, session=session, **kwargs)


@pytest.fixture
def live(transactional_db, web_server) -> LiveStack:
    """The real web server (with real Redis) over a committed test database."""
    return LiveStack(web_server)


# ------------------------------------------------------------------------------
# Browser (Playwright driving Debian's Chromium)
# ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    """Headless Chromium from Debian. Under CI a missing browser fails, never skips."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it with apt-get")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield instance
        instance.close()


@pytest.fixture
def browser_page(browser, live):
    """Open a logged-in browser page: ``page = browser_page(user, width=390)``; closed after the test.

    Other keywords go to the browser context (``timezone_id="Asia/Tokyo"``).
    """
    contexts = []

    def open_page(user, *, width: int = 1280, height: int = 800, **options):
        context = browser.new_context(base_url=live.http_url, viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(user), "url": live.http_url}]
        )
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests save screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# ------------------------------------------------------------------------------
# Under CI nothing may be skipped: a skipped test is not a passing test.
# ------------------------------------------------------------------------------
def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
        if skipped:
            print(f"\nCI: {skipped} test(s) were skipped; under CI every test must run.")
            session.exitstatus = 1


def pytest_collection_modifyitems(config, items):
    # Browser tests last: Playwright's sync API leaves an event loop running in the
    # main thread for the rest of the session, where async_to_sync would refuse to run.
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


def pytest_configure(config):
    # Logs of processes started by earlier runs are of no use to this one.
    shutil.rmtree(LOG_DIR, ignore_errors=True)


# ------------------------------------------------------------------------------
# Flushing the test database while the shared server and worker still run
# ------------------------------------------------------------------------------
FLUSH_ATTEMPTS = 5


@pytest.fixture(autouse=True, scope="session")
def _flush_survives_a_deadlock_with_the_live_processes():
    """Retry a transactional test's flush that PostgreSQL chose as a deadlock victim.

    The session's web server and Celery worker (and beat's periodic tasks) keep reading the
    test database while a transactional test's teardown TRUNCATEs every table. A
    query that joins two tables can hold one while waiting for the other, and
    PostgreSQL aborts the TRUNCATE (seen once in CI, after a browser test). The
    reader's transaction ends at once, so the flush succeeds when tried again.
    """
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self) -> None:
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                return original(self)
            except Exception as error:
                if attempt == FLUSH_ATTEMPTS or "deadlock detected" not in str(error.__cause__ or error):
                    raise

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


# ------------------------------------------------------------------------------
# After-commit chores in the test process: inline
# ------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="session")
def _after_commit_chores_inline():
    """In this process, outbox deletes and Web Push lookups run at once on the caller's thread.

    The batcher's thread has a database connection of its own: it cannot see a test's
    uncommitted rows (PostgreSQL) or SQLite's shared in-memory database without table
    locks. The processes the tests start keep the default delay (the tests through them
    exercise it), and tests/realtime/test_batcher.py tests the batching itself.
    """
    from django.test import override_settings

    with override_settings(REALTIME={**settings.REALTIME, "AFTER_COMMIT_BATCH_SECONDS": 0}):
        yield
