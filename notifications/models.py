"""Notifications, the per-user unread counters, and delivery preferences."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Level(models.TextChoices):
    """How a notification is coloured in the bell, the inbox and toasts."""

    INFO = "info", "Info"
    SUCCESS = "success", "Success"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class NotificationQuerySet(models.QuerySet):
    def active(self) -> NotificationQuerySet:
        """Not archived: what the inbox's "all" tab lists."""
        return self.filter(archived_at__isnull=True)

    def unread(self) -> NotificationQuerySet:
        """Unread and not archived: what the badge counts."""
        return self.filter(read_at__isnull=True, archived_at__isnull=True)

    def unseen(self) -> NotificationQuerySet:
        """Never listed in an opened bell and not archived."""
        return self.filter(seen_at__isnull=True, archived_at__isnull=True)


class Notification(models.Model):
    """One message to one member of one tenant, with its seen/read/archived states.

    Rows change state only through ``notifications.services``, which keeps
    ``NotificationCounter`` in step in the same transaction.
    """

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="notifications")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    category = models.SlugField(max_length=50)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    body_html = models.TextField(blank=True, help_text="body rendered from safe Markdown and sanitised")
    link = models.CharField(max_length=500, blank=True, help_text="a path inside the platform")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=False)
    seen_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True, help_text="set once, when a digest included it")

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The inbox pages newest first by id within (tenant, recipient), per tab.
            models.Index(
                fields=["tenant", "recipient", "-id"], name="notif_inbox", condition=Q(archived_at__isnull=True)
            ),
            models.Index(
                fields=["tenant", "recipient", "-id"],
                name="notif_inbox_unread",
                condition=Q(read_at__isnull=True, archived_at__isnull=True),
            ),
            models.Index(
                fields=["tenant", "recipient", "-id"],
                name="notif_inbox_archived",
                condition=Q(archived_at__isnull=False),
            ),
            models.Index(fields=["tenant", "recipient", "category", "-id"], name="notif_inbox_category"),
            # The email digest looks for old unread rows nobody mailed yet.
            models.Index(
                fields=["created_at"],
                name="notif_email_pending",
                condition=Q(emailed_at__isnull=True, read_at__isnull=True, archived_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} → {self.recipient_id} ({self.tenant_id})"

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class NotificationCounter(models.Model):
    """The badge's numbers for one user in one tenant, kept without COUNT(*).

    Every state change updates this row with F() expressions in the same transaction
    as the notifications it changes; ``version`` grows with each update, so a client
    can ignore counts older than the ones it shows.
    """

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    unread = models.IntegerField(default=0)
    unseen = models.IntegerField(default=0)
    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="unique_notification_counter")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.tenant_id}: {self.unread} unread, {self.unseen} unseen"


class TenantCategory(models.Model):
    """A tenant's defaults for one category, set by its admins; ``required`` locks them for users."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="notification_categories")
    slug = models.SlugField(max_length=50)
    label = models.CharField(max_length=80)
    in_app = models.BooleanField(default=True, help_text="show a toast when a notification arrives")
    email = models.BooleanField(default=False, help_text="email unread notifications after a delay")
    required = models.BooleanField(default=False, help_text="users cannot change these settings")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="unique_tenant_category")]
        ordering = ["label"]
        verbose_name_plural = "tenant categories"

    def __str__(self) -> str:
        return f"{self.label} ({self.tenant_id})"


class PushMode(models.TextChoices):
    """When a notification of a category is pushed to the user's devices (Web Push, push/)."""

    OFF = "off", "Off"
    URGENT = "urgent", "Warnings and errors"  # while no tab of the site is open
    ALL = "all", "Everything"  # while no tab of the site is open
    ALWAYS = "always", "Everything, even with the site open"


class Preference(models.Model):
    """One user's choice for one category in one tenant (absent: the tenant's default)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    category = models.SlugField(max_length=50)
    in_app = models.BooleanField(default=True)
    email = models.BooleanField(default=False)
    push = models.CharField(max_length=8, choices=PushMode.choices, default=PushMode.URGENT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user", "category"], name="unique_notification_preference")
        ]
        indexes = [models.Index(fields=["tenant", "category"], name="notif_pref_category")]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.category} in {self.tenant_id}"
