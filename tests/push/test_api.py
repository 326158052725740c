"""The push API a browser's "Notify me on this device" uses: validation, ownership, CSRF, configuration."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client

from push.models import PushSubscription
from push.vapid import vapid_keys

GOOD_KEYS = {"p256dh": "B" + "A" * 86, "auth": "c2VjcmV0LWF1dGgtMTY"}


def subscribe(client: Client, endpoint: str, **extra):
    body = {"endpoint": endpoint, "keys": GOOD_KEYS, "expirationTime": None, **extra}
    return client.post("/api/v1/push/subscriptions", json.dumps(body), content_type="application/json")


@pytest.fixture
def public_only(settings):
    """Endpoints as production checks them (the test settings let the tests' push service on 127.0.0.1 in)."""
    settings.WEBPUSH = {**settings.WEBPUSH, "ALLOW_PRIVATE_ENDPOINTS": False}


def test_a_browser_subscribes_once_per_endpoint_and_sees_only_its_users_devices(client, org, public_only):
    """Tests subscribe, subscribe again (same row), list and delete; another user's device is a 404."""
    client.force_login(org["alice"])
    endpoint = "https://fcm.googleapis.com/fcm/send/abc123"
    first = subscribe(client, endpoint, device="Chrome on Linux")
    assert first.status_code == 201, first.content
    again = subscribe(client, endpoint, device="Chrome on Linux")
    assert again.json()["id"] == first.json()["id"]
    assert [d["device"] for d in client.get("/api/v1/push/subscriptions").json()] == ["Chrome on Linux"]

    bob = Client()
    bob.force_login(org["bob"])
    assert bob.get("/api/v1/push/subscriptions").json() == []
    assert bob.delete(f"/api/v1/push/subscriptions/{first.json()['id']}").status_code == 404
    # The same browser, now signed in as bob, subscribes: the device moves to him.
    assert subscribe(bob, endpoint).json()["id"] == first.json()["id"]
    assert PushSubscription.objects.get().user == org["bob"]
    assert bob.delete(f"/api/v1/push/subscriptions/{first.json()['id']}").status_code == 204
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://fcm.googleapis.com/fcm/send/x",  # not https
        "https://127.0.0.1/push",
        "https://10.1.2.3/push",
        "https://[::1]/push",
        "https://localhost/push",
        "https://metadata.internal/push",
        "ftp://example.com/push",
    ],
)
def test_an_endpoint_inside_the_network_is_refused_with_a_clear_error(client, org, public_only, endpoint):
    """Tests that the server never posts into its own network on a user's say-so."""
    client.force_login(org["alice"])
    response = subscribe(client, endpoint)
    assert response.status_code == 400
    assert "endpoint" in response.json()["errors"]
    assert not PushSubscription.objects.exists()


def test_bad_keys_are_a_400_and_anonymous_callers_a_401(client, org):
    response = client.post(
        "/api/v1/push/subscriptions",
        json.dumps({"endpoint": "https://push.example/x", "keys": {"p256dh": "<script>", "auth": ""}}),
        content_type="application/json",
    )
    assert response.status_code == 401
    client.force_login(org["alice"])
    response = client.post(
        "/api/v1/push/subscriptions",
        json.dumps({"endpoint": "https://push.example/x", "keys": {"p256dh": "<script>", "auth": ""}}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"keys.p256dh", "keys.auth"}


def test_a_session_post_needs_the_csrf_token(org):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(org["alice"])
    assert subscribe(browser, "https://push.example/x").status_code == 403
    assert not PushSubscription.objects.exists()


def test_the_key_is_served_and_without_keys_in_production_push_is_off_and_said_so(client, org, settings):
    """Tests the VAPID key endpoint, the generated pair kept under VAR_DIR, and production's refusal."""
    client.force_login(org["alice"])
    assert client.get("/api/v1/push/key").json() == {"public_key": vapid_keys().public_key}
    assert vapid_keys() == vapid_keys()  # kept, not made anew
    settings.WEBPUSH = {**settings.WEBPUSH, "GENERATE_KEYS": False, "VAPID_PUBLIC_KEY": "", "VAPID_PRIVATE_KEY": ""}
    assert client.get("/api/v1/push/key").status_code == 503
    from push.checks import push_configured

    assert [message.id for message in push_configured(None)] == ["push.W001"]


def test_generate_vapid_keys_prints_a_pair_the_platform_signs_with(capsys, settings):
    call_command("generate_vapid_keys")
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    settings.WEBPUSH = {
        **settings.WEBPUSH,
        "VAPID_PUBLIC_KEY": lines["WEBPUSH_VAPID_PUBLIC_KEY"],
        "VAPID_PRIVATE_KEY": lines["WEBPUSH_VAPID_PRIVATE_KEY"],
    }
    from py_vapid import Vapid

    signer = Vapid.from_string(vapid_keys().private_key)
    assert len(lines["WEBPUSH_VAPID_PUBLIC_KEY"]) == 87  # 65 bytes, base64url
    assert signer.public_key is not None
