"""Presence through the real stack: two uvicorn processes on one Redis, sockets, the API, kill -9.

Each process here refreshes its entries every second and lets them expire after 4 s
(the defaults are 5 s and 20 s), so the kill -9 bound is seconds, not half a minute:
a killed process's members go offline within TTL + refresh + 2 x throttle.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests.support.processes import Uvicorn
from tests.support.ws import LiveSocket, open_socket, session_cookie_for

pytestmark = [pytest.mark.stack]

TTL, REFRESH, GRACE, THROTTLE = 4.0, 1.0, 2.0, 1.0
OFFLINE_BOUND = TTL + REFRESH + 2 * THROTTLE + 1.0  # seconds, from the kill to the leave at another socket


@pytest.fixture
def two_servers(subprocess_env, transactional_db) -> Iterator[list[Uvicorn]]:
    """Two web processes of the same platform (same database, same Redis), with fast presence settings."""
    env = subprocess_env | {
        "REALTIME_PRESENCE_TTL_SECONDS": str(TTL),
        "REALTIME_PRESENCE_REFRESH_SECONDS": str(REFRESH),
        "REALTIME_PRESENCE_GRACE_SECONDS": str(GRACE),
        "REALTIME_PRESENCE_THROTTLE_SECONDS": str(THROTTLE),
    }
    servers: list[Uvicorn] = []
    try:
        for _ in range(2):
            servers.append(Uvicorn(env).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


def connect(server: Uvicorn, user) -> LiveSocket:
    sock = open_socket(server.ws_url, session=session_cookie_for(user), max_queue=None)
    sock.wait_type("hello")
    return sock


def watch(sock: LiveSocket, tenant: str) -> dict[str, Any]:
    """Ask for the tenant's presence, as a page showing it does; returns the full list frame."""
    sock.send({"type": "presence.watch", "tenant": tenant})
    return sock.wait_for(lambda f: f["type"] == "presence" and f["tenant"] == tenant and f["data"]["full"])


def presence_frames(sock: LiveSocket, tenant: str | None = None) -> list[dict[str, Any]]:
    return [f for f in sock.frames if f["type"] == "presence" and (tenant is None or f["tenant"] == tenant)]


def listed(frame: dict[str, Any]) -> set[int]:
    """Members a presence frame shows online: the full list's, or a diff's arrivals."""
    return {member["user"] for member in frame["data"]["online" if frame["data"]["full"] else "joined"]}


def online_view(sock: LiveSocket, tenant: str) -> set[int]:
    """Who the socket would show online in ``tenant``: the full list it was sent, then each diff."""
    online: set[int] = set()
    for frame in presence_frames(sock, tenant):
        online = listed(frame) if frame["data"]["full"] else (online | listed(frame)) - set(frame["data"]["left"])
    return online


def joined(sock: LiveSocket, user, tenant: str, timeout: float) -> dict[str, Any]:
    return sock.wait_for(
        lambda f: f["type"] == "presence" and f["tenant"] == tenant and user.pk in listed(f), timeout=timeout
    )


def left(sock: LiveSocket, user, tenant: str, timeout: float) -> dict[str, Any]:
    return sock.wait_for(
        lambda f: f["type"] == "presence" and f["tenant"] == tenant and user.pk in f["data"].get("left", []),
        timeout=timeout,
    )


