"""Demo announcements: one running now, and a history of ended ones with their audit log.

Written directly (not through the services): seeding runs before Redis and Celery
are up, and past announcements must not be scheduled or broadcast again.
"""

from __future__ import annotations

from datetime import timedelta


def seed() -> None:
    """Create the demo announcements once (found again by title)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import Tenant
    from liveplatform.rendering import render_markdown

    from .models import Announcement, AuditLogEntry

    acme = Tenant.objects.filter(slug="acme").first()
    admin = get_user_model().objects.filter(email="admin@acme.test").first()
    if acme is None or admin is None:
        return
    now = timezone.now()
    history = [
        # title, body, severity, started days ago, ended days ago (None: still running)
        ("Maintenance on Saturday 22:00", "The platform is read-only for about **10 minutes**.", "warning", 9, 8),
        ("New: export your notifications", "Admins find it under **Jobs → Export notifications**.", "info", 5, 2),
        ("Quarterly all-hands on Friday", "Join at **15:00** in the main room or on the usual call.", "info", 0, None),
    ]
    for title, body, severity, started, ended in history:
        if Announcement.objects.filter(tenant=acme, title=title).exists():
            continue
        starts_at = now - timedelta(days=started, hours=2)
        ended_at = now - timedelta(days=ended) if ended is not None else None
        announcement = Announcement.objects.create(
            tenant=acme,
            title=title,
            body=body,
            body_html=render_markdown(body),
            severity=severity,
            starts_at=starts_at,
            author=admin,
            state=Announcement.State.ENDED if ended_at else Announcement.State.ACTIVE,
            activated_at=starts_at,
            ended_at=ended_at,
        )
        entries = [(AuditLogEntry.Action.PUBLISHED, starts_at)]
        if ended_at:
            entries.append((AuditLogEntry.Action.ENDED, ended_at))
        for action, at in entries:
            entry = AuditLogEntry.objects.create(
                announcement=announcement,
                announcement_title=title,
                tenant=acme,
                actor=admin,
                via="composer",
                action=action,
            )
            AuditLogEntry.objects.filter(pk=entry.pk).update(created_at=at)
