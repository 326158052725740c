"""Creating, checking and revoking tenant API keys."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from .models import ApiKey, Tenant

KEY_PREFIX = "lpk_"


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def do_create_api_key(tenant: Tenant, name: str, *, created_by: AbstractBaseUser | None = None) -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; returns the row and the raw key, which is never shown again."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name.strip()[:80], prefix=raw_key[:12], digest=_digest(raw_key), created_by=created_by
    )
    return api_key, raw_key


def do_revoke_api_key(api_key: ApiKey) -> None:
    """Revoke a key: requests with it are refused from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


def authenticate_api_key(raw_key: str) -> ApiKey | None:
    """Return the active key matching ``raw_key`` (and note its use), or None."""
    if not raw_key or not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 100:
        return None
    api_key = ApiKey.objects.select_related("tenant").filter(digest=_digest(raw_key), revoked_at__isnull=True).first()
    if api_key is None:
        return None
    now = timezone.now()
    # Write at most once a minute: a busy key must not turn every request into an UPDATE.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
