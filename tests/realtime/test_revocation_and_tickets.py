"""Live revocation (membership removed, logout, deactivation) and the ticket route for apps."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from websockets.exceptions import InvalidStatus

from accounts.services import do_add_member, do_remove_member
from realtime.audience import Audience
from realtime.events import publish
from realtime.models import ConnectionTicket
from realtime.tickets import issue_ticket
from tests.support.ws import open_socket

pytestmark = [pytest.mark.stack]


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def test_removed_member_stops_receiving_the_tenants_events_at_once(live, acme, make_member):
    alice = make_member(acme, email="alice@acme.test")
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        publish("test.before", {}, audience=Audience.tenant(acme.pk), tenant=acme)
        sock.wait_type("test.before")
        do_remove_member(alice.memberships.get(tenant=acme))
        start = sock.positions()
        changed = sock.wait_type("membership.changed", timeout=3.0)
        assert changed["data"]["tenants"] == []
        publish("test.after", {"secret": True}, audience=Audience.tenant(acme.pk), tenant=acme)
        assert [f["type"] for f in sock.drain(0.5) if "stream" in f] == []
    # Resuming from a position in the tenant's stream taken while still a member does not reveal it either.
    assert f"tenant.{acme.pk}:" in start
    with live.socket(alice, positions=start) as sock:
        sock.wait_type("hello")
        assert [f["type"] for f in sock.drain(0.5) if "stream" in f or f["type"] == "resync"] == []


def test_added_member_starts_receiving_without_reconnecting(live, make_tenant, make_member):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    pat = make_member(acme, email="pat@both.test")
    with live.socket(pat) as sock:
        sock.wait_type("hello")
        do_add_member(globex, pat)
        assert {t["slug"] for t in sock.wait_type("membership.changed")["data"]["tenants"]} == {"acme", "globex"}
        publish("test.globex", {}, audience=Audience.tenant(globex.pk), tenant=globex)
        assert sock.wait_type("test.globex")["tenant"] == "globex"


def test_logout_closes_that_sessions_sockets_within_a_second(live, acme, make_member):
    from tests.support.ws import session_cookie_for

    alice = make_member(acme, email="alice@acme.test")
    browser = Client()
    browser.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    cookie = browser.cookies["sessionid"].value
    other_device = session_cookie_for(alice)
    with open_socket(live.ws_url, session=cookie) as sock, open_socket(live.ws_url, session=other_device) as other:
        sock.wait_type("hello")
        other.wait_type("hello")
        browser.post("/accounts/logout/")
        assert sock.closed_code(timeout=3.0) == 4001
        # The other device's session is still valid and its socket stays open.
        publish("test.still_here", {}, audience=Audience.user(alice.pk))
        assert other.wait_type("test.still_here")
    with pytest.raises(InvalidStatus):
        open_socket(live.ws_url, session=cookie)


def test_deactivated_user_is_disconnected_and_cannot_reconnect(live, acme, make_member):
    alice = make_member(acme, email="alice@acme.test")
    with live.socket(alice) as sock:
        sock.wait_type("hello")
        alice.is_active = False
        alice.save()
        assert sock.closed_code(timeout=3.0) == 4003
    with pytest.raises(InvalidStatus):
        live.socket(alice)


def app_socket(live, **kwargs):
    return open_socket(live.ws_url, path="/ws/app/", origin=None, **kwargs)


def test_app_route_authenticates_with_a_single_use_ticket(live, acme, make_member):
    alice = make_member(acme)
    ticket, _ = issue_ticket(alice)
    with app_socket(live) as sock:
        sock.send({"type": "auth", "ticket": ticket})
        hello = sock.wait_type("hello")
        assert hello["data"]["user"] == alice.pk
        publish("test.app", {}, audience=Audience.tenant(acme.pk), tenant=acme)
        assert sock.wait_type("test.app")
    with app_socket(live) as reused:
        reused.send({"type": "auth", "ticket": ticket})
        assert reused.wait_type("error")["data"]["code"] == "auth_failed"
        assert reused.closed_code() == 4401


@pytest.mark.parametrize("ticket", ["lpt_forged", "", None, 123, "x" * 5000])
def test_app_route_refuses_forged_tickets(live, ticket):
    with app_socket(live) as sock:
        sock.send({"type": "auth", "ticket": ticket})
        assert sock.closed_code() == 4401


def test_app_route_refuses_expired_tickets_and_frames_before_auth(live, acme, make_member):
    alice = make_member(acme)
    ticket, _ = issue_ticket(alice)
    ConnectionTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with app_socket(live) as sock:
        sock.send({"type": "resume", "after": 0})
        assert sock.wait_type("error")["data"]["code"] == "not_authenticated"
        sock.send({"type": "auth", "ticket": ticket})
        assert sock.closed_code() == 4401


def test_app_route_refuses_a_browser_on_a_foreign_site(live, acme, make_member):
    with pytest.raises(InvalidStatus):
        open_socket(live.ws_url, path="/ws/app/", origin="http://evil.example")


def test_ticket_from_http_endpoint_opens_an_app_socket(live, acme, make_member):
    """The whole flow a CLI would follow: log in over HTTP, get a ticket, connect."""
    import json
    import urllib.request

    from tests.support.ws import session_cookie_for

    alice = make_member(acme)
    cookie = session_cookie_for(alice)
    csrf = "a" * 32
    request = urllib.request.Request(
        f"{live.http_url}/api/v1/realtime/tickets",
        method="POST",
        headers={"Cookie": f"sessionid={cookie}; csrftoken={csrf}", "X-CSRFToken": csrf, "Referer": live.http_url},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert body["url"].endswith("/ws/app/")
    with app_socket(live) as sock:
        sock.send({"type": "auth", "ticket": body["ticket"]})
        assert sock.wait_type("hello")["data"]["user"] == alice.pk
