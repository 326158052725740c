"""The email fallback: one digest per user per run with their old unread escalating notifications.

A notification is mailed when it is still unread (and not archived) after
``NOTIFICATIONS_EMAIL_DELAY_SECONDS``, its recipient is still a member of its
tenant, and its category escalates to email for that recipient (see
``preferences``). Each user's rows are claimed (``emailed_at``) in the same
transaction that sends their email, so a notification is never mailed twice; if
sending fails the claim rolls back and the next run tries again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Membership

from .models import Notification
from .preferences import email_allowed

logger = logging.getLogger(__name__)

# Older unread notifications are not worth an email any more (and are not rescanned).
MAX_AGE = timedelta(days=3)
# Rows looked at per run; the rest wait for the next run.
MAX_ROWS_PER_RUN = 5000


def _pending(now: datetime):
    cutoff = now - timedelta(seconds=settings.NOTIFICATIONS_EMAIL_DELAY_SECONDS)
    is_member = Membership.objects.filter(tenant_id=OuterRef("tenant_id"), user_id=OuterRef("recipient_id"))
    return Notification.objects.filter(
        emailed_at__isnull=True,
        read_at__isnull=True,
        archived_at__isnull=True,
        created_at__lte=cutoff,
        created_at__gt=cutoff - MAX_AGE,
        recipient__is_active=True,
    ).filter(Exists(is_member))


def do_send_email_digests(now: datetime | None = None) -> dict[str, int]:
    """Send each user one digest of their escalating unread notifications; returns what was sent."""
    now = now or timezone.now()
    rows = list(
        _pending(now)
        .order_by("recipient_id", "id")
        .values("id", "tenant_id", "recipient_id", "category")[:MAX_ROWS_PER_RUN]
    )
    by_user: dict[int, list[int]] = defaultdict(list)
    for row in email_allowed(rows):
        by_user[row["recipient_id"]].append(row["id"])
    users = get_user_model().objects.in_bulk(list(by_user))
    sent = {"emails": 0, "notifications": 0}
    for user_id, ids in by_user.items():
        user = users.get(user_id)
        if user is None or not user.email:
            continue
        try:
            mailed = _send_digest(user, ids, now)
        except Exception:
            logger.exception("Could not send the notification digest to user %s; will retry next run", user_id)
            continue
        if mailed:
            sent["emails"] += 1
            sent["notifications"] += mailed
    return sent


def _send_digest(user, ids: list[int], now: datetime) -> int:
    with transaction.atomic():
        claimable = Notification.objects.filter(id__in=ids, emailed_at__isnull=True, read_at__isnull=True)
        claimed = list(claimable.select_for_update().values_list("id", flat=True))
        if not claimed:
            return 0
        Notification.objects.filter(id__in=claimed).update(emailed_at=now)
        notifications = list(Notification.objects.filter(id__in=claimed).select_related("tenant").order_by("-id"))
        by_tenant: dict[str, dict] = {}
        for notification in notifications:
            group = by_tenant.setdefault(
                notification.tenant.slug,
                {
                    "tenant": notification.tenant,
                    "inbox_url": f"{settings.PUBLIC_BASE_URL}/t/{notification.tenant.slug}/notifications/",
                    "items": [],
                },
            )
            group["items"].append(
                {
                    "notification": notification,
                    "url": f"{settings.PUBLIC_BASE_URL}{notification.link}" if notification.link else "",
                }
            )
        context = {"user": user, "groups": list(by_tenant.values()), "count": len(notifications)}
        subject = f"You have {len(notifications)} unread notification{'s' if len(notifications) != 1 else ''}"
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string("notifications/email/digest.txt", context),
            to=[user.email],
        )
        message.attach_alternative(render_to_string("notifications/email/digest.html", context), "text/html")
        # Sent inside the transaction: if it raises, the claim rolls back and the next run retries.
        message.send()
    return len(claimed)
