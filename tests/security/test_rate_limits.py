"""Rate limits: logins (allauth), the HTTP API per key, socket frames, socket handshakes per user."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import Client
from websockets.exceptions import InvalidStatus

from tests.support.processes import Daphne, wait_for
from tests.support.ws import open_socket, session_cookie_for


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def _not_at_a_minute_boundary(margin: float = 8.0) -> None:
    """Fixed one-minute windows: start a counting test well inside a window, not at its edge."""
    wait_for(lambda: time.time() % 60 < 60 - margin, timeout=margin + 2, message="a fresh minute")


# ------------------------------------------------------------------------------
# Login (allauth's own limits, configured in settings/base.py)
# ------------------------------------------------------------------------------
def test_repeated_failed_logins_lock_the_account_out_even_with_the_right_password(db, make_user, settings):
    """Tests that allauth's login_failed limit (5 per 5 minutes per account) stops a password-guessing run."""
    from liveplatform.settings import base

    settings.ACCOUNT_RATE_LIMITS = base.ACCOUNT_RATE_LIMITS  # the production limits (tests turn them off)
    cache.clear()
    make_user("victim@acme.test", password="right-password-1")
    client = Client()
    for n in range(5):
        wrong = client.post("/accounts/login/", {"login": "victim@acme.test", "password": f"guess-{n}"})
        assert b"Too many failed login attempts" not in wrong.content
    right = client.post("/accounts/login/", {"login": "victim@acme.test", "password": "right-password-1"})
    assert b"Too many failed login attempts" in right.content
    assert "_auth_user_id" not in client.session
    cache.clear()
    # Once the window is over (here: the counters cleared) the right password works again.
    assert (
        client.post("/accounts/login/", {"login": "victim@acme.test", "password": "right-password-1"}).status_code
        == 302
    )
    assert "_auth_user_id" in client.session


