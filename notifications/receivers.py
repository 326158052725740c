"""Signal receivers that turn membership changes into notifications for the tenant's admins.

Registered in ``NotificationsConfig.ready()``. Each calls one service (``producers``) and nothing else.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Membership

from . import producers


@receiver(post_save, sender=Membership, dispatch_uid="notifications.member_joined")
def member_joined(sender, instance: Membership, created: bool, raw: bool = False, **kwargs) -> None:
    """A new member: the tenant's admins are told (not on role changes, not for fixtures)."""
    if created and not raw:
        producers.do_notify_member_joined(instance)


@receiver(post_delete, sender=Membership, dispatch_uid="notifications.member_left")
def member_left(sender, instance: Membership, origin=None, **kwargs) -> None:
    """A member left or was removed: the tenant's remaining admins are told."""
    producers.do_notify_member_left(instance, origin=origin)
