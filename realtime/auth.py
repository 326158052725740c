"""The browser socket's door: session cookie, user and handshake budget, checked before the consumer runs.

Replaces Channels' ``AuthMiddlewareStack`` on ``/ws/`` (behind the Origin check in
``routing``). One call to ``admission.admit_browser_socket`` on the sockets' database
threads decides the handshake; a refused one is answered HTTP 403 without starting a
consumer; one that queued too long for those threads (a reconnect storm) is told to
try again later (``outage.refuse_try_again_later``). An admitted one reaches the consumer with, in its scope:

* ``user``: the authenticated, active user;
* ``session``: the session store of the cookie (its ``session_key`` lets a logout close
  the sockets opened with that session; its data is not loaded);
* ``cookies``: the request's cookies, as Channels' ``CookieMiddleware`` sets them;
* ``subscriptions``: the user's ``services.Subscriptions``, read in the same hop. The
  handshake is already counted against ``CONNECTS_PER_MINUTE``: the consumer joins
  these groups without asking ``services.admit_socket``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http.cookie import parse_cookie

from . import metrics
from .admission import OVERLOADED, admit_browser_socket
from .arrival import pop_arrival
from .dbthreads import db_call
from .outage import refuse_try_again_later
from .streams import BadPositions, Position, decode_positions

# One wrapper for every handshake: building a SyncToAsync inspects the function each time.
_admit = db_call(admit_browser_socket)


class SessionAuthMiddleware:
    """Admit a browser socket by its session cookie in one database hop, or refuse it with a 403."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies = _cookies(scope)
        session_key = cookies.get(settings.SESSION_COOKIE_NAME)
        since = positions_in_query(scope)
        admission = await _admit(session_key, pop_arrival(scope), since.keys())
        if admission.refused:
            metrics.REFUSED.labels(reason=admission.refused).inc()
            if admission.refused == OVERLOADED:
                return await refuse_try_again_later(scope, receive, send)
            return await _refuse(receive, send)
        scope = {
            **scope,
            "cookies": cookies,
            "session": import_module(settings.SESSION_ENGINE).SessionStore(session_key),
            "user": admission.user,
            "subscriptions": admission.subs,
            "positions": {**admission.tops, **since},
        }
        return await self.inner(scope, receive, send)


def positions_in_query(scope: dict[str, Any]) -> dict[str, Position]:
    """The client's position in each stream it follows, from the ``pos`` token of the socket's URL."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        return decode_positions((query.get("pos") or [""])[0])
    except BadPositions:
        return {}  # a mangled token: start from the top, as a new page would


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


async def _refuse(receive: Any, send: Any) -> None:
    """Close before accepting: the ASGI server answers the handshake with HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})
