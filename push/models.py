"""A browser's Web Push subscription: where its push service accepts messages for one user's device."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PushSubscription(models.Model):
    """One device (a browser profile) of one user that asked to be notified while the site is closed.

    ``endpoint`` is the push service's URL for this browser (unique: a browser that
    subscribes again after another user signed in moves to that user); ``p256dh`` and
    ``auth`` are the browser's keys the payload is encrypted to (RFC 8291).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    device = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.device or 'a device'} of {self.user_id}"
