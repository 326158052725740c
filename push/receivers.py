"""New notifications become a Web Push task when one of their recipients has a device to push to.

Registered in ``PushConfig.ready()``. The check is one indexed query, so a platform
where nobody subscribed sends no task at all.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver

from notifications.signals import notifications_created

from .models import PushSubscription

logger = logging.getLogger(__name__)


@receiver(notifications_created, dispatch_uid="push.notifications_created")
def push_new_notifications(sender, tenant, notifications, **kwargs) -> None:
    """Queue the push task for notifications whose recipients have a subscription."""
    from .tasks import push_notifications

    recipients = {row.recipient_id for row in notifications}
    subscribed = set(PushSubscription.objects.filter(user_id__in=recipients).values_list("user_id", flat=True))
    ids = [row.pk for row in notifications if row.recipient_id in subscribed]
    if not ids:
        return
    try:
        push_notifications.delay(ids)
    except Exception as error:  # noqa: BLE001 - the broker is down: the notifications stand, push is best effort
        logger.warning("could not queue Web Push for %d notification(s): %s", len(ids), error)
