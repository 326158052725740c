"""Announcements: admin broadcasts shown as banners or one-time modals, with per-user dismissal.

An announcement is *active* while ``starts_at <= now < ends_at`` and it has not been
ended early. That is what every page load and socket snapshot shows. Separately,
``state`` records which live event has been published (``scheduled`` -> ``active``
-> ``ended``); it changes in the same transaction as the publish, so each transition
reaches browsers exactly once however many tasks race for it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class AnnouncementQuerySet(models.QuerySet):
    def current(self, now=None) -> AnnouncementQuerySet:
        """Announcements inside their window and not ended early (what users see)."""
        now = now or timezone.now()
        return self.exclude(state=Announcement.State.ENDED).filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now), starts_at__lte=now
        )


class Announcement(models.Model):
    """A broadcast from a tenant's admins (to their tenant) or platform staff (to everyone)."""

    class Scope(models.TextChoices):
        TENANT = "tenant", "This tenant"
        PLATFORM = "platform", "Whole platform"

    class AudienceFilter(models.TextChoices):
        ALL = "all", "All members"
        ADMINS = "admins", "Admins only"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    class Style(models.TextChoices):
        BANNER = "banner", "Banner on every page"
        MODAL = "modal", "One-time modal"

    class State(models.TextChoices):
        """Which live event has gone out (not what users see: see ``current()``)."""

        SCHEDULED = "scheduled", "Scheduled"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.TENANT)
    # Null exactly when scope is platform (enforced by a constraint).
    tenant = models.ForeignKey(
        "accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="announcements"
    )
    audience = models.CharField(max_length=10, choices=AudienceFilter.choices, default=AudienceFilter.ALL)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Markdown: bold, italics, links, lists, code.")
    body_html = models.TextField(blank=True, editable=False)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    style = models.CharField(max_length=10, choices=Style.choices, default=Style.BANNER)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True)
    dismissable = models.BooleanField(default=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.SCHEDULED, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AnnouncementQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [
            models.Index(fields=["state", "starts_at"], name="announcement_due"),
            models.Index(fields=["tenant", "state"], name="announcement_tenant_state"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="platform", tenant__isnull=True) | Q(scope="tenant", tenant__isnull=False),
                name="announcement_scope_matches_tenant",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="announcement_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_platform(self) -> bool:
        return self.scope == self.Scope.PLATFORM

    def status(self, now=None) -> str:
        """What an admin sees in the list: scheduled, active or ended."""
        now = now or timezone.now()
        if self.state == self.State.ENDED or (self.ends_at and self.ends_at <= now):
            return "ended"
        if self.starts_at > now:
            return "scheduled"
        return "active"


class Dismissal(models.Model):
    """A user closed an announcement: it never shows to them again, on any device.

    For a non-dismissable one-time modal it means "acknowledged": the modal is not
    shown again, the announcement stays as a banner.
    """

    announcement = models.ForeignKey(Announcement, on_delete=models.CASCADE, related_name="dismissals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["announcement", "user"], name="unique_dismissal")]

    def __str__(self) -> str:
        return f"{self.user_id} dismissed {self.announcement_id}"


class AuditLogEntry(models.Model):
    """Who published, changed, ended or deleted an announcement, when, and what changed."""

    class Action(models.TextChoices):
        PUBLISHED = "published", "Published"
        SCHEDULED = "scheduled", "Scheduled"
        UPDATED = "updated", "Updated"
        ENDED = "ended", "Ended early"
        DELETED = "deleted", "Deleted"

    # Kept after the announcement is deleted; the title is copied for that reason.
    announcement = models.ForeignKey(
        Announcement, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_log"
    )
    announcement_title = models.CharField(max_length=200)
    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=40, blank=True, help_text="composer, api, api key name, admin")
    action = models.CharField(max_length=10, choices=Action.choices)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.action} {self.announcement_title!r} by {self.actor_id}"
