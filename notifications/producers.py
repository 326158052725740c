"""Producers inside the platform: membership changes become notifications for the admins.

Called by ``receivers.py``; each builds its message and calls ``services.notify``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from accounts.models import Membership, Tenant

from .models import Level
from .services import notify


def do_notify_member_joined(membership: Membership) -> int:
    """Tell the tenant's other admins that someone joined."""
    email = membership.user.email
    return _notify_other_admins(
        membership,
        title=f"{email} joined {membership.tenant.name}",
        body=f"**{email}** is now a {membership.get_role_display().lower()} of {membership.tenant.name}.",
        level=Level.INFO,
        data={"event": "member.joined", "user_id": membership.user_id},
    )


def do_notify_member_left(membership: Membership, *, origin: Any = None) -> int:
    """Tell the tenant's remaining admins that someone left (not when the tenant itself is deleted)."""
    if isinstance(origin, Tenant) or not Tenant.objects.filter(pk=membership.tenant_id).exists():
        return 0
    user_deleted = isinstance(origin, Model) and origin._meta.label == membership.user._meta.label
    email = membership.user.email
    return _notify_other_admins(
        membership,
        title=f"{email} left {membership.tenant.name}",
        body=f"**{email}** is no longer a member of {membership.tenant.name}.",
        level=Level.WARNING,
        data={"event": "member.left", "user_id": None if user_deleted else membership.user_id},
    )


def _notify_other_admins(membership: Membership, **content: Any) -> int:
    """A "members" notification, linking to the members page, for the tenant's admins but this member."""
    admins = Membership.objects.admins().filter(tenant_id=membership.tenant_id).exclude(user_id=membership.user_id)
    return notify(
        membership.tenant,
        list(admins.values_list("user_id", flat=True)),
        category="members",
        link=f"/t/{membership.tenant.slug}/members/",
        **content,
    )
