"""Durable events (the replay log) and single-use connection tickets."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AudienceKind(models.TextChoices):
    """Who may receive an event; mirrors the socket groups."""

    USER = "user", "One user"
    TENANT = "tenant", "Every member of a tenant"
    TENANT_ADMINS = "tenant_admins", "The admins of a tenant"
    PLATFORM = "platform", "Everyone"


class Event(models.Model):
    """A durable event: stored so a client that was offline can replay it.

    The primary key is the cursor. Rows are written and sent under the publish lock
    (see ``realtime.events``), so cursor order is commit order and send order.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    audience = models.CharField(max_length=16, choices=AudienceKind.choices)
    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            # user and audience both: with (user, id) alone SQLite chose the audience
            # index and walked every user's events to find one user's newest.
            models.Index(fields=["user", "audience", "id"], name="event_user_audience_cursor"),
            models.Index(fields=["tenant", "audience", "id"], name="event_tenant_cursor"),
            models.Index(fields=["audience", "id"], name="event_audience_cursor"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.type} → {self.audience}"


class RetentionMark(models.Model):
    """Singleton: every event with a cursor at or below ``pruned_through`` is gone.

    A client resuming from an older cursor may have missed pruned events, so it is
    told to resync instead of replaying an incomplete history.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    pruned_through = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"events pruned through #{self.pruned_through}"


class SendMark(models.Model):
    """Singleton: every durable event with a cursor at or below ``sent_through`` was handed to the channel layer.

    A publisher that dies between its commit and its send (a worker killed with -9)
    leaves stored events nobody sent. The next publisher, under the same lock, sends
    them before its own, so sockets still receive durable events in cursor order.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sent_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"events sent through #{self.sent_through}"


class ConnectionTicket(models.Model):
    """A short-lived, single-use credential for a non-browser client's socket.

    Only the SHA-256 of the ticket is stored; the ticket itself is shown once.
    """

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ticket for user {self.user_id} (expires {self.expires_at:%Y-%m-%d %H:%M})"
