"""The service worker, served from the site's root so that its scope is the whole site."""

from __future__ import annotations

import functools

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@functools.cache
def _service_worker_source() -> bytes:
    with open(finders.find("js/sw.js"), "rb") as file:
        return file.read()


@require_GET
@never_cache
def service_worker(request: HttpRequest) -> HttpResponse:
    """``/sw.js``: shows pushed notifications and opens their link on a click (static/js/sw.js)."""
    response = HttpResponse(_service_worker_source(), content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    return response
