"""One socket per browser: the tabs of one browser share it, in Chromium, with and without SharedWorker.

The server's own socket gauge (``liveplatform_open_sockets`` on /metrics) counts the
sockets; each page records the events its handlers get, so "once per tab" is what the
page's code saw, not what the wire carried.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.sync_api import expect

from bench.shared_socket import open_sockets as count_open_sockets
from notifications import services
from tests.support.processes import Uvicorn, wait_for
from tests.support.ws import session_cookie_for

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TOKEN = "metrics-token-for-the-shared-socket-test"
TIMEOUT = 20_000
# Installed before the page's own scripts: records from the tab's first event on.
RECORD = """
window.__seen = [];
Object.defineProperty(window, "liveClient", {
  configurable: true,
  set(client) {
    Object.defineProperty(window, "liveClient", { value: client, writable: true, configurable: true });
    client.on("notification.created", (event) => window.__seen.push(event.data.notification.title));
  },
});
"""


@pytest.fixture
def server(subprocess_env, transactional_db) -> Iterator[Uvicorn]:
    """A web process of its own, whose /metrics the test may read."""
    web = Uvicorn({**subprocess_env, "METRICS_TOKEN": TOKEN}).start()
    yield web
    web.stop()


def open_sockets(server: Uvicorn) -> float:
    """Browser sockets open at the server, from its metrics."""
    return count_open_sockets(server.http_url, TOKEN)


def stays(condition, seconds: float = 1.0) -> bool:
    """True if ``condition`` holds at every check for ``seconds`` (a bounded watch, not a sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.1)
    return True


def browser_of(browser, server: Uvicorn, user, *, shared_worker: bool = True):
    context = browser.new_context(base_url=server.http_url, viewport={"width": 1280, "height": 800})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(user), "url": server.http_url}]
    )
    if not shared_worker:  # as Chrome on Android: no SharedWorker, so Web Locks elect a leader tab
        context.add_init_script("delete window.SharedWorker;")
    context.add_init_script(RECORD)
    return context


def open_tab(context, path: str = "/t/acme/"):
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(path)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    return page


def seen(page) -> list[str]:
    return page.evaluate("window.__seen")


def test_three_tabs_share_one_socket_each_gets_every_event_once_and_logout_ends_it_for_all(
    browser, server, org, artifacts_dir
):
    """Tests the SharedWorker: 1 socket for 3 tabs, events once per tab, a late tab caught up, logout everywhere."""
    alice, bob = org["alice"], org["bob"]
    context = browser_of(browser, server, alice)
    tabs = [open_tab(context) for _ in range(3)]
    assert {tab.evaluate("window.liveClient.mode") for tab in tabs} == {"shared"}
    assert wait_for(lambda: open_sockets(server) == 1, timeout=10)
    assert stays(lambda: open_sockets(server) == 1)

    services.notify(org["acme"], alice, category="general", title="First for every tab")
    for tab in tabs:
        expect(tab.get_by_test_id("notification-badge")).to_have_text("1", timeout=TIMEOUT)
        wait_for(lambda tab=tab: seen(tab) == ["First for every tab"], timeout=10)

    # A tab whose page was rendered before an event it then missed (the event comes while its
    # scripts load): the shared socket's buffer brings it, once.
    late = context.new_page()
    published = []

    def publish_while_loading(route):
        if not published:
            published.append(services.notify(org["acme"], alice, category="general", title="Second"))
        route.continue_()

    late.route("**/static/js/realtime.js*", publish_while_loading)
    late.goto("/t/acme/")
    expect(late.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    assert published
    tabs[0].close()
    for tab in [*tabs[1:], late]:
        wait_for(lambda tab=tab: "Second" in seen(tab), timeout=10)
    assert stays(lambda: all(seen(tab).count("Second") == 1 for tab in [*tabs[1:], late]))
    expect(late.get_by_test_id("notification-badge")).to_have_text("2", timeout=TIMEOUT)
    assert open_sockets(server) == 1
    tabs[1].screenshot(path=str(artifacts_dir / "shared-socket-tab.png"))

    # Log out in one tab: the shared socket ends, and every tab shows the login page.
    tabs[1].goto("/accounts/logout/")
    tabs[1].get_by_role("button", name="Sign Out").click()
    for tab in (tabs[2], late):
        tab.wait_for_url("**/accounts/login/**", timeout=TIMEOUT)
    assert wait_for(lambda: open_sockets(server) == 0, timeout=10)

    # Bob signs in in the same browser: a socket of his own, with his events.
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(bob), "url": server.http_url}]
    )
    bobs = open_tab(context)
    services.notify(org["acme"], bob, category="general", title="For Bob")
    wait_for(lambda: seen(bobs) == ["For Bob"], timeout=10)
    assert open_sockets(server) == 1
    assert [error for tab in [*tabs, late, bobs] for error in getattr(tab, "errors", [])] == []
    context.close()


def test_without_shared_worker_a_leader_tab_holds_the_socket_and_hands_it_over_losing_nothing(browser, server, org):
    """Tests the Web Locks + BroadcastChannel fallback: 1 socket, and the leader's tab closing mid-stream."""
    alice = org["alice"]
    context = browser_of(browser, server, alice, shared_worker=False)
    tabs = [open_tab(context) for _ in range(3)]
    modes = [tab.evaluate("window.liveClient.mode") for tab in tabs]
    assert sorted(modes) == ["follower", "follower", "leader"]
    assert wait_for(lambda: open_sockets(server) == 1, timeout=10)
    leader = tabs[modes.index("leader")]
    followers = [tab for tab in tabs if tab is not leader]

    titles = [f"Event {n}" for n in range(6)]
    for n, title in enumerate(titles):
        services.notify(org["acme"], alice, category="general", title=title)
        if n == 2:
            leader.close()  # the leader's tab goes away in the middle of the stream
    for tab in followers:
        wait_for(lambda tab=tab: set(seen(tab)) >= set(titles), timeout=15)
    assert stays(lambda: all(seen(tab) == titles for tab in followers)), [seen(tab) for tab in followers]
    assert sorted(tab.evaluate("window.liveClient.mode") for tab in followers) == ["follower", "leader"]
    assert wait_for(lambda: open_sockets(server) == 1, timeout=10)
    for tab in followers:
        expect(tab.get_by_test_id("notification-badge")).to_have_text(str(len(titles)), timeout=TIMEOUT)
    assert [error for tab in followers for error in tab.errors] == []
    context.close()
