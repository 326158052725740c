"""Socket handshakes through the real daphne: cross-site hijacking and authentication at the door.

OWASP's WebSocket guidance: check the Origin (a page on another site must not ride
the user's cookie), authenticate at the handshake, refuse stale credentials.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from websockets.exceptions import InvalidStatus

from tests.support.ws import open_socket, session_cookie_for

pytestmark = pytest.mark.stack


def refused_status(live, **kwargs) -> int:
    """Open a browser socket that must be refused; return the HTTP status of the refusal."""
    with pytest.raises(InvalidStatus) as refused:
        open_socket(live.ws_url, **kwargs).close()
    return refused.value.response.status_code


@pytest.fixture
def alice(make_member, make_tenant):
    return make_member(make_tenant("acme"), email="alice@acme.test")


@pytest.mark.parametrize(
    "origin",
    ["http://evil.test", "https://127.0.0.1.evil.test", "null", None],
    ids=["foreign-site", "lookalike-host", "null-origin", "no-origin"],
)
def test_a_valid_session_cookie_with_a_foreign_or_missing_origin_is_refused(live, alice, origin):
    """Tests that cross-site WebSocket hijacking fails: the cookie alone never opens a socket."""
    assert refused_status(live, session=session_cookie_for(alice), origin=origin) == 403
    with live.socket(alice) as sock:  # the same cookie from the platform's own origin works
        assert sock.wait_type("hello")["data"]["user"] == alice.pk


@pytest.mark.parametrize(
    "origin",
    ["https://127.0.0.1:{port}", "http://127.0.0.1:{other_port}", "http://localhost:{port}", "ws://127.0.0.1:{port}"],
    ids=["other-scheme", "other-port", "other-host-also-in-allowed-hosts", "not-a-web-origin"],
)
def test_an_origin_that_differs_in_scheme_port_or_host_is_refused(live, alice, origin):
    """Tests that the Origin is compared whole: another port or scheme on the same machine is another site."""
    port = live.server.port
    origin = origin.format(port=port, other_port=port + 1)
    assert refused_status(live, session=session_cookie_for(alice), origin=origin) == 403
    assert refused_status(live, path="/ws/app/", origin=origin) == 403


def test_the_exact_origin_is_accepted_on_both_routes_and_apps_need_none(live, alice):
    """Tests the other side: the platform's own origin (scheme, host, port) opens both routes."""
    from realtime.tickets import issue_ticket

    own = f"http://127.0.0.1:{live.server.port}"
    with open_socket(live.ws_url, session=session_cookie_for(alice), origin=own) as sock:
        assert sock.wait_type("hello")["data"]["user"] == alice.pk
    for origin in (own, None):
        with open_socket(live.ws_url, path="/ws/app/", origin=origin) as sock:
            sock.send({"type": "auth", "ticket": issue_ticket(alice)[0]})
            assert sock.wait_type("hello")["data"]["user"] == alice.pk


def test_an_expired_session_is_refused(live, alice):
    """Tests that a session past its expiry date cannot open a socket."""
    cookie = session_cookie_for(alice)
    Session.objects.filter(session_key=cookie).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert refused_status(live, session=cookie) == 403


def test_a_logged_out_session_is_refused(live, alice):
    """Tests that the cookie of a session that logged out is worthless afterwards."""
    client = Client()
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.post("/accounts/logout/")
    assert not Session.objects.filter(session_key=cookie).exists()
    assert refused_status(live, session=cookie) == 403


def test_a_deactivated_user_is_refused(live, alice):
    """Tests that deactivating an account shuts the door even with a live session."""
    cookie = session_cookie_for(alice)
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    assert refused_status(live, session=cookie) == 403


def test_a_forged_session_cookie_is_refused(live, alice):
    """Tests that a made-up session key is an anonymous handshake."""
    assert refused_status(live, session="x" * 32) == 403


def _app_auth(live, ticket) -> tuple[list[dict], int | None]:
    sock = open_socket(live.ws_url, path="/ws/app/", origin=None)
    sock.send({"type": "auth", "ticket": ticket})
    code = sock.closed_code(timeout=10)
    return sock.frames, code


@pytest.mark.parametrize(
    "ticket",
    ["lpt_" + "A" * 43, "lpt_", "", None, 12345, "lpk_not-a-ticket", "lpt_" + "x" * 200],
    ids=["forged", "prefix-only", "empty", "missing", "number", "api-key-shape", "huge"],
)
def test_a_forged_ticket_is_refused_with_4401(live, ticket):
    """Tests that only tickets the server issued open the app route."""
    frames, code = _app_auth(live, ticket)
    assert code == 4401
    assert [f["data"]["code"] for f in frames if f["type"] == "error"] == ["auth_failed"]
    assert not any(f["type"] == "hello" for f in frames)


def test_a_ticket_works_once_and_a_reused_or_expired_one_is_refused(live, alice):
    """Tests that tickets are single-use and expire."""
    from realtime.models import ConnectionTicket
    from realtime.tickets import issue_ticket

    ticket, _ = issue_ticket(alice)
    with open_socket(live.ws_url, path="/ws/app/", origin=None) as sock:
        sock.send({"type": "auth", "ticket": ticket})
        assert sock.wait_type("hello")["data"]["user"] == alice.pk
    frames, code = _app_auth(live, ticket)
    assert code == 4401 and not any(f["type"] == "hello" for f in frames)

    expired, _ = issue_ticket(alice)
    ConnectionTicket.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    frames, code = _app_auth(live, expired)
    assert code == 4401 and not any(f["type"] == "hello" for f in frames)


def test_a_ticket_of_a_deactivated_user_is_refused(live, alice):
    """Tests that a ticket issued before deactivation does not outlive the account."""
    from realtime.tickets import issue_ticket

    ticket, _ = issue_ticket(alice)
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    frames, code = _app_auth(live, ticket)
    assert code == 4401


def test_the_app_route_refuses_a_browser_page_on_a_foreign_site(live, alice):
    """Tests that a foreign page cannot use the cookie-less app route either."""
    with pytest.raises(InvalidStatus) as refused:
        open_socket(live.ws_url, path="/ws/app/", origin="http://evil.test").close()
    assert refused.value.response.status_code == 403
