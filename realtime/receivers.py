"""Signal receivers that keep open sockets in step with accounts (live revocation).

Registered in ``RealtimeConfig.ready()``. Each calls the publish module and nothing else.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Membership

from .audience import Audience
from .closing import CloseCode
from .events import send_control


@receiver(post_save, sender=Membership, dispatch_uid="realtime.membership_saved")
@receiver(post_delete, sender=Membership, dispatch_uid="realtime.membership_deleted")
def membership_changed(sender, instance: Membership, **kwargs) -> None:
    """A membership was added, changed or removed: the user's sockets re-read their groups."""
    send_control(Audience.user(instance.user_id), "resubscribe")


@receiver(user_logged_out, dispatch_uid="realtime.user_logged_out")
def session_ended(sender, request, user, **kwargs) -> None:
    """Logging out closes the sockets opened with that session (other devices stay)."""
    if user is not None and request is not None and request.session.session_key:
        send_control(
            Audience.user(user.pk), "close", session_key=request.session.session_key, code=int(CloseCode.SESSION_ENDED)
        )


@receiver(post_save, sender=get_user_model(), dispatch_uid="realtime.user_saved")
def user_saved(sender, instance, created: bool, **kwargs) -> None:
    """A deactivated user's sockets are closed at once."""
    if not created and not instance.is_active:
        send_control(Audience.user(instance.pk), "close", code=int(CloseCode.ACCOUNT_DISABLED))
