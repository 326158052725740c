"""Background jobs: the database row is the truth for a job's state and progress."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class JobState(models.TextChoices):
    """Where a job is in its life; the three last ones are final."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobQuerySet(models.QuerySet):
    def active(self) -> JobQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def visible_to(self, user, membership) -> JobQuerySet:
        """Jobs of the membership's tenant this user may see: all for admins, their own otherwise."""
        scoped = self.filter(tenant_id=membership.tenant_id)
        return scoped if membership.is_admin else scoped.filter(owner=user)


class Job(models.Model):
    """One run of a job kind for a tenant, started by its owner."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED)

    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    # A summary for people (counts, row errors) and, for exports, a file under MEDIA_ROOT.
    result = models.JSONField(default=dict, blank=True)
    result_file = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True, help_text="What went wrong, for the job's owner.")
    traceback = models.TextField(blank=True, help_text="For tenant and platform admins only.")

    task_id = models.CharField(max_length=64, blank=True, db_index=True)
    # When the task reached the broker; None while Redis was down at start (the reaper sends it again).
    task_sent_at = models.DateTimeField(null=True, blank=True)
    # Re-queued by the reaper after its worker died: attempt 2, 3, ...
    attempt = models.PositiveSmallIntegerField(default=1)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "owner", "-created_at"], name="job_tenant_owner"),
            models.Index(fields=["state", "heartbeat_at"], name="job_state_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("job_detail", kwargs={"tenant_slug": self.tenant.slug, "job_id": self.pk})

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def label(self) -> str:
        from .jobs import get_kind

        kind = get_kind(self.kind)
        return kind.label if kind else self.kind

    @property
    def percent(self) -> int | None:
        if self.state == JobState.SUCCEEDED:
            return 100
        if not self.progress_total:
            return None
        return max(0, min(100, int(self.progress_done * 100 // self.progress_total)))

    @property
    def elapsed(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def download_url(self) -> str:
        if self.state != JobState.SUCCEEDED or not self.result_file:
            return ""
        return reverse("job_download", kwargs={"tenant_slug": self.tenant.slug, "job_id": self.pk})
