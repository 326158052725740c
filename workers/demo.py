"""Demo content for jobs: a tenant history large enough that an export's bar visibly moves,
and a few finished jobs (succeeded, failed, cancelled) so the jobs page has a past."""

from __future__ import annotations

from datetime import timedelta

DEMO_EXPORT_ROWS = 30_000
HISTORY_MARK = "demo-history"  # in data: tells these rows apart from the bell's demo notifications
# (category, title, body): what a team's archived notifications look like.
HISTORY = [
    ("comments", "Bob commented on “Q{n} roadmap”", "Can we move the billing export to next month?"),
    ("jobs", "Export #{n} finished", "Exported the tenant's notifications to CSV."),
    ("general", "Deploy {n} finished", "The new version is live."),
    ("comments", "Alice replied in “Incident {n} review”", "Added the timeline and the follow-ups."),
    ("members", "A member joined Acme Corp", "Say hello in the team channel."),
    ("announcements", "Maintenance window {n}", "The platform was read-only for ten minutes."),
    ("general", "Weekly digest #{n}", "Twelve notifications you may have missed."),
    ("jobs", "Import #{n} finished", "Members were added from a CSV file."),
]


def seed() -> None:
    """Give acme a long archived history and a few finished jobs (idempotent)."""
    from django.utils import timezone

    from accounts.models import Membership, Tenant
    from notifications.models import Notification

    tenant = Tenant.objects.filter(slug="acme").first()
    if tenant is None:
        return
    # Earlier seeds wrote "Demo history item N" rows in a category of their own.
    Notification.objects.filter(tenant=tenant, category="demo-export").delete()
    seed_jobs(tenant)
    existing = Notification.objects.filter(tenant=tenant, data__demo=HISTORY_MARK).count()
    missing = DEMO_EXPORT_ROWS - existing
    if missing <= 0:
        return
    members = list(Membership.objects.filter(tenant=tenant).values_list("user_id", flat=True))
    now = timezone.now()
    rows = []
    for i in range(existing, existing + missing):
        category, title, body = HISTORY[i % len(HISTORY)]
        # Spread over the last 90 days, oldest first.
        when = now - timedelta(days=21, minutes=(DEMO_EXPORT_ROWS - i) * 4)
        rows.append(
            Notification(
                tenant=tenant,
                recipient_id=members[i % len(members)],
                category=category,
                title=title.format(n=i // len(HISTORY) + 1),
                body=body,
                body_html=f"<p>{body}</p>",
                data={"demo": HISTORY_MARK},
                created_at=when,
                read_at=when,
                seen_at=when,
                archived_at=when,
            )
        )
    # Written directly (not through notify()): archived history rows, no events, no counters.
    Notification.objects.bulk_create(rows, batch_size=2000)


def seed_jobs(tenant) -> None:
    """Three finished jobs of the past weeks: an export, a failed import, a cancelled broadcast."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from .models import Job, JobState

    if Job.objects.filter(tenant=tenant, params__demo=True).exists():
        return
    users = {u.email: u for u in get_user_model().objects.filter(email__in=["admin@acme.test", "alice@acme.test"])}
    if len(users) < 2:
        return
    now = timezone.now()
    for owner, kind, state, days, result, error, done, total in [
        ("alice@acme.test", "export", JobState.SUCCEEDED, 14, {"rows": 2418}, "", 2418, 2418),
        ("admin@acme.test", "import_members", JobState.FAILED, 3, {}, "Row 14: not an email address.", 13, 40),
        ("admin@acme.test", "broadcast", JobState.CANCELLED, 1, {}, "", 120, 600),
    ]:
        started = now - timedelta(days=days, hours=3)
        job = Job.objects.create(
            tenant=tenant,
            owner=users[owner],
            kind=kind,
            params={"demo": True},
            state=state,
            progress_done=done,
            progress_total=total,
            started_at=started,
            finished_at=started + timedelta(seconds=12),
            result=result,
            error=error,
        )
        Job.objects.filter(pk=job.pk).update(created_at=started)  # auto_now_add ignores the value given
