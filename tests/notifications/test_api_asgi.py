"""The sending API through the ASGI application, as uvicorn and daphne call it (liveplatform.handlers).

A web process reuses its request threads and, within ``DATABASE_CONN_MAX_AGE``, their
database connections, as Django does under WSGI: one connection per request thread,
not one per request, and none kept past its age. At most ``HTTP_CONCURRENCY`` requests
run at once; the others wait their turn, and the liveness probe never waits.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.db import connections
from django.db.backends.signals import connection_created
from django.http import HttpResponse
from django.urls import path
from prometheus_client import REGISTRY

from liveplatform.urls import urlpatterns as project_urlpatterns
from notifications.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conn_max_age():
    """Set ``CONN_MAX_AGE`` for the connections request threads open from now on (none is open before)."""
    saved = connections.settings["default"]["CONN_MAX_AGE"]

    def set_to(seconds: int) -> None:
        connections.settings["default"]["CONN_MAX_AGE"] = seconds

    _close_kept_connections()
    yield set_to
    connections.settings["default"]["CONN_MAX_AGE"] = saved
    _close_kept_connections()


@pytest.fixture
def opened():
    """Database connections opened while the test runs, in any thread."""
    seen: list[str] = []

    def count(sender, connection, **kwargs) -> None:
        seen.append(connection.alias)

    connection_created.connect(count, weak=False, dispatch_uid="test_api_asgi.opened")
    yield seen
    connection_created.disconnect(dispatch_uid="test_api_asgi.opened")


def post_through_asgi(raw_key: str, bodies: list[dict]) -> list[dict]:
    """POST each body in turn to the real ASGI application; returns each response."""
    from liveplatform.asgi import application

    async def run() -> list[dict]:
        responses = []
        for body in bodies:
            headers = [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {raw_key}".encode()),
            ]
            communicator = HttpCommunicator(
                application, "POST", "/api/v1/notifications", body=json.dumps(body).encode(), headers=headers
            )
            responses.append(await communicator.get_response(timeout=10))
            await communicator.wait(timeout=10)  # the request's own clean-up (request_finished) is done
        return responses

    return async_to_sync(run)()


def request_threads():
    from liveplatform.asgi import django_asgi_app

    return list(django_asgi_app._idle)


def test_calls_in_a_row_share_one_connection_while_conn_max_age_allows(org, make_api_key, conn_max_age, opened):
    conn_max_age(600)
    raw = make_api_key(org["acme"])[1]
    responses = post_through_asgi(raw, [{"user_ids": [org["alice"].pk], "title": f"n{i}"} for i in range(4)])
    assert [r["status"] for r in responses] == [201] * 4
    assert all(dict(r["headers"]).get(b"X-Request-ID") for r in responses)
    assert Notification.objects.filter(recipient=org["alice"], title__startswith="n").count() == 4
    # At most the first call opens one (its thread may be new); the others reuse it.
    assert len(opened) <= 1


def test_without_conn_max_age_each_call_opens_and_closes_its_own(org, make_api_key, conn_max_age, opened):
    conn_max_age(0)
    raw = make_api_key(org["acme"])[1]
    responses = post_through_asgi(raw, [{"user_ids": [org["alice"].pk], "title": f"n{i}"} for i in range(3)])
    assert [r["status"] for r in responses] == [201] * 3
    assert len(opened) == 3
    for executor in request_threads():
        assert executor.submit(_kept_connections_open).result() == []


def test_a_connection_past_its_max_age_is_replaced_before_the_next_request_uses_it(
    org, make_api_key, conn_max_age, opened
):
    """Tests the check at the start of each request (request_started), as under WSGI."""
    conn_max_age(600)
    raw = make_api_key(org["acme"])[1]
    assert post_through_asgi(raw, [{"user_ids": [org["alice"].pk], "title": "first"}])[0]["status"] == 201
    opened.clear()
    for executor in request_threads():
        executor.submit(_age_kept_connections).result()  # as if 600 s had passed
    assert post_through_asgi(raw, [{"user_ids": [org["alice"].pk], "title": "second"}])[0]["status"] == 201
    assert len(opened) == 1


def _close_kept_connections() -> None:
    for executor in request_threads():
        executor.submit(connections.close_all).result()


def _kept_connections_open() -> list[str]:
    """In a request thread: the aliases whose connection is still open."""
    return [conn.alias for conn in connections.all(initialized_only=True) if conn.connection is not None]


def _age_kept_connections() -> None:
    """In a request thread: make its connections look older than CONN_MAX_AGE."""
    for conn in connections.all(initialized_only=True):
        if conn.close_at is not None:
            conn.close_at = 0


# ------------------------------------------------------------------------------
# Turns: at most HTTP_CONCURRENCY requests run their middleware and view at once
# ------------------------------------------------------------------------------
blocking_view_entered = threading.Event()
release_blocking_view = threading.Event()


def blocking_view(request):
    """Holds its turn until the test lets it go."""
    blocking_view_entered.set()
    release_blocking_view.wait(timeout=30)
    return HttpResponse("done")


urlpatterns = [path("test/blocking", blocking_view), *project_urlpatterns]


def communicator_for(method: str, path: str, raw_key: str | None = None, body: dict | None = None):
    from liveplatform.asgi import application

    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    if raw_key:
        headers.append((b"authorization", f"Bearer {raw_key}".encode()))
    return HttpCommunicator(application, method, path, body=json.dumps(body or {}).encode(), headers=headers)


async def until_waiting_for_a_turn(count: int, timeout: float = 10) -> None:
    """Poll the process's gauge of requests waiting for a turn (a readiness wait, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (REGISTRY.get_sample_value("liveplatform_http_requests_waiting") or 0) < count:
        assert loop.time() < deadline, f"no {count} request(s) waiting for a turn within {timeout} s"
        await asyncio.sleep(0.01)


async def started(communicator: HttpCommunicator) -> HttpCommunicator:
    """Send the request without waiting for its response."""
    communicator.sent_request = True
    await communicator.send_input({"type": "http.request", "body": communicator.body})
    return communicator


@pytest.mark.urls(__name__)
def test_a_request_waits_for_a_turn_while_the_liveness_probe_never_does(org, make_api_key, settings):
    """Tests HTTP_CONCURRENCY=1 with its one turn held by a slow view: the API call queues (and the
    gauge says so), /healthz answers meanwhile, and the API call is answered once the turn is free."""
    settings.HTTP_CONCURRENCY = 1
    raw = make_api_key(org["acme"])[1]
    blocking_view_entered.clear()
    release_blocking_view.clear()

    async def run() -> tuple[int, int, bool, int]:
        loop = asyncio.get_running_loop()
        slow = await started(communicator_for("GET", "/test/blocking"))
        assert await loop.run_in_executor(None, blocking_view_entered.wait, 30)
        body = {"user_ids": [org["alice"].pk], "title": "q"}
        queued = await started(communicator_for("POST", "/api/v1/notifications", raw, body))
        await until_waiting_for_a_turn(1)
        liveness = await communicator_for("GET", "/healthz").get_response(timeout=10)
        answered_before_release = not queued.output_queue.empty()
        release_blocking_view.set()
        slow_status = (await slow.get_response(timeout=10))["status"]
        queued_status = (await queued.get_response(timeout=10))["status"]
        return liveness["status"], slow_status, answered_before_release, queued_status

    liveness, slow_status, answered_before_release, queued_status = async_to_sync(run)()
    assert liveness == 200 and slow_status == 200
    assert not answered_before_release
    assert queued_status == 201
    assert Notification.objects.filter(recipient=org["alice"], title="q").exists()
