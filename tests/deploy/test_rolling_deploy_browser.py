"""A rolling deploy seen from a real browser: its daphne drains, the page moves to the other one."""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings

from realtime.audience import Audience
from realtime.events import publish
from tests.deploy.stack import Nginx
from tests.deploy.test_scale_out import log_lines, server_of
from tests.support.ws import session_cookie_for

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.fault]


def test_sigterm_sends_the_page_to_the_other_daphne_through_nginx_without_losing_events(
    browser, transactional_db, ops_env, started, make_tenant, make_member, artifacts_dir
):
    """Tests the 1012 path end to end: drain, jittered reconnect through nginx, replay, live again."""
    acme = make_tenant("acme", "Acme Corp")
    alice = make_member(acme, email="alice@acme.test")
    servers = started.daphnes({**ops_env, "LOG_FORMAT": "json", "SHUTDOWN_DRAIN_SECONDS": "5"}, count=2)
    nginx = started.add(Nginx([f"127.0.0.1:{server.port}" for server in servers])).start()

    context = browser.new_context(base_url=nginx.http_url, viewport={"width": 1280, "height": 800})
    started.add(context)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(alice), "url": nginx.http_url}]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # An older event, so the page starts at a real position in its tenant stream (past offset 0).
    publish("demo.message", {"message": "Older news"}, audience=Audience.tenant(acme.pk), tenant=acme)
    page.goto("/t/acme/")
    page.locator("#live-status[data-state=connected]").wait_for(timeout=15_000)
    draining = server_of(alice, servers)
    survivor = next(server for server in servers if server is not draining)

    publish("demo.message", {"message": "Before the deploy"}, audience=Audience.tenant(acme.pk), tenant=acme)
    page.locator("#live-activity li", has_text="Before the deploy").wait_for(timeout=10_000)

    os.kill(draining.pid, signal.SIGTERM)
    draining.process.wait(timeout=15)
    assert {"socket": "disconnect", "user_id": alice.pk, "code": 1012} in [
        {key: line.get(key) for key in ("socket", "user_id", "code")} for line in log_lines(draining)
    ]
    # Published while the page waits out its random 0-5 s delay: replayed when it is back.
    publish("demo.message", {"message": "During the deploy"}, audience=Audience.tenant(acme.pk), tenant=acme)

    page.locator("#live-activity li", has_text="During the deploy").wait_for(timeout=30_000)
    page.locator("#live-status[data-state=connected]").wait_for(timeout=10_000)
    assert server_of(alice, [survivor]) is survivor
    publish("demo.message", {"message": "After the deploy"}, audience=Audience.tenant(acme.pk), tenant=acme)
    page.locator("#live-activity li", has_text="After the deploy").wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts_dir / "deploy-rolling-restart.png"))

    texts = page.locator("#live-activity li").all_inner_texts()
    for message in ("Before the deploy", "During the deploy", "After the deploy"):
        assert sum(message in text for text in texts) == 1, texts
    assert errors == []
