"""Web Push through the real stack: a Celery worker process posts to a push service on 127.0.0.1.

The push service (tests/push/pushservice.py) decrypts every message with the
subscription's own key, as a browser's push service hands it to the browser, so the
tests read what a device would show.
"""

from __future__ import annotations

import pytest

from notifications import services as notifications
from notifications.preferences import do_set_preferences
from push.models import PushSubscription
from push.services import do_subscribe
from push.vapid import vapid_keys
from realtime.presence.services import connected_users
from tests.push.pushservice import start_push_service
from tests.support.processes import wait_for

pytestmark = [pytest.mark.stack]


@pytest.fixture
def push_service():
    service = start_push_service()
    yield service
    service.stop()


@pytest.fixture
def devices(push_service, org):
    """A subscribed device for alice, bob and gina (globex), as the browser would store it."""
    made = {}
    for name in ("alice", "bob", "gina"):
        receiver = push_service.receiver(name)
        subscription = push_service.subscription(receiver)
        do_subscribe(org[name], endpoint=subscription["endpoint"], device=f"{name}'s laptop", **subscription["keys"])
        made[name] = receiver
    return made


def test_an_urgent_notification_reaches_the_devices_of_recipients_with_no_socket_encrypted_and_signed(
    live, celery_worker, org, push_service, devices
):
    """Tests what a closed browser gets: title, plain body, icon, link; TTL and urgency from the level; VAPID."""
    notifications.notify(
        org["acme"],
        [org["alice"], org["bob"]],
        category="general",
        title="Disk almost full",
        body="The **database** disk is 95% full.",
        level="error",
        link="/t/acme/jobs/",
    )
    for name in ("alice", "bob"):
        wait_for(lambda name=name: push_service.delivered(devices[name]), timeout=20, message=f"{name}'s push")
    (message,) = push_service.messages(devices["alice"])
    assert message.payload["title"] == "Disk almost full"
    assert message.payload["body"] == "The database disk is 95% full."
    assert message.payload["link"] == "/t/acme/jobs/"
    assert message.payload["icon"].endswith(".svg")
    assert message.headers["ttl"] == "86400" and message.headers["urgency"] == "high"
    assert message.headers["content-encoding"] == "aes128gcm"
    assert message.headers["authorization"].startswith("vapid t=")
    assert f"k={vapid_keys().public_key}" in message.headers["authorization"]
    assert push_service.messages(devices["gina"]) == []  # not a recipient, and another tenant
    assert PushSubscription.objects.get(user=org["alice"]).last_sent_at is not None


def test_a_connected_user_gets_the_toast_not_a_push_unless_they_chose_always_and_info_waits_for_all(
    live, celery_worker, org, push_service, devices
):
    """Tests the push rules: no push while a socket is open, levels by preference, `always` overrides."""
    alice, bob = org["alice"], org["bob"]
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        wait_for(lambda: connected_users([alice.pk]) == {alice.pk}, timeout=10, message="alice counted as connected")
        notifications.notify(org["acme"], [alice, bob], category="general", title="Deploy failed", level="error")
        wait_for(lambda: push_service.delivered(devices["bob"]), timeout=20, message="bob's push")
        # The same task decided for both, before sending bob's: alice, connected, got none.
        assert push_service.messages(devices["alice"]) == []
        assert sock.wait_type("notification.created")["data"]["notification"]["title"] == "Deploy failed"

        # Info is not pushed by default (warnings and errors are); alice chooses "always".
        membership = alice.memberships.get(tenant=org["acme"])
        do_set_preferences(membership, {"general": (True, False, "always")})
        notifications.notify(org["acme"], [alice, bob], category="general", title="Weekly report", level="info")
        wait_for(lambda: push_service.delivered(devices["alice"]), timeout=20, message="alice's push (always)")
        assert [p["title"] for p in push_service.delivered(devices["alice"])] == ["Weekly report"]
        assert [p["title"] for p in push_service.delivered(devices["bob"])] == ["Deploy failed"]


def test_a_subscription_the_push_service_forgot_is_deleted_and_a_failing_service_is_retried(
    live, celery_worker, org, push_service, devices
):
    """Tests 410 (the browser unsubscribed): the row goes; 500 twice (the service is down): retried with backoff."""
    push_service.answer(devices["alice"], 410)
    push_service.answer(devices["bob"], 500, 503)
    notifications.notify(org["acme"], [org["alice"], org["bob"]], category="general", title="Outage", level="warning")
    wait_for(lambda: not PushSubscription.objects.filter(user=org["alice"]).exists(), timeout=20, message="410")
    wait_for(lambda: push_service.delivered(devices["bob"]), timeout=30, message="bob's push after two failures")
    assert [m.status for m in push_service.messages(devices["bob"])] == [500, 503, 201]
    assert push_service.delivered(devices["bob"])[0]["title"] == "Outage"
    assert PushSubscription.objects.get(user=org["bob"]).failures == 0
    assert len(push_service.messages(devices["alice"])) == 1  # never tried again