def api_online(server: Uvicorn, *, tenant: str | None = None, user=None, api_key: str | None = None):
    """``GET /api/v1/presence`` as a service (API key) or a browser (session): (status, JSON body)."""
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if user is not None:
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session_cookie_for(user)}"
    query = f"?{urllib.parse.urlencode({'tenant': tenant})}" if tenant else ""
    request = urllib.request.Request(f"{server.http_url}/api/v1/presence{query}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def emails(answer: tuple[int, dict]) -> set[str]:
    status, body = answer
    assert status == 200, body
    return {member["email"] for member in body["online"]}


def test_presence_crosses_processes_hides_who_asks_stays_in_its_tenant_and_outlives_no_killed_process(
    two_servers, make_tenant, make_member
):
    """Tests presence as members of two tenants on two processes see it, through a kill -9 of one process."""
    from accounts.api_keys import do_create_api_key
    from accounts.models import Membership

    a, b = two_servers
    acme, globex = make_tenant("acme"), make_tenant("globex")
    alice, bob = make_member(acme, email="alice@acme.test"), make_member(acme, email="bob@acme.test")
    hana = make_member(acme, email="hana@acme.test")
    Membership.objects.filter(user=hana, tenant=acme).update(presence_hidden=True)
    gina = make_member(globex, email="gina@globex.test")
    _, acme_key = do_create_api_key(acme, "presence reader")
    _, globex_key = do_create_api_key(globex, "presence reader")

    with connect(b, bob) as bob_sock, connect(b, gina) as gina_sock:
        watch(bob_sock, "acme")
        watch(gina_sock, "globex")
        joined(bob_sock, bob, "acme", timeout=5)  # his own arrival, as every watcher sees it
        alice_sock, hana_sock = connect(a, alice), connect(a, hana)
        joined(bob_sock, alice, "acme", timeout=5)  # a socket on the other process
        assert emails(api_online(b, tenant="acme", user=bob)) == {"alice@acme.test", "bob@acme.test"}
        assert emails(api_online(a, api_key=acme_key)) == {"alice@acme.test", "bob@acme.test"}
        assert emails(api_online(a, api_key=globex_key)) == {"gina@globex.test"}
        assert api_online(a, tenant="acme", user=gina)[0] == 404  # not her tenant
        assert api_online(a, tenant="acme", api_key=globex_key)[0] == 404
        assert api_online(a, tenant="acme")[0] == 401

        watch(late := connect(b, bob), "acme")  # a page opened now: the full list at once
        assert online_view(late, "acme") == {alice.pk, bob.pk}
        late.send({"type": "presence.watch", "tenant": "globex"})  # not his tenant
        assert late.wait_type("error")["data"]["code"] == "invalid_frame"
        late.close()

        a.kill()  # -9: no goodbye from alice's or hana's sockets
        left(bob_sock, alice, "acme", timeout=OFFLINE_BOUND)
        assert emails(api_online(b, api_key=acme_key)) == {"bob@acme.test"}
        bob_sock.drain(THROTTLE + 0.5)
        gina_sock.drain(0.2)
        assert online_view(bob_sock, "acme") == {bob.pk}
        every_frame = presence_frames(bob_sock) + presence_frames(gina_sock) + presence_frames(late)
        assert hana.pk not in {user for frame in every_frame for user in listed(frame)}
        assert presence_frames(gina_sock, "acme") == [] and presence_frames(bob_sock, "globex") == []
        assert online_view(gina_sock, "globex") == {gina.pk}
        for sock in (alice_sock, hana_sock):
            sock.connection.close_timeout = 0.1
            sock.close()


def test_a_reload_or_a_second_tab_on_another_process_is_no_leave_and_no_second_join(
    two_servers, make_tenant, make_member
):
    """Tests that presence does not flap: closing one of two tabs, and a reconnect within the grace period."""
    a, b = two_servers
    acme = make_tenant("acme")
    alice, bob = make_member(acme, email="alice@acme.test"), make_member(acme, email="bob@acme.test")
    with connect(b, bob) as bob_sock:
        watch(bob_sock, "acme")
        first_tab = connect(a, alice)
        joined(bob_sock, alice, "acme", timeout=5)
        with connect(b, alice):  # a second tab, on the other process
            first_tab.close()
            reload = connect(a, alice)  # the first tab reloads at once
            bob_sock.listen(GRACE + 2 * THROTTLE + REFRESH)
        reload.close()
        left(bob_sock, alice, "acme", timeout=GRACE + 3 * THROTTLE + 1)
        about_alice = [
            f
            for f in presence_frames(bob_sock)
            if not f["data"]["full"] and alice.pk in listed(f) | set(f["data"]["left"])
        ]
        assert len(about_alice) == 2  # one join, one leave: nothing in between


def test_a_storm_of_members_arriving_costs_at_most_one_frame_per_second_and_every_view_ends_right(
    two_servers, make_tenant, make_member
):
    """Tests the throttle: 80 members connecting at once on two processes reach a watcher in few frames."""
    a, b = two_servers
    acme = make_tenant("acme")
    observer = make_member(acme, email="observer@acme.test")
    members = [make_member(acme, email=f"m{n}@acme.test") for n in range(80)]
    with connect(a, observer) as watching:
        watch(watching, "acme")
        joined(watching, observer, "acme", timeout=5)
        before = len(presence_frames(watching))
        started = time.monotonic()
        sockets = [connect((a, b)[n % 2], member) for n, member in enumerate(members)]
        try:
            everyone = {observer.pk} | {member.pk for member in members}
            deadline = time.monotonic() + 10
            while online_view(watching, "acme") != everyone and time.monotonic() < deadline:
                watching.listen(0.5)
            assert online_view(watching, "acme") == everyone
            diffs = len(presence_frames(watching)) - before
            elapsed = time.monotonic() - started
            assert diffs <= elapsed / THROTTLE + 1, (diffs, elapsed)
        finally:
            for sock in sockets:
                sock.close()
