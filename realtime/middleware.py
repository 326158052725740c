"""Where a page's socket resumes from, read before the page reads its data."""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from .services import page_positions

# Paths that never render a page with a socket: the API, probes and metrics.
NO_PAGE_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/static/")


class PageCursorMiddleware:
    """Take the page's resume positions just before its view runs.

    A page shows the state its view read and resumes its socket from the positions in
    ``<body data-positions>`` (each followed stream's top). Read at render time (after
    the view), a position could already include an event published between the view's
    queries and the render: the page showed the older state and the socket skipped the
    event that changed it (a cancelled job stuck at "cancelling"). Read before the
    view, every event the page's data may lack comes after the positions and is
    replayed; one the data already has arrives again and is harmless (events carry the
    whole new state).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any) -> None:
        """Record ``request.realtime_positions`` for an authenticated page request."""
        if request.method not in ("GET", "HEAD") or request.path.startswith(NO_PAGE_PREFIXES):
            return None
        if request.user.is_authenticated:
            request.realtime_positions = positions_or_empty(request.user)
        return None


def positions_or_empty(user: Any) -> str:
    """The user's positions; empty while Redis is down (the page still renders; its socket starts at the top)."""
    try:
        return page_positions(user)
    except Exception:  # noqa: BLE001 - a page must render during an outage; its socket will resync
        return ""
