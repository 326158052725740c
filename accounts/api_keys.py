"""Creating, checking and revoking tenant API keys."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, Tenant

KEY_PREFIX = "lpk_"
# Keys remembered at most; past it the cache starts again (only keys that exist are kept).
_CACHE_MAX_KEYS = 1000


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class _RecentKeys:
    """Active keys found in the last ``API_KEY_CACHE_SECONDS``, by digest, in this process.

    A busy integration calls many times a second; each call looked its key up again.
    Here a key found active is trusted for a few seconds without a query. ``forget``
    (on every change of a key or tenant in this process, ``accounts.receivers``) drops
    them all, so a revocation holds at once where it was made; another process goes on
    accepting the key for at most ``API_KEY_CACHE_SECONDS``. Unknown keys are never
    remembered, so guessing cannot fill the cache.
    """

    def __init__(self) -> None:
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()
        # Bumped by forget(): a lookup that began before a revocation must not store its answer.
        self.generation = 0

    def get(self, digest: str) -> ApiKey | None:
        entry = self._keys.get(digest)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, api_key: ApiKey, generation: int) -> None:
        ttl = settings.API_KEY_CACHE_SECONDS
        with self._lock:
            if ttl <= 0 or generation != self.generation:
                return
            if len(self._keys) >= _CACHE_MAX_KEYS:
                self._keys.clear()
            self._keys[digest] = (time.monotonic() + ttl, api_key)

    def forget(self) -> None:
        with self._lock:
            self.generation += 1
            self._keys.clear()


_recent = _RecentKeys()


def do_create_api_key(tenant: Tenant, name: str, *, created_by: AbstractBaseUser | None = None) -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; returns the row and the raw key, which is never shown again."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name.strip()[:80], prefix=raw_key[:12], digest=_digest(raw_key), created_by=created_by
    )
    return api_key, raw_key


def do_revoke_api_key(api_key: ApiKey) -> None:
    """Revoke a key: refused from now on here, and within ``API_KEY_CACHE_SECONDS`` by every web process."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def forget_cached_api_keys() -> None:
    """Make this process check every key against the database again (a key or tenant changed)."""
    _recent.forget()
    # Again once the change commits: a lookup in between still read the old row.
    transaction.on_commit(_recent.forget)


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """Return the active key matching ``raw_key`` (and note its use), or None.

    The returned key (and its tenant) may be shared with concurrent requests: read it,
    do not change it.
    """
    if not raw_key or not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 100:
        return None
    digest = _digest(raw_key)
    api_key = _recent.get(digest)
    if api_key is None:
        generation = _recent.generation
        found = list(
            ApiKey.objects.select_related("tenant").filter(digest=digest, revoked_at__isnull=True).order_by()[:1]
        )
        if not found:
            return None
        api_key = found[0]
        _recent.put(digest, api_key, generation)
    now = timezone.now()
    # Write at most once a minute: a busy key must not turn every request into an UPDATE.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
