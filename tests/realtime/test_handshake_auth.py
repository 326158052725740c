"""The browser socket's door (``realtime.auth``): session cookie, user, handshake budget, in one step."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from liveplatform.cache import shared_cache
from realtime import services

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://127.0.0.1:8000"


def browser_socket(cookie: str | None, query: str = "") -> WebsocketCommunicator:
    from liveplatform.asgi import application

    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", ORIGIN)]
    if cookie is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/{query}", headers=headers)


def logged_in(user) -> tuple[Client, str]:
    """A browser logged in as ``user``, and its session cookie."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def opens(cookie: str | None) -> bool:
    """Whether a browser socket with this session cookie is accepted (its hello read, then closed)."""

    async def run() -> bool:
        socket = browser_socket(cookie)
        connected, _ = await socket.connect()
        if connected:
            await socket.receive_json_from()
            await socket.disconnect()
        return connected

    return async_to_sync(run)()


@pytest.fixture
def alice(make_member, make_tenant):
    return make_member(make_tenant("acme"), email="alice@acme.test")


def test_a_logged_in_browser_gets_a_socket_that_greets_its_user(inmemory_channel_layer, alice):
    """Tests that the session cookie alone (with the site's Origin) authenticates the socket."""
    _, cookie = logged_in(alice)

    async def run():
        socket = browser_socket(cookie)
        connected, _ = await socket.connect()
        assert connected
        hello = await socket.receive_json_from()
        assert hello["type"] == "hello" and hello["data"]["user"] == alice.pk
        assert [t["slug"] for t in hello["data"]["tenants"]] == ["acme"]
        await socket.disconnect()

    async_to_sync(run)()


def _expire(cookie, user):
    Session.objects.filter(session_key=cookie).update(expire_date=timezone.now() - timedelta(seconds=1))


def _log_out(cookie, user):
    Session.objects.filter(session_key=cookie).delete()


def _deactivate(cookie, user):
    type(user).objects.filter(pk=user.pk).update(is_active=False)


def _change_password(cookie, user):
    user.set_password("a-new-password-456")
    user.save()


def _delete_user(cookie, user):
    user.delete()


@pytest.mark.parametrize(
    "spoil",
    [_expire, _log_out, _deactivate, _change_password, _delete_user],
    ids=["expired-session", "logged-out-session", "deactivated-user", "password-changed", "deleted-user"],
)
def test_a_session_that_no_longer_authenticates_is_refused(inmemory_channel_layer, alice, spoil):
    """Tests that each way a session stops being valid refuses the handshake (HTTP 403 before accept)."""
    _, cookie = logged_in(alice)
    assert opens(cookie)
    spoil(cookie, alice)
    assert not opens(cookie)


@pytest.mark.parametrize("cookie", [None, "", "x" * 32], ids=["no-cookie", "empty-cookie", "forged-session"])
def test_a_browser_without_a_session_is_refused(inmemory_channel_layer, alice, cookie):
    """Tests that an anonymous handshake is refused."""
    assert not opens(cookie)


def test_each_handshake_counts_once_against_the_per_user_limit(
    inmemory_channel_layer, settings, monkeypatch, alice, make_member, make_tenant
):
    """Tests that a user may open CONNECTS_PER_MINUTE sockets a minute, not half as many, and others are unaffected."""
    settings.REALTIME = {**settings.REALTIME, "CONNECTS_PER_MINUTE": 3}
    bob = make_member(make_tenant("globex"), email="bob@globex.test")
    # One fixed minute, with no count left from an earlier test of the same user id.
    now = time.time()
    monkeypatch.setattr(services, "time", SimpleNamespace(time=lambda: now))
    for user in (alice, bob):
        shared_cache().delete(f"ws-connects:{user.pk}:{int(now // 60)}")
    _, cookie = logged_in(alice)
    assert [opens(cookie) for _ in range(4)] == [True, True, True, False]
    assert opens(logged_in(bob)[1])


def test_logging_out_closes_the_sockets_of_that_session_only(inmemory_channel_layer, alice):
    """Tests that the socket remembers its session: logging out one browser leaves the other connected."""
    laptop, laptop_cookie = logged_in(alice)
    _, phone_cookie = logged_in(alice)

    async def run():
        on_laptop, on_phone = browser_socket(laptop_cookie), browser_socket(phone_cookie)
        for socket in (on_laptop, on_phone):
            assert (await socket.connect())[0]
            assert (await socket.receive_json_from())["type"] == "hello"
        await sync_to_async(laptop.post)("/accounts/logout/")
        while True:  # skip the state snapshots sent after hello
            output = await on_laptop.receive_output(timeout=5)
            if output["type"] == "websocket.close":
                break
        assert output["code"] == 4001
        await on_phone.send_json_to({"type": "ping"})
        while (await on_phone.receive_json_from(timeout=5))["type"] != "pong":
            pass  # the snapshots after hello come first
        await on_phone.disconnect()

    async_to_sync(run)()
