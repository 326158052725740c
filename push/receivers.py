"""New notifications become a Web Push task when one of their recipients has a device to push to.

Registered in ``PushConfig.ready()``. The question is asked for every notification of the
last few milliseconds at once, on a thread of the process (``liveplatform.batcher``):
one indexed query per batch rather than one per request, and none on the request's own
time. A platform where nobody subscribed sends no task at all. Web Push is best effort:
a process killed within a batch's delay sends no push for that batch (the notifications
themselves are committed and in the inbox).
"""

from __future__ import annotations

import logging

from django.dispatch import receiver

from liveplatform import rawsql
from liveplatform.batcher import Batcher
from notifications.signals import notifications_created

from .models import PushSubscription

logger = logging.getLogger(__name__)

_SUBSCRIBED_SQL = f"SELECT DISTINCT user_id FROM {PushSubscription._meta.db_table} WHERE user_id IN ({{ids}})"


@receiver(notifications_created, dispatch_uid="push.notifications_created")
def push_new_notifications(sender, tenant, notifications, **kwargs) -> None:
    """Queue new notifications for the next batch's look for their recipients' devices."""
    _new_notifications.add((row.pk, row.recipient_id) for row in notifications)


def queue_pushes(notifications: list[tuple[int, int]]) -> None:
    """Queue the push task for the notifications (id, recipient) whose recipients have a subscription."""
    from .tasks import push_notifications

    recipients = sorted({recipient_id for _, recipient_id in notifications})
    subscribed = {
        user_id for (user_id,) in rawsql.fetch(_SUBSCRIBED_SQL.format(ids=rawsql.placeholders(recipients)), recipients)
    }
    ids = [pk for pk, recipient_id in notifications if recipient_id in subscribed]
    if not ids:
        return
    try:
        push_notifications.delay(ids)
    except Exception as error:  # noqa: BLE001 - the broker is down: the notifications stand, push is best effort
        logger.warning("could not queue Web Push for %d notification(s): %s", len(ids), error)


_new_notifications: Batcher[tuple[int, int]] = Batcher("push-new-notifications", queue_pushes)
