"""Web Push in Chromium: the preferences page's devices and choices, and the service worker showing a push.

Headless Chromium has no push service to subscribe with (it would ask Google's, and
these machines reach no internet), so the subscription here is stored as the page's
control stores it, and the push message is handed to the service worker by the
browser's own DevTools protocol (``ServiceWorker.deliverPushMessage``), as a push
service would hand it over.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from notifications.models import Preference
from push.models import PushSubscription
from push.services import do_subscribe

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT = 20_000


def registration_of(page, registrations: list[dict], scope: str) -> dict:
    """The service worker registration DevTools announced for ``scope``, waited for with a deadline."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [r for r in registrations if r["scopeURL"] == scope and not r.get("isDeleted")]
        if found:
            return found[0]
        page.wait_for_timeout(50)  # Playwright delivers the DevTools events while it waits
    raise TimeoutError(f"no registration for {scope}: {registrations}")


def test_the_preferences_page_lists_devices_removes_one_and_saves_the_push_choice(
    browser_page, live, org, artifacts_dir
):
    """Tests the devices list, Remove, and the per-category push choice, at desktop and phone width."""
    alice = org["alice"]
    device = do_subscribe(
        alice,
        endpoint="https://fcm.googleapis.com/fcm/send/alice-laptop",
        p256dh="B" + "A" * 86,
        auth="c2VjcmV0LWF1dGgtMTY",
        device="Chrome on Linux",
    )
    page = browser_page(alice)
    page.goto("/t/acme/notifications/preferences/")
    devices = page.locator("#push-devices")
    expect(devices).to_contain_text("Chrome on Linux")
    expect(devices.get_by_role("button", name="Notify me on this device")).to_be_enabled()
    page.select_option('select[name="push:general"]', "all")
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.locator('select[name="push:general"]')).to_have_value("all", timeout=TIMEOUT)
    assert Preference.objects.get(user=alice, category="general").push == "all"
    page.screenshot(path=str(artifacts_dir / "push-preferences-desktop.png"), full_page=True)

    devices.get_by_role("button", name="Remove").click()
    expect(devices.locator("[data-push-status]")).to_contain_text("Removed", timeout=TIMEOUT)
    expect(devices).not_to_contain_text("Chrome on Linux")
    expect(devices.locator("[data-push-empty]")).to_be_visible()
    assert not PushSubscription.objects.filter(pk=device.pk).exists()

    phone = browser_page(alice, width=390)
    phone.goto("/t/acme/notifications/preferences/")
    expect(phone.locator("#push-devices")).to_contain_text("No device yet.")
    phone.screenshot(path=str(artifacts_dir / "push-preferences-phone.png"), full_page=True)
    assert phone.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert page.errors == [] and phone.errors == []
    page.context.close()
    phone.context.close()


def test_the_service_worker_shows_a_pushed_notification_with_its_title_body_and_icon(browser_page, live, org):
    """Tests /sw.js at the root: registered for the whole site, it shows what a push message carries."""
    page = browser_page(org["alice"])
    page.context.grant_permissions(["notifications"], origin=live.http_url)
    page.goto("/t/acme/notifications/preferences/")
    scope = page.evaluate(
        """async () => {
      const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      await navigator.serviceWorker.ready;
      return registration.scope;
    }"""
    )
    assert scope == f"{live.http_url}/"
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    registration = registration_of(page, registrations, scope)
    message = {
        "title": "Deploy failed",
        "body": "The release pipeline stopped at step 3.",
        "icon": "/static/img/favicon.svg",
        "link": "/t/acme/jobs/",
        "tag": "notification-42",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": live.http_url, "registrationId": registration["registrationId"], "data": json.dumps(message)},
    )
    shown = page.wait_for_function(
        """async () => {
      const registration = await navigator.serviceWorker.ready;
      const shown = await registration.getNotifications({ tag: "notification-42" });
      if (!shown.length) return null;
      return { title: shown[0].title, body: shown[0].body, icon: shown[0].icon, link: shown[0].data.link };
    }""",
        timeout=TIMEOUT,
    ).json_value()
    assert shown["title"] == "Deploy failed"
    assert shown["body"] == "The release pipeline stopped at step 3."
    assert re.search(r"/static/img/favicon\.svg$", shown["icon"])
    assert shown["link"] == "/t/acme/jobs/"
    assert page.errors == []
    page.context.close()
