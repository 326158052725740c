"""Authentication for the HTTP API: tenant API keys (Bearer) and browser sessions.

Use ``auth=ApiKeyAuth()`` for service-to-service endpoints; on success
``request.auth`` is the ``ApiKey`` and ``request.auth.tenant`` its tenant. Endpoints
the browser also calls take ``auth=[ApiKeyAuth(), django_auth]``; then
``request.auth`` is either an ``ApiKey`` or the logged-in user.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle, SimpleRateThrottle

from liveplatform.cache import count_hit

from .api_keys import authenticate_api_key
from .models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer lpk_…``: a tenant's API key."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        api_key = authenticate_api_key(token)
        if api_key is not None:
            request.api_key = api_key
        return api_key


def caller_scope(request: HttpRequest) -> str:
    """Who is calling, as a short stable string (for idempotency and rate limits)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return f"key:{auth.pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "anonymous"


@functools.lru_cache(maxsize=8)
def _parse_rate(rate: str) -> tuple[int, int]:
    return SimpleRateThrottle.parse_rate(SimpleRateThrottle, rate)


@dataclass
class _Lease:
    """Hits of one counter window this process reserved: numbers ``next`` to ``last`` are its own."""

    id: str
    next: int = 1
    last: int = 0
    size: int = 1
    refilling: bool = False


class ApiKeyRateThrottle(BaseThrottle):
    """Requests per API key (``settings.API_KEY_RATE_LIMIT``, e.g. "600/m"); over it: 429 + Retry-After.

    Only calls authenticated by a key count: one runaway integration must not starve
    the others. A fixed window counted in the shared cache (Redis), so every web process
    shares the counter; if the cache is down the request goes through rather than the
    API going down with it.

    A busy key does not cost a round trip per request: the process reserves hits in
    blocks (``INCRBY``), 1 at first in each window, then twice the last block, at most
    1% of the limit and ``LEASE_MAX``; each request takes the next number of its
    process's block, and a number over the limit is a 429. So a key well under its
    limit is counted exactly (blocks of 1 below 200 a window), and at its limit a key
    can be refused early by at most the unused part of the other processes' blocks
    (under 1% of the limit each). Measured: the round trip was 7% of a
    ``POST /api/v1/notifications`` (docs/benchmarks.md).
    """

    LEASE_MAX = 32

    def __init__(self) -> None:
        self._local = threading.local()
        self._leases: dict[int, _Lease] = {}
        self._lock = threading.Lock()

    def allow_request(self, request: HttpRequest) -> bool:
        auth = getattr(request, "auth", None)
        rate = getattr(settings, "API_KEY_RATE_LIMIT", "600/m")
        if not isinstance(auth, ApiKey) or not rate:
            return True
        limit, period = _parse_rate(rate)
        now = time.time()
        window = int(now // period)
        key = f"throttle:api_key:{auth.pk}:{period}:{window}"
        try:
            # The lease is the window's, this key's (not another key that reused its id after a
            # rollback) and this limit's: a block reserved under another limit is not used.
            hit = self._take(auth.pk, f"{key}:{auth.digest}:{rate}", key, limit, period)
        except Exception:  # noqa: BLE001 - a cache outage must not take the API down
            logger.warning("API rate limit not checked: the cache is unavailable")
            return True
        self._local.wait = (window + 1) * period - now
        return hit <= limit

    def _take(self, key_id: int, lease_id: str, key: str, limit: int, period: int) -> int:
        """The number of this request's hit in its window: the next of this process's block.

        The round trip runs outside the lock, so a slow cache holds up only the requests
        that wait for it, as before blocks. While one request reserves the next block,
        the others reserve one hit each: no block is reserved twice, none is wasted.
        """
        with self._lock:
            lease = self._leases.get(key_id)
            if lease is None or lease.id != lease_id:
                lease = self._leases[key_id] = _Lease(lease_id)
            if lease.next <= lease.last:
                lease.next += 1
                return lease.next - 1
            refills = not lease.refilling
            size = lease.size if refills else 1
            if refills:
                lease.refilling = True
                lease.size = max(1, min(size * 2, limit // 100, self.LEASE_MAX))
        try:
            last = count_hit(key, window=period + 1, amount=size)
        except Exception:
            if refills:
                with self._lock:
                    lease.refilling = False
            raise
        if refills:
            with self._lock:
                lease.refilling = False
                lease.next, lease.last = last - size + 2, last
        return last - size + 1

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)
