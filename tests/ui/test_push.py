"""Web Push in Chromium: the preferences page's devices and choices, and a push from notify() to the screen.

Chromium's push service is Google's, which these machines cannot reach. So the page's
``PushManager.subscribe`` answers with a subscription on the tests' push service
(tests/push/pushservice.py), the real Celery worker posts the encrypted message there,
and the test hands the decrypted message to the service worker through the browser's
own DevTools protocol (``ServiceWorker.deliverPushMessage``), as a push service would.
The service worker's click handler (focus an open tab and go to the link) is not
driven: no API clicks a system notification.
"""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from playwright.sync_api import expect

from notifications import services as notifications
from notifications.models import Preference
from push.models import PushSubscription
from push.services import do_subscribe
from push.vapid import vapid_keys
from realtime.presence.services import connected_users
from tests.push.pushservice import start_push_service
from tests.support.processes import wait_for

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


@pytest.fixture
def push_service():
    service = start_push_service()
    yield service
    service.stop()


# The page's PushManager.subscribe() would ask Google's push service, out of reach here:
# it answers with the tests' push service instead, and keeps the key it was given.
SUBSCRIBE_TO_THE_TESTS_PUSH_SERVICE = """
PushManager.prototype.subscribe = async function (options) {
  const key = btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)));
  sessionStorage.setItem("applicationServerKey", key);
  const json = %s;
  return { endpoint: json.endpoint, toJSON: () => json };
};
"""


def test_notify_me_on_this_device_then_what_is_sent_while_away_is_shown_by_the_service_worker(
    browser_page, live, celery_worker, org, push_service
):
    """Tests the whole path: the control subscribes, notify() while away, Celery, the push service, /sw.js shows it."""
    alice = org["alice"]
    receiver = push_service.receiver("alice-chromium")
    page = browser_page(alice)
    page.context.grant_permissions(["notifications"], origin=live.http_url)
    page.add_init_script(SUBSCRIBE_TO_THE_TESTS_PUSH_SERVICE % json.dumps(push_service.subscription(receiver)))
    page.goto("/t/acme/notifications/preferences/")
    page.get_by_role("button", name="Notify me on this device").click()
    expect(page.locator("[data-push-list]")).to_contain_text("Chrome on Linux", timeout=TIMEOUT)
    assert PushSubscription.objects.get(user=alice).endpoint == push_service.subscription(receiver)["endpoint"]
    given = base64.b64decode(page.evaluate("sessionStorage.getItem('applicationServerKey')"))
    assert base64.urlsafe_b64encode(given).rstrip(b"=").decode() == vapid_keys().public_key

    # Alice leaves the site's pages (a same-origin page without a socket stays, for the checks).
    page.goto("/healthz")
    wait_for(lambda: connected_users([alice.pk]) == set(), timeout=20, message="alice counted as away")
    notifications.notify(
        org["acme"], alice, category="general", title="Build broken", body="**main** is red", level="error",
        link="/t/acme/jobs/",
    )  # fmt: skip
    wait_for(lambda: push_service.delivered(receiver), timeout=20, message="the push service got the message")
    (payload,) = push_service.delivered(receiver)

    # The push service hands the message to the browser, as DevTools lets a test do.
    scope = f"{live.http_url}/"
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    registration = registration_of(page, registrations, scope)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": live.http_url, "registrationId": registration["registrationId"], "data": json.dumps(payload)},
    )
    shown = page.wait_for_function(
        """async (tag) => {
      const registration = await navigator.serviceWorker.ready;
      const shown = await registration.getNotifications({ tag });
      if (!shown.length) return null;
      return { title: shown[0].title, body: shown[0].body, icon: shown[0].icon, link: shown[0].data.link };
    }""",
        arg=payload["tag"],
        timeout=TIMEOUT,
    ).json_value()
    assert shown["title"] == "Build broken"
    assert shown["body"] == "main is red"
    assert re.search(r"/static/img/favicon\.svg$", shown["icon"])
    assert shown["link"] == "/t/acme/jobs/"
    assert page.errors == []
