"""The HTTP side of the ASGI application: Django's handler, cheaper per request.

Django's ``ASGIHandler`` runs each request's sync work on a thread of its own
(``ThreadSensitiveContext``: a new one-thread executor, started for the request and
joined by yet another thread afterwards). Database connections are per thread, so
every request also opened a new connection, and with ``CONN_MAX_AGE`` set the old
thread's connection was never closed, only dropped. On top of that a request made
four hops between its thread and the event loop: into the sync middleware, back to
the loop to resolve the URL, into the thread again for the sync view, and back. In
one web process that also serves thousands of sockets, a request that does nothing
(``/healthz``) cost about 1.8 ms of CPU (``python -m bench.api_cost``).

``PooledASGIHandler`` keeps Django's semantics (one thread per request for all of its
sync work, middleware and views unchanged) but:

* reuses idle request threads instead of starting and joining one per request, so a
  thread's database connection serves its next request as under WSGI:
  ``request_started`` and ``request_finished`` still close it when it is older than
  ``CONN_MAX_AGE``, broken, or left inside a transaction;
* runs the middleware chain and the view in one hop (the chain Django builds for
  WSGI), so a sync view costs one trip into its thread;
* lets at most ``HTTP_CONCURRENCY`` requests run their middleware and view at once;
  the others wait their turn on the event loop, in arrival order. Python runs one
  thread at a time: 16 requests at once in one process spent their CPU handing the
  GIL and SQLite's write lock to each other (API calls offered at 200/s by 16 client
  threads: 4.8-5.5 ms of server CPU per call and 160-170 calls/s, against 3.9-4.1 ms
  and 185-197 calls/s with two at a time). Sending the response (a file download to a
  slow client) does not hold a turn, the liveness probe (``/healthz``) never waits
  for one, and ``liveplatform_http_requests_waiting`` (``/metrics``) shows the queue.

A request owns its thread until it is answered, and at most ``HTTP_IDLE_THREADS``
idle threads are kept.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponse
from django.urls import set_script_prefix
from django.utils.functional import cached_property
from prometheus_client import Gauge

# asgiref 3.13 lets a ThreadSensitiveContext use a given executor; with an older one
# Django's own handler runs unchanged.
EXECUTOR_CONTEXTS = "executor" in inspect.signature(ThreadSensitiveContext).parameters
# The liveness probe answers even when every turn is taken (liveplatform/health.py).
LIVENESS_PATH = "/healthz"

WAITING_FOR_A_TURN = Gauge(
    "liveplatform_http_requests_waiting",
    "HTTP requests waiting for one of the process's HTTP_CONCURRENCY turns",
    multiprocess_mode="livesum",
)


class PooledASGIHandler(ASGIHandler):
    """Django's ASGI handler with reused request threads, one hop per request and bounded concurrency."""

    def __init__(self) -> None:
        self._idle: list[ThreadPoolExecutor] = []
        # One semaphore per event loop: the tests drive the application from several.
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        """Build the sync middleware chain, as for WSGI: ``handle`` calls it in one trip to the request's thread."""
        super().load_middleware(is_async=not EXECUTOR_CONTEXTS and is_async)

    async def handle(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        """Django's ``ASGIHandler.handle`` with one trip to the request's thread instead of three.

        Django's makes a trip for ``request_started``'s receivers, one for the middleware
        and view, and one for ``response.close()`` (``request_finished``), and runs a task
        listening for the client's disconnect beside the view, which a sync view cannot
        act on. Here the request's sync work (started, request, middleware and view, and
        for a response already in memory the close) is one call on its thread, in turn;
        reading the body and sending the response stay on the event loop.
        """
        if not EXECUTOR_CONTEXTS:
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            if scope.get("path") == LIVENESS_PATH:
                response = await self._respond(scope, body_file)
            else:
                async with self._turn():
                    response = await self._respond(scope, body_file)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the response was sent
            if response.streaming:
                await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    @cached_property
    def _respond(self) -> Callable:
        return sync_to_async(self._respond_in_thread, thread_sensitive=True)

    def _respond_in_thread(self, scope: dict[str, Any], body_file: Any) -> HttpResponse:
        """The request's sync work, on its thread: started signal, request, middleware and view, close."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            # In memory already: close it (request_finished, which also recycles this
            # thread's database connection) here rather than in a trip of its own.
            response.close()
        return response

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One of the process's ``HTTP_CONCURRENCY`` turns, waited for in arrival order."""
        turns = self._turns_of(asyncio.get_running_loop())
        if turns.locked():
            WAITING_FOR_A_TURN.inc()
            try:
                await turns.acquire()
            finally:
                WAITING_FOR_A_TURN.dec()
        else:
            await turns.acquire()
        try:
            yield
        finally:
            turns.release()

    def _turns_of(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Semaphore(max(1, settings.HTTP_CONCURRENCY))
        return turns

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if not EXECUTOR_CONTEXTS or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="http")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # Only the event loop's thread touches the list: no lock needed.
            if len(self._idle) < settings.HTTP_IDLE_THREADS:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)
