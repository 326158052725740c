"""Demo content for jobs: enough notifications in acme that an export's bar visibly moves."""

from __future__ import annotations

DEMO_EXPORT_ROWS = 30_000


def seed() -> None:
    """Give the acme tenant a few thousand notifications to export (idempotent)."""
    from django.utils import timezone

    from accounts.models import Membership, Tenant
    from notifications.models import Notification

    tenant = Tenant.objects.filter(slug="acme").first()
    if tenant is None:
        return
    existing = Notification.objects.filter(tenant=tenant, category="demo-export").count()
    missing = DEMO_EXPORT_ROWS - existing
    if missing <= 0:
        return
    members = list(Membership.objects.filter(tenant=tenant).values_list("user_id", flat=True))
    now = timezone.now()
    # Written directly (not through notify()): archived history rows, no events, no counters.
    Notification.objects.bulk_create(
        [
            Notification(
                tenant=tenant,
                recipient_id=members[i % len(members)],
                category="demo-export",
                title=f"Demo history item {existing + i + 1}",
                body="Old activity kept for the export demo.",
                created_at=now,
                read_at=now,
                seen_at=now,
                archived_at=now,
            )
            for i in range(missing)
        ],
        batch_size=2000,
    )
