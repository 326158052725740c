"""The browser client: live events in two browsers, and recovery after the server restarts."""

import pytest

from realtime.audience import Audience
from realtime.events import publish
from tests.support.processes import Daphne

pytestmark = [pytest.mark.browser, pytest.mark.stack]


def activity(page):
    return page.locator("#live-activity li").all_inner_texts()


def test_tenant_event_shows_in_two_browsers_and_survives_a_server_restart(
    browser, transactional_db, subprocess_env, make_tenant, make_member, artifacts_dir
):
    from django.conf import settings

    from tests.support.ws import session_cookie_for

    acme = make_tenant("acme", "Acme Corp")
    alice, bob = make_member(acme, email="alice@acme.test"), make_member(acme, email="bob@acme.test")
    server = Daphne({**subprocess_env, "REALTIME_HEARTBEAT_SECONDS": "2"}).start()
    pages, contexts = [], []
    try:
        for user in (alice, bob):
            context = browser.new_context(base_url=server.http_url)
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(user), "url": server.http_url}]
            )
            page = context.new_page()
            page.errors = []
            page.on("pageerror", lambda error, page=page: page.errors.append(str(error)))
            page.goto("/t/acme/")
            page.locator("#live-status[data-state=connected]").wait_for(timeout=10_000)
            contexts.append(context)
            pages.append(page)

        publish("demo.message", {"message": "Deploy finished"}, audience=Audience.tenant(acme.pk), tenant=acme)
        for page in pages:
            page.locator("#live-activity li", has_text="Deploy finished").wait_for(timeout=5_000)

        # The server goes away: both pages notice and show it.
        port = server.port
        server.stop()
        for page in pages:
            page.locator("#live-status[data-state=reconnecting]").wait_for(timeout=15_000)
        pages[0].screenshot(path=str(artifacts_dir / "realtime-reconnecting.png"))

        # Published while nobody is connected: stored, replayed after reconnect.
        publish("demo.message", {"message": "Sent during the outage"}, audience=Audience.tenant(acme.pk), tenant=acme)
        server = Daphne({**subprocess_env, "REALTIME_HEARTBEAT_SECONDS": "2"}, port=port).start()
        for page in pages:
            page.locator("#live-status[data-state=connected]").wait_for(timeout=40_000)
            page.locator("#live-activity li", has_text="Sent during the outage").wait_for(timeout=5_000)
        pages[0].screenshot(path=str(artifacts_dir / "realtime-recovered.png"))
        for page in pages:
            texts = activity(page)
            assert sum("Deploy finished" in t for t in texts) == 1
            assert sum("Sent during the outage" in t for t in texts) == 1
            assert page.errors == []
    finally:
        for context in contexts:
            context.close()
        server.stop()
