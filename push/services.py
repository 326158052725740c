"""Web Push: subscriptions per user and device, who is pushed what, and one send.

A notification is pushed to a recipient's devices when their preference for its
category says so (``notifications.models.PushMode``: by default warnings and errors
only) and, unless the preference is ``always``, only while the recipient has no open
socket anywhere (``realtime.presence``): a user looking at the site gets the toast.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.templatetags.static import static
from django.utils import timezone
from django.utils.html import strip_tags
from pywebpush import WebPushException, webpush

from notifications.models import Notification, PushMode
from notifications.preferences import push_modes
from realtime.presence.services import connected_users

from . import metrics
from .models import PushSubscription
from .vapid import vapid_keys

logger = logging.getLogger(__name__)

URGENT_LEVELS = {"warning", "error"}
# Per level: how long the push service keeps a message for an offline device, and how
# urgently it delivers it (RFC 8030 §5.3: a "low" message may wait for a charger).
TTL_SECONDS = {"error": 24 * 3600, "warning": 12 * 3600, "success": 3600, "info": 3600}
URGENCY = {"error": "high", "warning": "normal", "success": "low", "info": "low"}


class BadSubscription(ValueError):
    """A subscription the platform will not post to (not https, a private address, malformed keys)."""


def check_endpoint(endpoint: str) -> None:
    """Refuse endpoints that would make the server post into its own network (push services are public)."""
    parts = urlsplit(endpoint)
    if settings.WEBPUSH["ALLOW_PRIVATE_ENDPOINTS"] and parts.scheme in ("http", "https") and parts.hostname:
        return
    if parts.scheme != "https" or not parts.hostname:
        raise BadSubscription("The endpoint must be an https URL of a push service.")
    host = parts.hostname
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise BadSubscription("The endpoint must be a public push service.")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise BadSubscription("The endpoint must be a public push service.")


def do_subscribe(
    user: AbstractBaseUser, *, endpoint: str, p256dh: str, auth: str, device: str = ""
) -> PushSubscription:
    """Store (or move to this user) a browser's subscription; the same endpoint is one row."""
    check_endpoint(endpoint)
    defaults = {"user": user, "p256dh": p256dh, "auth": auth, "device": device[:120], "failures": 0}
    try:
        with transaction.atomic():
            subscription, _ = PushSubscription.objects.update_or_create(endpoint=endpoint, defaults=defaults)
    except IntegrityError:  # the same browser subscribing twice at once: the other insert won
        subscription = PushSubscription.objects.get(endpoint=endpoint)
    return subscription


def do_unsubscribe(user: AbstractBaseUser, subscription_id: int) -> bool:
    """Forget one of the user's devices; False if it is not theirs (or gone)."""
    deleted, _ = PushSubscription.objects.filter(user=user, pk=subscription_id).delete()
    return bool(deleted)


@dataclass
class Push:
    """One message for one device."""

    subscription: PushSubscription
    payload: dict[str, Any]
    ttl: int
    urgency: str


def payload_for(notification: Notification) -> dict[str, Any]:
    """What the service worker shows: title, a plain-text body, the icon, and where a click goes."""
    body = strip_tags(notification.body_html or "").strip()
    return {
        "title": notification.title,
        "body": body[:240],
        "icon": settings.WEBPUSH["ICON"] or static("img/favicon.svg"),
        "link": notification.link or f"/t/{notification.tenant.slug}/notifications/",
        "tag": f"notification-{notification.pk}",
        "tenant": notification.tenant.slug,
        "level": notification.level,
    }


def plan(notification_ids: list[int]) -> list[Push]:
    """The messages to send for new notifications: by preference, level and whether the user is connected."""
    rows = list(Notification.objects.filter(pk__in=notification_ids).select_related("tenant"))
    by_user: dict[int, list[PushSubscription]] = {}
    for subscription in PushSubscription.objects.filter(user_id__in={row.recipient_id for row in rows}):
        by_user.setdefault(subscription.user_id, []).append(subscription)
    rows = [row for row in rows if row.recipient_id in by_user]
    modes = push_modes([(row.tenant_id, row.recipient_id, row.category) for row in rows])
    wanted = []
    for row in rows:
        mode = modes[(row.tenant_id, row.recipient_id, row.category)]
        if mode == PushMode.OFF or (mode == PushMode.URGENT and row.level not in URGENT_LEVELS):
            metrics.PUSH_SKIPPED.labels(reason="preference").inc()
        else:
            wanted.append((row, mode))
    online = connected_users({row.recipient_id for row, mode in wanted if mode != PushMode.ALWAYS})
    pushes = []
    for row, mode in wanted:
        if mode != PushMode.ALWAYS and row.recipient_id in online:
            metrics.PUSH_SKIPPED.labels(reason="connected").inc()
            continue
        payload = payload_for(row)
        for subscription in by_user[row.recipient_id]:
            pushes.append(Push(subscription, payload, TTL_SECONDS.get(row.level, 3600), URGENCY.get(row.level, "low")))
    return pushes


def send(push: Push) -> str:
    """Post one encrypted message: ``sent``, ``gone`` (the subscription was deleted) or ``retry``."""
    keys = vapid_keys()
    if keys is None:
        metrics.PUSH_FAILED.labels(reason="not_configured").inc()
        return "sent"  # nothing will ever send it: do not retry
    subscription = push.subscription
    try:
        webpush(
            {"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
            json.dumps(push.payload),
            vapid_private_key=keys.private_key,
            vapid_claims={"sub": keys.subject},
            ttl=push.ttl,
            headers={"Urgency": push.urgency},
            timeout=settings.WEBPUSH["TIMEOUT_SECONDS"],
        )
    except WebPushException as error:
        status = getattr(error.response, "status_code", None)
        if status in (404, 410):
            PushSubscription.objects.filter(pk=subscription.pk).delete()
            metrics.PUSH_GONE.inc()
            return "gone"
        if status is not None and 400 <= status < 500 and status != 429:
            logger.warning("push refused for subscription %s: HTTP %s", subscription.pk, status)
            metrics.PUSH_FAILED.labels(reason=f"http_{status}").inc()
            return "sent"  # the push service will never take this message: do not retry
        metrics.PUSH_FAILED.labels(reason=f"http_{status}" if status else "error").inc()
        PushSubscription.objects.filter(pk=subscription.pk).update(failures=subscription.failures + 1)
        return "retry"
    except Exception as error:  # noqa: BLE001 - connection refused, timeout, TLS: the service may come back
        logger.info("push to subscription %s failed, to be retried: %s", subscription.pk, type(error).__name__)
        metrics.PUSH_FAILED.labels(reason="unreachable").inc()
        return "retry"
    PushSubscription.objects.filter(pk=subscription.pk).update(last_sent_at=timezone.now(), failures=0)
    metrics.PUSH_SENT.inc()
    return "sent"
