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
from push.api import router as push_router
from realtime.api import router as realtime_router
from realtime.presence.api import router as presence_router
from workers.api import router as workers_router

DESCRIPTION = """
The HTTP API of the Live Platform: send notifications to the members of a tenant,
publish announcements, read and mark a user's own notifications, follow background
jobs, and get a ticket for a real-time socket. What the API changes reaches open
browsers at once over the platform's WebSocket (`/ws/`, see docs/protocol.md).

## Authentication

* **Services** send `Authorization: Bearer lpk_…`, an API key a tenant admin creates
  on the tenant's API keys page. A key acts for its own tenant only.
* **The browser** (the bell, the inbox, the jobs page) uses the Django session cookie
  of a logged-in user. Unsafe methods (POST, PATCH, DELETE) then also need the CSRF
  token: the `csrftoken` cookie's value in an `X-CSRFToken` header. The tenant is the
  `tenant` query parameter (its slug); a tenant the user is not a member of answers 404.

## Errors

Every error is JSON: `{"detail": "…", "errors": {"field": ["…"]}}`, where `errors`
(messages per field) comes with 400 only. Each operation lists the codes it can give:

| code | meaning |
|---|---|
| 400 | an invalid path, query or body (see `errors`), or recipients outside the key's tenant |
| 401 | no valid API key or session |
| 403 | not allowed (a member where an admin is needed; a key outside its tenant), or no CSRF token |
| 404 | no such object, or one of another tenant (the same answer: the API does not say which) |
| 409 | a request with the same `Idempotency-Key` is still running; a job that cannot be cancelled or retried now |
| 422 | an `Idempotency-Key` reused with a different request |
| 429 | over the API key's rate (`API_KEY_RATE_LIMIT`, 600 a minute by default): wait `Retry-After` seconds |
| 503 | the database is unavailable for a moment; nothing was saved: retry after `Retry-After` seconds |

## Retrying safely

`POST /notifications` and `POST /announcements` take an `Idempotency-Key` header: a retry
with the same key and body gets the first answer again for 24 hours, and nothing is
sent twice.
"""

api = NinjaAPI(
    title="Live Platform API",
    version="1",
    description=DESCRIPTION.strip(),
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
api.add_router("/presence", presence_router)
api.add_router("/push", push_router)
api.add_router("/notifications", notifications_router)
api.add_router("/announcements", announcements_router)
api.add_router("/jobs", workers_router)
