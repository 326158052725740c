"""The product's error pages (400, 403, 404, 500), and the switch that shows them under DEBUG too.

Django answers a missing page with its technical 404 (every URL pattern listed) and an
uncaught error with its technical 500 whenever DEBUG is on, whatever ``handler404``
says. ``make run`` runs with DEBUG on, so without help a new user met those pages,
unstyled because the CSP blocks their inline CSS. ``ProductErrorPagesMiddleware``
replaces exactly those debug pages (the technical 500 also
serves a 400 under DEBUG) with the product's; a developer who wants
Django's sets ``PRODUCT_ERROR_PAGES=0``. The traceback of a 500 is logged either way.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import loader

# Both of Django's technical pages (404 and 500) say this; nothing else we serve does.
DEBUG_PAGE_MARK = b"because you have <code>DEBUG = True</code> in"

TITLES = {
    400: ("Bad request", "The request could not be understood. Check the address or the form and try again."),
    403: ("Not allowed", "You do not have access to this page. Ask an admin of the tenant if you think you should."),
    404: ("Page not found", "There is nothing at this address, or it belongs to a tenant you are not a member of."),
    500: ("Something went wrong", "The error was logged and the team can see it. Try again in a moment."),
}


def render_error(request: HttpRequest | None, status: int) -> HttpResponse:
    """The product's page for ``status``: the normal layout, except 500 which needs no database."""
    title, message = TITLES[status]
    context = {"status": status, "title": title, "message": message}
    if status == 500:
        # The error may be the database itself: render without the context processors.
        html = loader.render_to_string("errors/500.html", context)
    else:
        html = loader.render_to_string("errors/error.html", context, request=request)
    return HttpResponse(html, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400``: a malformed request."""
    return render_error(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler403``: signed in but not allowed."""
    return render_error(request, 403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a form posted from a stale or foreign page is a 403 like any other."""
    return render_error(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler404``: no such page, or another tenant's (which answers 404, never 403)."""
    return render_error(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: an uncaught error (already logged by Django)."""
    return render_error(request, 500)


class ProductErrorPagesMiddleware:
    """Under DEBUG, show the product's 400, 404 and 500 instead of Django's technical pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and settings.PRODUCT_ERROR_PAGES
            and response.status_code in (400, 404, 500)
            and response.get("Content-Type", "").startswith("text/html")
            and not response.streaming
            and DEBUG_PAGE_MARK in response.content
        ):
            page = render_error(request, response.status_code)
            if settings.CONTENT_SECURITY_POLICY:
                page.headers["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
            return page
        return response
