"""The outbox of durable events on their way to a stream, and single-use connection tickets."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AudienceKind(models.TextChoices):
    """Who may receive an event; mirrors the socket groups."""

    USER = "user", "One user"
    TENANT = "tenant", "Every member of a tenant"
    TENANT_ADMINS = "tenant_admins", "The admins of a tenant"
    PLATFORM = "platform", "Everyone"
    TENANT_PRESENCE = "tenant_presence", "The sockets showing who of a tenant is online"


class OutboxEvent(models.Model):
    """A durable event written in its producer's transaction, until it is in its stream.

    ``realtime.events.publish`` inside a transaction writes this row in that
    transaction and publishes on commit, then deletes the row. A producer killed
    between its commit and its publish (a worker taken down with -9) leaves the row,
    and the relay (``realtime.outbox.relay``, every few seconds from beat) publishes it
    under the same ``idempotency_key``, so it reaches its stream once. Rows are also
    written when Redis refuses a publish, and relayed once it is back. The history
    itself lives in the streams (``realtime.streams``); notifications, announcements
    and jobs are records in their own tables.
    """

    id = models.BigAutoField(primary_key=True)
    stream = models.CharField(max_length=100)
    event_type = models.CharField(max_length=64)
    frame_rest = models.TextField()
    extra = models.CharField(max_length=32, blank=True, default="")
    idempotency_key = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"outbox #{self.id} {self.event_type} → {self.stream}"


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
