"""How many sockets a browser with many tabs costs the server: shared, led by one tab, or one per tab.

``python -m bench.shared_socket`` starts one uvicorn web process of the platform (a fresh
SQLite database, a Redis of its own), opens ``--tabs`` tabs of one signed-in user in
Debian's Chromium, and reads the server's own socket gauge (``liveplatform_open_sockets``
on /metrics) once every tab shows "connected". It does so three times: with
``SharedWorker`` (desktop browsers), without it (Chrome on Android: a leader tab elected
with Web Locks holds the socket), and without either (each tab its own socket, as every
tab did before). Then it publishes ``--events`` notifications and counts, per tab, how
many its page's code received. Example::

    .venv/bin/python -m bench.shared_socket --tabs 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from typing import Any

from bench.api_cost import prepare
from bench.stack import start_server, stop_all, wait_until

TOKEN = "bench-shared-socket-metrics"
CHROMIUM = "/usr/bin/chromium"
MODES = {
    "SharedWorker": "",
    "leader tab (Web Locks)": "delete window.SharedWorker;",
    "one socket per tab": (
        "delete window.SharedWorker; Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined});"
    ),
}
RECORD = """
window.__seen = 0;
Object.defineProperty(window, "liveClient", {
  configurable: true,
  set(client) {
    Object.defineProperty(window, "liveClient", { value: client, writable: true, configurable: true });
    client.on("notification.created", () => { window.__seen += 1; });
  },
});
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_socket", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", type=int, default=8, help="tabs of one user in one browser (8)")
    parser.add_argument("--events", type=int, default=5, help="notifications published to the user (5)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    opts = parser.parse_args(argv)
    opts.members, opts.conn_max_age = 1, 600
    return opts


def open_sockets(http_url: str, token: str = TOKEN) -> int:
    """Browser sockets open at the server, from its metrics (``liveplatform_open_sockets``)."""
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(f"{http_url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == "liveplatform_open_sockets" and item.labels.get("route") == "browser":
                return int(item.value)
    return 0


def measure(browser: Any, http_url: str, cookie: dict[str, str], script: str, opts, user, tenant) -> dict[str, Any]:
    """Open the tabs in a fresh browser context, count the server's sockets, publish, count per-tab events."""
    from notifications import services

    context = browser.new_context(base_url=http_url)
    context.add_cookies([cookie])
    if script:
        context.add_init_script(script)
    context.add_init_script(RECORD)
    tabs = []
    started = time.monotonic()
    for _ in range(opts.tabs):
        tab = context.new_page()
        tab.goto(f"/t/{tenant.slug}/")
        tab.wait_for_selector('#live-status[data-state="connected"]', timeout=20_000)
        tabs.append(tab)
    opened = time.monotonic() - started
    wait_until(lambda: open_sockets(http_url) > 0, 10, "the server counts the sockets")
    time.sleep(0.5)  # a measurement pause, not synchronisation: late sockets would show up here
    sockets = open_sockets(http_url)
    for n in range(opts.events):
        services.notify(tenant, user, category="general", title=f"bench {n}")
    wait_until(lambda: all(tab.evaluate("window.__seen") >= opts.events for tab in tabs), 20, "every tab's events")
    received = [tab.evaluate("window.__seen") for tab in tabs]
    modes = sorted({tab.evaluate("window.liveClient.mode") for tab in tabs})
    context.close()
    wait_until(lambda: open_sockets(http_url) == 0, 20, "the sockets close with the tabs")
    return {"sockets": sockets, "tabs": opts.tabs, "modes": modes, "events_per_tab": received, "open_s": opened}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the three modes against one web process; print and return the figures."""
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ctx = prepare(opts)
    server = None
    try:
        from django.conf import settings
        from playwright.sync_api import sync_playwright

        from accounts.models import Membership
        from tests.support.ws import session_cookie_for

        membership = Membership.objects.select_related("user", "tenant").get(tenant=ctx["tenant"])
        server, port = start_server("uvicorn", {**ctx["env"], "METRICS_TOKEN": TOKEN}, ctx["workdir"])
        http_url = f"http://127.0.0.1:{port}"
        cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(membership.user), "url": http_url}
        figures: dict[str, Any] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                for label, script in MODES.items():
                    figures[label] = measure(browser, http_url, cookie, script, opts, membership.user, ctx["tenant"])
            finally:
                browser.close()
    finally:
        if server is not None:
            server.stop()
        ctx["redis_process"].terminate()
        ctx["redis_process"].wait(timeout=10)
        stop_all()
    if opts.json:
        print(json.dumps(figures))
    else:
        print(f"one browser, {opts.tabs} tabs of one user, {opts.events} notifications to them:")
        for label, figure in figures.items():
            print(
                f"  {label:<24} {figure['sockets']} server socket(s) for {figure['tabs']} tabs"
                f" (tab modes {', '.join(figure['modes'])}); events per tab {figure['events_per_tab']};"
                f" tabs opened in {figure['open_s']:.1f} s"
            )
    return figures


if __name__ == "__main__":
    main()
