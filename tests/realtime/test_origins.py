"""The Origin rule behind a proxy and with trusted origins (realtime.origins), decided from the handshake's scope."""

from __future__ import annotations

import pytest

from realtime.origins import origin_allowed, parse_origin


def scope(host: str, origin: str | None, scheme: str = "ws", **headers: str) -> dict:
    raw = [(b"host", host.encode())] + [(name.replace("_", "-").encode(), v.encode()) for name, v in headers.items()]
    if origin is not None:
        raw.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": raw}


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("https://Live.Example.com", ("https", "live.example.com", 443)),
        ("http://127.0.0.1:8200", ("http", "127.0.0.1", 8200)),
        ("http://[::1]:8000", ("http", "::1", 8000)),
        ("null", None),
        ("file://", None),
        ("http://user:pw@live.example.com", None),
        ("http://live.example.com/path", None),
        ("http://live.example.com:99999", None),
    ],
)
def test_an_origin_is_scheme_host_and_port_with_the_default_port_filled_in(value, parsed):
    """Tests the parsing every comparison rests on."""
    assert parse_origin(value) == parsed


def test_behind_a_tls_proxy_the_page_origin_is_https(settings):
    """Tests that a socket proxied from https (X-Forwarded-Proto, as Django trusts it) wants an https page."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["live.example.com"]
    proxied = {"x_forwarded_proto": "https"}
    assert origin_allowed(scope("live.example.com", "https://live.example.com", **proxied))
    assert origin_allowed(scope("live.example.com:443", "https://live.example.com", **proxied))
    assert not origin_allowed(scope("live.example.com", "http://live.example.com", **proxied))
    assert not origin_allowed(scope("live.example.com", "https://live.example.com"))  # plain http, no proxy header
    assert origin_allowed(scope("live.example.com", "https://live.example.com", scheme="wss"))


def test_a_host_outside_allowed_hosts_is_no_origin_of_ours(settings):
    """Tests that a forged Host cannot make a foreign page's origin look like our own."""
    settings.ALLOWED_HOSTS = ["live.example.com"]
    assert not origin_allowed(scope("evil.test", "http://evil.test"))


def test_csrf_trusted_origins_are_allowed_exactly_or_by_subdomain(settings):
    """Tests the origins an operator trusts (CSRF_TRUSTED_ORIGINS), compared whole as well."""
    settings.ALLOWED_HOSTS = ["live.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.org"]
    assert origin_allowed(scope("live.example.com", "https://app.example.com"))
    assert not origin_allowed(scope("live.example.com", "http://app.example.com"))
    assert not origin_allowed(scope("live.example.com", "https://app.example.com:8443"))
    assert origin_allowed(scope("live.example.com", "https://eu.example.org"))
    assert not origin_allowed(scope("live.example.com", "https://example.org.evil.test"))


def test_no_origin_is_refused_unless_the_route_allows_it(settings):
    """Tests the difference between the browser route (cookie: Origin required) and the app route (ticket)."""
    settings.ALLOWED_HOSTS = ["live.example.com"]
    assert not origin_allowed(scope("live.example.com", None))
    assert origin_allowed(scope("live.example.com", None), allow_missing=True)


def test_with_debug_and_no_allowed_hosts_localhost_is_ours_as_for_http(settings):
    """Tests the development default Django itself applies to Host when ALLOWED_HOSTS is empty."""
    settings.DEBUG, settings.ALLOWED_HOSTS = True, []
    assert origin_allowed(scope("localhost:8000", "http://localhost:8000"))
    assert not origin_allowed(scope("localhost:8000", "http://localhost:8001"))
    settings.DEBUG = False
    assert not origin_allowed(scope("localhost:8000", "http://localhost:8000"))
