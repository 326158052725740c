"""Celery tasks of Web Push: plan the messages for new notifications, send them, retry what failed."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services
from .models import PushSubscription


@shared_task(name="push.tasks.push_notifications", ignore_result=True)
def push_notifications(notification_ids: list[int]) -> int:
    """Push new notifications to their recipients' devices; a failed send is retried on its own. Returns sends."""
    sent = 0
    for push in services.plan(notification_ids):
        result = services.send(push)
        if result == "retry":
            deliver_push.apply_async(
                (push.subscription.pk, push.payload, push.ttl, push.urgency),
                countdown=settings.WEBPUSH["RETRY_BASE_SECONDS"],
            )
        sent += result == "sent"
    return sent


@shared_task(name="push.tasks.deliver_push", bind=True, ignore_result=True, max_retries=5)
def deliver_push(self, subscription_id: int, payload: dict, ttl: int, urgency: str) -> str:
    """Send one message again, with exponential backoff while the push service fails (5 tries)."""
    subscription = PushSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        return "gone"
    result = services.send(services.Push(subscription, payload, ttl, urgency))
    if result == "retry":
        raise self.retry(countdown=settings.WEBPUSH["RETRY_BASE_SECONDS"] * 2 ** (self.request.retries + 1))
    return result
