"""``Idempotency-Key`` support for API operations that create things.

A client that retries a request (a timeout, a crash between sending and reading
the answer) sends the same ``Idempotency-Key``; the first response is replayed and
nothing is created twice. The same key with a different request body is a client
bug and answers 422. Keys are scoped to the caller (API key or user) and kept 24 h.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import Status

from .api_auth import caller_scope
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)


def _jsonable(payload: Any) -> Any:
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump(mode="json")
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Make a django-ninja operation safe to retry with an ``Idempotency-Key`` header.

    The wrapped view returns ``Status(code, payload)`` (or a plain payload for 200) with
    a JSON-serialisable payload (a dict or a ninja Schema). Responses of 5xx are not remembered, so a retry after a
    server error runs the operation again.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if not key:
            return view(request, *args, **kwargs)
        if len(key) > 255:
            return JsonResponse({"detail": f"{HEADER} must be at most 255 characters"}, status=400)
        scope = caller_scope(request)
        digest = hashlib.sha256(request.method.encode() + request.path.encode() + b"\n" + request.body).hexdigest()
        IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - RETENTION).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    scope=scope, key=key, method=request.method, path=request.path[:255], request_digest=digest
                )
        except IntegrityError:
            first = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
            if first is None:  # expired and deleted between the two queries: treat as new
                return view(request, *args, **kwargs)
            if first.request_digest != digest:
                return JsonResponse({"detail": f"This {HEADER} was already used with a different request."}, status=422)
            if first.status_code is None:
                return JsonResponse({"detail": f"A request with this {HEADER} is still being processed."}, status=409)
            return Status(first.status_code, first.response_body)
        try:
            result = view(request, *args, **kwargs)
        except Exception:
            record.delete()
            raise
        if isinstance(result, HttpResponse):
            if result.status_code >= 500:
                record.delete()
            else:
                body = (
                    json.loads(result.content or b"null")
                    if result.get("Content-Type", "").startswith("application/json")
                    else None
                )
                record.status_code, record.response_body = result.status_code, body
                record.save(update_fields=["status_code", "response_body"])
            return result
        if isinstance(result, Status):
            status, payload = result.status_code, result.value
        elif isinstance(result, tuple):
            status, payload = result
        else:
            status, payload = 200, result
        if status >= 500:
            record.delete()
            return result
        record.status_code, record.response_body = status, _jsonable(payload)
        record.save(update_fields=["status_code", "response_body"])
        return Status(status, record.response_body)

    return wrapper
