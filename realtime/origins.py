"""Which pages may open a socket: an Origin equal to the platform's own, in scheme, host and port.

A page on another site must not ride the user's session cookie (cross-site WebSocket
hijacking), and a host name alone does not make a site: ``http://localhost:8200``,
``https://127.0.0.1:8200`` and ``http://127.0.0.1:8201`` are three other origins than
``http://127.0.0.1:8200``, and another program on the same machine may serve any of
them. Channels' ``AllowedHostsOriginValidator`` compares the host with
``ALLOWED_HOSTS`` only; this check compares the whole origin, as Django's CSRF check
does for forms:

* the socket's own origin: the scheme it was opened with (``wss`` behind a TLS proxy
  that says so in ``SECURE_PROXY_SSL_HEADER``, as Django decides ``is_secure()``) and
  its ``Host`` header, which must itself be one of ``ALLOWED_HOSTS``;
* or one of ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` for subdomains), the
  origins trusted to make authenticated writes already.

A refused handshake is answered HTTP 403 before anything else runs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from . import metrics

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` as (scheme, host, port) with the default port filled in; None if malformed."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def _is_secure(scope: dict[str, Any]) -> bool:
    """Whether the browser reached us over TLS, decided as ``HttpRequest.is_secure`` decides it."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        value = _header(scope, name.removeprefix("HTTP_").replace("_", "-").lower().encode())
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") in ("wss", "https")


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin a page of this platform has when it opens this socket; None if the Host is not ours."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _ = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:  # as HttpRequest.get_host decides it
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return parse_origin(f"{'https' if _is_secure(scope) else 'http'}://{host}")


def _trusted(origin: Origin) -> bool:
    scheme, host, port = origin
    for pattern in settings.CSRF_TRUSTED_ORIGINS:
        if "://*." in pattern:
            trusted = parse_origin(pattern.replace("://*.", "://", 1))
            if trusted and trusted[0] == scheme and trusted[2] == port and host.endswith("." + trusted[1]):
                return True
        elif parse_origin(pattern) == origin:
            return True
    return False


def origin_allowed(scope: dict[str, Any], *, allow_missing: bool = False) -> bool:
    """Whether the handshake's Origin header names the platform itself (or a trusted origin)."""
    value = _header(scope, b"origin")
    if value is None:
        return allow_missing
    origin = parse_origin(value)
    if origin is None:  # "null" (sandboxed frames, file://), garbage
        return False
    return origin == own_origin(scope) or _trusted(origin)


class SameOriginOnly:
    """ASGI middleware: refuse (HTTP 403) a socket whose Origin is not the platform's own.

    ``allow_missing``: let clients that send no Origin in (apps and services on
    ``/ws/app/``, which authenticate with a ticket, not a cookie).
    """

    def __init__(self, application: Any, *, allow_missing: bool = False) -> None:
        self.application = application
        self.allow_missing = allow_missing

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if origin_allowed(scope, allow_missing=self.allow_missing):
            return await self.application(scope, receive, send)
        metrics.REFUSED.labels(reason="origin").inc()
        # Close before accepting: the server answers the handshake with HTTP 403. No consumer
        # is started (Channels' WebsocketDenier would first ask the channel layer for a name).
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close"})