# ------------------------------------------------------------------------------
# HTTP API per key
# ------------------------------------------------------------------------------
def _fresh_counters(*api_keys) -> None:
    """These keys' counters start at zero: a key of an earlier, rolled-back test may have had the same id."""
    from liveplatform.cache import shared_cache

    window = int(time.time() // 60)
    shared_cache().delete_many(
        [f"throttle:api_key:{api_key.pk}:60:{w}" for api_key in api_keys for w in (window, window + 1)]
    )


def test_an_api_key_over_its_rate_gets_429_with_retry_after_and_other_keys_are_unaffected(
    db, acme, make_member, settings
):
    """Tests the per-key limit: the over-limit request does nothing and says when to come back."""
    from accounts.api_keys import do_create_api_key
    from notifications.models import Notification

    settings.API_KEY_RATE_LIMIT = "5/m"
    _not_at_a_minute_boundary()
    alice = make_member(acme, email="alice@acme.test")
    busy_key, busy = do_create_api_key(acme, "busy")
    calm_key, calm = do_create_api_key(acme, "calm")
    _fresh_counters(busy_key, calm_key)
    client = Client()

    def send(key: str, title: str):
        return client.post(
            "/api/v1/notifications",
            {"user_ids": [alice.pk], "title": title},
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )

    assert [send(busy, f"n{i}").status_code for i in range(5)] == [201] * 5
    refused = send(busy, "one too many")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert not Notification.objects.filter(title="one too many").exists()
    assert send(calm, "another key").status_code == 201
    # A wrong key is 401, not counted against anyone.
    assert send("lpk_wrong", "x").status_code == 401


# ------------------------------------------------------------------------------
# Socket frames per connection (through daphne)
# ------------------------------------------------------------------------------
@pytest.mark.stack
def test_a_socket_flooding_frames_is_told_then_closed_with_4429_and_others_are_unaffected(live, acme, make_member):
    """Tests the per-socket token bucket: a flood closes that socket only."""
    alice = make_member(acme, email="alice@acme.test")
    with live.socket(alice) as flooder, live.socket(alice) as calm:
        flooder.wait_type("hello")
        calm.wait_type("hello")
        for _ in range(200):
            try:
                flooder.send({"type": "ping"})
            except Exception:  # noqa: BLE001 - the server may already have closed it
                break
        assert flooder.closed_code(timeout=10) == 4429
        assert any(f["type"] == "error" and f["data"]["code"] == "rate_limited" for f in flooder.frames)
        calm.send({"type": "ping"})
        assert calm.wait_type("pong")["type"] == "pong"


# ------------------------------------------------------------------------------
# Handshakes per user (a daphne of this test's own, with a low limit)
# ------------------------------------------------------------------------------
@pytest.fixture
def strict_daphne(subprocess_env):
    server = Daphne({**subprocess_env, "REALTIME_CONNECTS_PER_MINUTE": "5"}).start()
    yield server
    server.stop()


@pytest.mark.stack
def test_handshakes_over_the_per_user_limit_are_refused_for_that_user_only(
    transactional_db, strict_daphne, acme, make_member
):
    """Tests that a reconnect storm from one account is refused, browser (403) and app (4429) alike."""
    from realtime.tickets import issue_ticket

    alice = make_member(acme, email="alice@acme.test")
    bob = make_member(acme, email="bob@acme.test")
    _not_at_a_minute_boundary()
    cookie = session_cookie_for(alice)
    for _ in range(5):
        with open_socket(strict_daphne.ws_url, session=cookie) as sock:
            assert sock.wait_type("hello")["data"]["user"] == alice.pk
    with pytest.raises(InvalidStatus) as refused:
        open_socket(strict_daphne.ws_url, session=cookie)
    assert refused.value.response.status_code == 403

    ticket, _ = issue_ticket(alice)
    app = open_socket(strict_daphne.ws_url, path="/ws/app/", origin=None)
    app.send({"type": "auth", "ticket": ticket})
    assert app.closed_code(timeout=10) == 4429
    assert not any(f["type"] == "hello" for f in app.frames)

    with open_socket(strict_daphne.ws_url, session=session_cookie_for(bob)) as other:
        assert other.wait_type("hello")["data"]["user"] == bob.pk


def test_two_web_processes_share_a_busy_keys_limit_and_refuse_at_most_their_blocks_early(db, acme, settings):
    """Tests the reserved blocks: a busy key's limit holds across processes, a calm key is counted exactly.

    Each web process has its own throttle (two instances here) and reserves hits from
    the shared Redis counter in blocks; together they never let more than the limit
    through, and refuse at most their blocks' unused part (1% of the limit each) early.
    """
    from types import SimpleNamespace

    from accounts.api_auth import ApiKeyRateThrottle
    from accounts.api_keys import do_create_api_key

    settings.API_KEY_RATE_LIMIT = "2000/m"
    _not_at_a_minute_boundary(margin=15)
    busy, _ = do_create_api_key(acme, "busy")
    calm, _ = do_create_api_key(acme, "calm")
    _fresh_counters(busy, calm)
    processes = [ApiKeyRateThrottle(), ApiKeyRateThrottle()]

    answers = [processes[i % 2].allow_request(SimpleNamespace(auth=busy)) for i in range(2200)]
    allowed = sum(answers)
    assert 2000 - 2 * 20 <= allowed <= 2000, allowed
    assert not any(answers[2100:]), "the key kept getting through past its limit"
    assert 1 <= processes[0].wait() <= 60

    # Many request threads of one process at once: still never more than the limit.
    from concurrent.futures import ThreadPoolExecutor

    threaded, _ = do_create_api_key(acme, "threaded")
    _fresh_counters(threaded)
    one_process = ApiKeyRateThrottle()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: one_process.allow_request(SimpleNamespace(auth=threaded)), range(2400)))
    assert 2000 - 20 <= sum(answers) <= 2000, sum(answers)

    # A key under 200 a window gets blocks of one: its 150th request is its 150th hit.
    settings.API_KEY_RATE_LIMIT = "150/m"
    calm_answers = [processes[i % 2].allow_request(SimpleNamespace(auth=calm)) for i in range(151)]
    assert calm_answers == [True] * 150 + [False]
    _fresh_counters(busy, calm, threaded)  # a later test's key may get one of these ids
