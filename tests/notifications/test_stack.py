"""Through the real stack: an API call in this process reaches the recipient's sockets via daphne and Redis."""

from __future__ import annotations

import json
import urllib.request

import pytest

from realtime.audience import user_group

pytestmark = [pytest.mark.stack]


def post_notification(http_url: str, raw_key: str, body: dict, idempotency_key: str | None = None) -> tuple[int, dict]:
    """POST /api/v1/notifications over real HTTP, the way another service would."""
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(
        f"{http_url}/api/v1/notifications", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_an_api_call_reaches_only_the_recipients_sockets(live, org, make_api_key):
    """Alice's two sockets get the notification and her new counts; bob, pat and gina get nothing."""
    raw_key = make_api_key(org["acme"])[1]
    with (
        live.socket(org["alice"]) as alice_1,
        live.socket(org["alice"]) as alice_2,
        live.socket(org["bob"]) as bob,
        live.socket(org["pat"]) as pat,
        live.socket(org["gina"]) as gina,
    ):
        for sock in (alice_1, alice_2, bob, pat, gina):
            sock.wait_type("hello")
        # Every socket starts with its counts per tenant, and only for its own tenants.
        assert alice_1.wait_type("notification.counts")["tenant"] == "acme"
        assert gina.wait_type("notification.counts")["tenant"] == "globex"
        assert {pat.wait_type("notification.counts")["tenant"] for _ in range(2)} == {"acme", "globex"}
        status, body = post_notification(
            live.http_url,
            raw_key,
            {"user_ids": [org["alice"].pk], "title": "Build #12 passed", "level": "success", "link": "/t/acme/"},
            idempotency_key="build-12",
        )
        assert (status, body) == (201, {"created": 1, "tenant": "acme"})
        frames = [sock.wait_type("notification.created", timeout=20) for sock in (alice_1, alice_2)]
        for frame in frames:
            assert frame["tenant"] == "acme" and frame["stream"] == user_group(org["alice"].pk)
            assert frame["data"]["notification"]["title"] == "Build #12 passed"
            assert frame["data"]["notification"]["level"] == "success"
            assert frame["data"]["counts"]["unread"] == 1 and frame["data"]["toast"] is True
        assert (frames[0]["offset"], frames[0]["epoch"]) == (frames[1]["offset"], frames[1]["epoch"])
        # A retry with the same Idempotency-Key sends nothing new.
        assert post_notification(
            live.http_url,
            raw_key,
            {"user_ids": [org["alice"].pk], "title": "Build #12 passed", "level": "success", "link": "/t/acme/"},
            idempotency_key="build-12",
        ) == (201, {"created": 1, "tenant": "acme"})
        # Then one more for alice and one for bob. Order holds per stream: once alice's next one has
        # arrived, a second copy of the first would have arrived before it.
        post_notification(live.http_url, raw_key, {"user_ids": [org["alice"].pk], "title": "Next for alice"})
        post_notification(live.http_url, raw_key, {"user_ids": [org["bob"].pk], "title": "For bob"})
        following = alice_1.wait_type("notification.created", timeout=20)
        assert following["data"]["notification"]["title"] == "Next for alice"
        assert following["offset"] == frames[0]["offset"] + 1
        assert bob.wait_type("notification.created", timeout=20)["data"]["notification"]["title"] == "For bob"
        for sock in (bob, pat, gina):
            titles = [f["data"]["notification"]["title"] for f in sock.frames if f["type"] == "notification.created"]
            assert "Build #12 passed" not in titles
        assert [f["type"] for f in pat.durable()] == [] and [f["type"] for f in gina.durable()] == []
        assert alice_1.durable("notification.created") == [frames[0], following]
        assert all(f["tenant"] == "globex" for f in gina.frames if f["type"].startswith("notification."))
