"""Who an event is for, and which socket group carries it there.

An audience is the recipient list of an event. Choosing it is the caller's job
and a wrong choice is a security bug, so every publish names one explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import AudienceKind

PLATFORM_GROUP = "platform"


@dataclass(frozen=True)
class Audience:
    """A recipient set that maps one-to-one onto a channel-layer group."""

    kind: str
    tenant_id: int | None = None
    user_id: int | None = None

    @classmethod
    def user(cls, user_id: int) -> Audience:
        """Every socket of one user."""
        return cls(AudienceKind.USER, user_id=int(user_id))

    @classmethod
    def tenant(cls, tenant_id: int) -> Audience:
        """Every socket of every member of one tenant."""
        return cls(AudienceKind.TENANT, tenant_id=int(tenant_id))

    @classmethod
    def tenant_admins(cls, tenant_id: int) -> Audience:
        """Every socket of the admins of one tenant."""
        return cls(AudienceKind.TENANT_ADMINS, tenant_id=int(tenant_id))

    @classmethod
    def tenant_presence(cls, tenant_id: int) -> Audience:
        """The sockets of a tenant's members that asked to watch its presence (ephemeral frames only)."""
        return cls(AudienceKind.TENANT_PRESENCE, tenant_id=int(tenant_id))

    @classmethod
    def platform(cls) -> Audience:
        """Every connected socket of every tenant."""
        return cls(AudienceKind.PLATFORM)

    @property
    def group(self) -> str:
        """The channel-layer group name (ASCII letters, digits, dots; under 100 characters)."""
        if self.kind == AudienceKind.USER:
            return user_group(self.user_id)
        if self.kind == AudienceKind.TENANT:
            return tenant_group(self.tenant_id)
        if self.kind == AudienceKind.TENANT_ADMINS:
            return tenant_admins_group(self.tenant_id)
        if self.kind == AudienceKind.TENANT_PRESENCE:
            return tenant_presence_group(self.tenant_id)
        return PLATFORM_GROUP


def user_group(user_id: int) -> str:
    """Group every socket of one user joins."""
    return f"user.{user_id}"


def tenant_group(tenant_id: int) -> str:
    """Group every socket of every member of one tenant joins."""
    return f"tenant.{tenant_id}"


def tenant_admins_group(tenant_id: int) -> str:
    """Group only the sockets of a tenant's admins join."""
    return f"tenant.{tenant_id}.admins"


def tenant_presence_group(tenant_id: int) -> str:
    """Group the sockets showing a tenant's presence join (``presence.watch``); never a stream."""
    return f"tenant.{tenant_id}.presence"
