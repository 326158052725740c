"""The platform's HTTP API, /api/v1, with its OpenAPI document.

django-ninja gives typed request and response schemas and generates the OpenAPI
document from them, so the document cannot drift from the code. Each app adds
its router here.
"""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import ValidationError

from accounts.api_auth import ApiKeyRateThrottle
from announcements.api import router as announcements_router
from notifications.api import router as notifications_router
from realtime.api import router as realtime_router
from workers.api import router as workers_router

api = NinjaAPI(
    title="Live Platform API",
    version="1",
    urls_namespace="api-v1",
    docs_url="/docs",
    # Per API key (settings.API_KEY_RATE_LIMIT): 429 with Retry-After over the limit.
    throttle=[ApiKeyRateThrottle()],
)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """Invalid input is 400 with messages per field (422 stays for a reused Idempotency-Key)."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        # loc is ("body", "payload", "title") or ("query", "limit"): keep the field's own path.
        loc = [str(part) for part in error.get("loc", ())]
        field = ".".join(loc[2:] if loc[:1] == ["body"] else loc[1:]) or "__all__"
        errors.setdefault(field, []).append(str(error.get("msg", "Invalid value")))
    return api.create_response(request, {"detail": "Invalid request", "errors": errors}, status=400)


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The database did not answer (restart, failover): 503, safe to retry with the same Idempotency-Key."""
    logging.getLogger(__name__).warning("API request failed, database unavailable: %s", exc)
    response = api.create_response(
        request,
        {"detail": "The database is unavailable for a moment; nothing was saved. Retry shortly."},
        status=503,
    )
    response["Retry-After"] = "5"
    return response


api.add_router("/realtime", realtime_router)
api.add_router("/notifications", notifications_router)
api.add_router("/announcements", announcements_router)
api.add_router("/jobs", workers_router)
