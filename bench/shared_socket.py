"""How many sockets a browser with many tabs costs the server: shared, led by one tab, or one per tab.

``python -m bench.shared_socket`` starts one uvicorn web process of the platform (a fresh
SQLite database, a Redis of its own), opens ``--tabs`` tabs of one signed-in user in
Debian's Chromium, and reads the server's own socket gauge (``liveplatform_open_sockets``
on /metrics) once every tab shows "connected". It does so three times: with
``SharedWorker`` (desktop browsers), without it (Chrome on Android: a leader tab elected
with Web Locks holds the socket), and without either (each tab its own socket, as every
tab did before). Then it publishes ``--events`` notifications and counts, per tab, how
many its page's code received.

``--storm-users N`` adds a restart storm: N users' browsers with ``--storm-tabs`` tabs
each, the web process stopped (SIGTERM: close 1012) and started again on its port while
three notifications go to every user; it counts the new process's handshakes and
replayed events until every tab has the three, with the shared socket and with one
socket per tab. Examples::

    .venv/bin/python -m bench.shared_socket --tabs 8
    .venv/bin/python -m bench.shared_socket --tabs 8 --storm-users 20 --storm-tabs 3
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
from bench.targets import resolve

OURS = resolve("ours")  # the web process as the main bench runs the platform

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
    parser.add_argument("--storm-users", type=int, default=0, help="also: a restart with this many users' browsers")
    parser.add_argument("--storm-tabs", type=int, default=3, help="tabs per browser in the restart storm (3)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    opts = parser.parse_args(argv)
    opts.members, opts.conn_max_age = max(1, opts.storm_users), 600
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


def counter(http_url: str, name: str, **labels: str) -> float:
    """One counter of the server's metrics (0 if it has not counted anything yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(f"{http_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return item.value
    return 0.0


def restart_storm(browser, server_env, workdir, users, tenant, script: str, opts) -> dict[str, Any]:
    """``users`` browsers with ``--storm-tabs`` tabs each; the web process restarts while events are sent.

    Counted at the new process: handshakes (``liveplatform_socket_connects_total``) and
    events sent by replay (``liveplatform_events_replayed_total``) until every tab is
    connected again and has every event sent while the server was down.
    """
    from django.conf import settings

    from notifications import services
    from notifications.services import ALL_MEMBERS
    from tests.support.ws import session_cookie_for

    server, port = start_server("uvicorn", server_env, workdir, ws=OURS.ws)
    http_url = f"http://127.0.0.1:{port}"
    contexts, tabs = [], []
    try:
        for user in users:
            context = browser.new_context(base_url=http_url)
            cookie = {"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(user), "url": http_url}
            context.add_cookies([cookie])
            if script:
                context.add_init_script(script)
            context.add_init_script(RECORD)
            contexts.append(context)
            for _ in range(opts.storm_tabs):
                tab = context.new_page()
                tab.goto(f"/t/{tenant.slug}/")
                tabs.append(tab)
        for tab in tabs:
            tab.wait_for_selector('#live-status[data-state="connected"]', timeout=60_000)
        sockets_before = open_sockets(http_url)
        server.stop()  # SIGTERM: the sockets are told 1012 and come back within 0-5 s
        for n in range(3):
            services.notify(tenant, ALL_MEMBERS, category="general", title=f"while away {n}")
        started = time.monotonic()
        server, _ = start_server("uvicorn", server_env, workdir, ws=OURS.ws, port=port)
        wait_until(lambda: all(tab.evaluate("window.__seen") >= 3 for tab in tabs), 120, "every tab caught up")
        back = time.monotonic() - started
        return {
            "users": len(users),
            "tabs": len(tabs),
            "sockets_before": sockets_before,
            "handshakes": int(counter(http_url, "liveplatform_socket_connects_total", route="browser")),
            "replayed": int(counter(http_url, "liveplatform_events_replayed_total")),
            "every_tab_caught_up_s": round(back, 1),
            "events_per_tab": sorted({tab.evaluate("window.__seen") for tab in tabs}),
        }
    finally:
        for context in contexts:
            context.close()
        server.stop()


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

        membership = Membership.objects.select_related("user", "tenant").filter(tenant=ctx["tenant"]).first()
        server_env = {**ctx["env"], "METRICS_TOKEN": TOKEN, "CHANNEL_LAYER_BACKEND": OURS.layer}
        server, port = start_server("uvicorn", server_env, ctx["workdir"], ws=OURS.ws)
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
                if opts.storm_users:
                    server.stop()
                    server = None
                    users = [m.user for m in Membership.objects.select_related("user").filter(tenant=ctx["tenant"])]
                    for label in ("SharedWorker", "one socket per tab"):
                        figures[f"restart storm, {label}"] = restart_storm(
                            browser, server_env, ctx["workdir"], users, ctx["tenant"], MODES[label], opts
                        )
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
            if label.startswith("restart storm"):
                print(
                    f"  {label}: {figure['users']} users x {figure['tabs'] // figure['users']} tabs,"
                    f" {figure['sockets_before']} sockets before; after the restart {figure['handshakes']} handshakes,"
                    f" {figure['replayed']} events replayed; every tab had its 3 events"
                    f" {figure['every_tab_caught_up_s']} s after the new process started"
                )
                continue
            print(
                f"  {label:<24} {figure['sockets']} server socket(s) for {figure['tabs']} tabs"
                f" (tab modes {', '.join(figure['modes'])}); events per tab {figure['events_per_tab']};"
                f" tabs opened in {figure['open_s']:.1f} s"
            )
    return figures


if __name__ == "__main__":
    main()
