"""What a tenant's home page shows: what needs the user, what is happening, what happened.

Read-only queries over the feature apps' rows (imported inside the functions: those apps
import ``accounts``). The page and its live refresh (``?part=live``) both render from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from .models import Membership, Tenant

UNREAD_SHOWN = 5
ACTIVITY_SHOWN = 12


@dataclass(frozen=True)
class Activity:
    """One line of the recent-activity list: a sentence, when, and an icon name."""

    sentence: str
    at: datetime
    icon: str
    link: str = ""


def person(user: AbstractBaseUser | None, fallback: str = "Someone") -> str:
    """How a person reads in a sentence: the part of their email before the @, capitalised."""
    email = getattr(user, "email", "") or ""
    name = email.split("@")[0]
    return name[:1].upper() + name[1:] if name else fallback


def unread_notifications(tenant: Tenant, user: AbstractBaseUser) -> list[Any]:
    """The newest unread notifications of the user in the tenant, with their actors."""
    from notifications.models import Notification

    rows = Notification.objects.filter(tenant=tenant, recipient=user).active().unread()
    return list(rows.select_related("actor").order_by("-id")[:UNREAD_SHOWN])


def current_announcements(tenant: Tenant, user: AbstractBaseUser) -> list[dict[str, Any]]:
    """Announcements active now for the user and not dismissed: this tenant's and platform-wide ones."""
    from announcements.services import active_for

    return [a for a in active_for(user) if a["tenant"] in (None, tenant.slug)][:5]


def active_jobs(user: AbstractBaseUser, membership: Membership) -> list[Any]:
    """Queued and running jobs the user may see (all of the tenant's for an admin)."""
    from workers.models import Job

    return list(
        Job.objects.visible_to(user, membership).active().select_related("owner", "tenant").order_by("-id")[:10]
    )


def job_sentence(job: Any) -> str:
    """A finished job as people would say it: "Ada exported 30,011 notifications"."""
    who, result = person(job.owner), job.result or {}
    if job.state == "succeeded":
        if job.kind == "export":
            return f"{who} exported {result.get('rows', 0):,} notifications"
        if job.kind == "import_members":
            return f"{who} imported {result.get('rows', 0):,} members from a CSV file"
        if job.kind == "broadcast":
            return f"{who} notified {result.get('sent', result.get('notified', 0)):,} members"
        return f"{who}'s {job.label.lower()} finished"
    if job.state == "failed":
        return f"{who}'s {job.label.lower()} failed" + (f": {job.error}" if job.error else "")
    return f"{who} cancelled {job.label.lower()}"


def recent_activity(tenant: Tenant, user: AbstractBaseUser, membership: Membership) -> list[Activity]:
    """Finished jobs, announcements published or ended, and new members, newest first."""
    from announcements.models import Announcement, AuditLogEntry
    from workers.models import Job

    lines: list[Activity] = []
    jobs = Job.objects.visible_to(user, membership).filter(finished_at__isnull=False).select_related("owner", "tenant")
    for job in jobs.order_by("-finished_at")[:ACTIVITY_SHOWN]:
        lines.append(Activity(job_sentence(job), job.finished_at, f"job-{job.state}", job.get_absolute_url()))
    entries = AuditLogEntry.objects.filter(tenant=tenant, action__in=["published", "ended"]).select_related(
        "actor", "announcement"
    )
    if not membership.is_admin:
        entries = entries.exclude(announcement__audience=Announcement.AudienceFilter.ADMINS)
    for entry in entries.order_by("-created_at")[:ACTIVITY_SHOWN]:
        who = person(entry.actor, fallback=entry.via or "A service")
        verb = "announced" if entry.action == "published" else "ended the announcement"
        lines.append(Activity(f"{who} {verb} “{entry.announcement_title}”", entry.created_at, "announcement"))
    joined = Membership.objects.filter(tenant=tenant).select_related("user").order_by("-created_at")
    for member in joined[:ACTIVITY_SHOWN]:
        lines.append(Activity(f"{person(member.user)} joined {tenant.name}", member.created_at, "member"))
    lines.sort(key=lambda line: line.at, reverse=True)
    return lines[:ACTIVITY_SHOWN]


def home_context(tenant: Tenant, user: AbstractBaseUser, membership: Membership) -> dict[str, Any]:
    """Everything the home page's sections render."""
    return {
        "unread": unread_notifications(tenant, user),
        "announcements": current_announcements(tenant, user),
        "jobs": active_jobs(user, membership),
        "activity": recent_activity(tenant, user, membership),
    }
