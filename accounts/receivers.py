"""Signal receivers of the accounts app: each calls a service and does nothing else."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .api_keys import forget_cached_api_keys
from .models import ApiKey, Tenant


@receiver(post_save, sender=ApiKey, dispatch_uid="accounts.api_key_saved")
@receiver(post_delete, sender=ApiKey, dispatch_uid="accounts.api_key_deleted")
@receiver(post_save, sender=Tenant, dispatch_uid="accounts.tenant_saved")
@receiver(post_delete, sender=Tenant, dispatch_uid="accounts.tenant_deleted")
def api_key_or_tenant_changed(sender: Any, **kwargs: Any) -> None:
    """A revoked or deleted key, or a renamed tenant, must not be served from the key cache."""
    forget_cached_api_keys()
