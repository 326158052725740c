"""The functions that create notifications and change their state: the one way to do either.

Every change updates the recipient's ``NotificationCounter`` in the same transaction
(F() expressions, never COUNT(*)) and, once it commits, tells every socket of that
user the new authoritative counts through the core's publish path:

=======================  ===============================================  =======================
event                    data                                             sent by
=======================  ===============================================  =======================
notification.created     notification, counts, toast                      ``notify``
notification.read        ids, counts                                      ``do_mark_read``
notification.unread      ids, counts                                      ``do_mark_unread``
notification.seen        ids, counts                                      ``do_mark_seen``
notification.archived    ids, counts                                      ``do_archive``
notification.unarchived  ids, counts                                      ``do_unarchive``
notification.counts      counts, all_read, up_to                          ``do_mark_all_read``
=======================  ===============================================  =======================

Each event goes to ``Audience.user(recipient)`` with the notification's tenant, so a
user's other tenants see it only as that tenant's counts (never another user).
``counts`` is ``{"unread", "unseen", "version"}``; ``version`` grows with every
change so a client keeps the newest counts whatever order frames arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from accounts.models import Tenant
from realtime.audience import Audience
from realtime.events import publish

from . import creating
from .content import (  # noqa: F401 - the services are where callers find them
    BODY_MAX,
    CATEGORY_RE,
    CHUNK,
    LINK_MAX,
    TITLE_MAX,
    counts_data,
    is_internal_link,
    notification_data,
    validate_content,
)
from .creating import ALL_MEMBERS, NotMembers, _members_among, chunks  # noqa: F401
from .models import Notification, NotificationCounter


def counts_for(tenant: Tenant, user: AbstractBaseUser) -> dict[str, int]:
    """The current counts of one user in one tenant (one indexed row, no COUNT)."""
    return counts_data(
        NotificationCounter.objects.filter(tenant=tenant, user_id=user.pk).values("unread", "unseen", "version").first()
    )


# ------------------------------------------------------------------------------
# Creating notifications
# ------------------------------------------------------------------------------
def notify(
    tenant: Tenant,
    recipients: Any,
    *,
    category: str,
    title: str,
    body: str = "",
    level: str = "info",
    link: str = "",
    data: dict | None = None,
    actor: AbstractBaseUser | None = None,
    role: str | None = None,
    refuse_non_members: bool = False,
) -> int:
    """Notify members of ``tenant``: the one way any producer creates notifications.

    ``recipients`` is a user, an iterable of users or user ids, or ``ALL_MEMBERS``
    (``role="admin"`` narrows either to the tenant's admins). Users who are not
    members of ``tenant`` are dropped: a notification never crosses tenants; with
    ``refuse_non_members`` nothing is created and ``NotMembers`` names them. Rows are
    written with ``bulk_create``, counters with one upsert per chunk, and once the
    transaction commits one ``notification.created`` per recipient goes out in a
    single ``publish_many``. ``body`` is safe Markdown, rendered and sanitised here.
    Overlong titles and bodies are clipped. Returns how many notifications were
    created. Raises ``ValueError`` for an invalid category, level or link, or a blank
    title (the API validates first and answers 400).
    """
    prepared = creating.prepare(
        tenant,
        recipients,
        category=category,
        title=title,
        body=body,
        level=level,
        link=link,
        data=data,
        actor=actor,
        role=role,
        refuse_non_members=refuse_non_members,
    )
    return creating.write([prepared])[0] if prepared is not None else 0


# ------------------------------------------------------------------------------
# Changing state: each locks the user's counter row first, so changes of one user
# in one tenant are serialised and the counts each event carries are exact.
# ------------------------------------------------------------------------------
def _lock_counter(tenant: Tenant, user: AbstractBaseUser) -> None:
    locked = NotificationCounter.objects.select_for_update().filter(tenant=tenant, user_id=user.pk)
    if list(locked.values_list("pk", flat=True)):
        return
    # Rows made outside notify() (fixtures, the admin): count once, then keep in step.
    mine = Notification.objects.filter(tenant=tenant, recipient_id=user.pk)
    NotificationCounter.objects.get_or_create(
        tenant=tenant,
        user_id=user.pk,
        defaults={"unread": mine.unread().count(), "unseen": mine.unseen().count()},
    )
    list(locked.values_list("pk", flat=True))


def _apply(tenant: Tenant, user: AbstractBaseUser, *, unread: int = 0, unseen: int = 0) -> dict[str, int]:
    counters = NotificationCounter.objects.filter(tenant=tenant, user_id=user.pk)
    counters.update(unread=F("unread") + unread, unseen=F("unseen") + unseen, version=F("version") + 1)
    return counts_data(counters.values("unread", "unseen", "version").get())


def _mine(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int]):
    return Notification.objects.filter(tenant=tenant, recipient_id=user.pk, id__in=list(ids))


def _announce(event_type: str, tenant: Tenant, user: AbstractBaseUser, data: dict[str, Any]) -> None:
    publish(event_type, data, audience=Audience.user(user.pk), tenant=tenant)


def do_mark_read(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int]) -> dict[str, int]:
    """Mark the user's notifications read (and so seen); returns the new counts."""
    now = timezone.now()
    with transaction.atomic():
        _lock_counter(tenant, user)
        targets = _mine(tenant, user, ids).unread()
        changed = list(targets.values_list("id", flat=True))
        if not changed:
            return counts_for(tenant, user)
        became_seen = targets.filter(seen_at__isnull=True).update(seen_at=now)
        Notification.objects.filter(id__in=changed).update(read_at=now)
        counts = _apply(tenant, user, unread=-len(changed), unseen=-became_seen)
        _announce("notification.read", tenant, user, {"ids": changed, "counts": counts})
    return counts


def do_mark_unread(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int]) -> dict[str, int]:
    """Mark read notifications unread again (they stay seen); returns the new counts."""
    with transaction.atomic():
        _lock_counter(tenant, user)
        targets = _mine(tenant, user, ids).filter(read_at__isnull=False, archived_at__isnull=True)
        changed = list(targets.values_list("id", flat=True))
        if not changed:
            return counts_for(tenant, user)
        Notification.objects.filter(id__in=changed).update(read_at=None)
        counts = _apply(tenant, user, unread=len(changed))
        _announce("notification.unread", tenant, user, {"ids": changed, "counts": counts})
    return counts


def do_mark_seen(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int]) -> dict[str, int]:
    """The bell was opened while these were listed: they are seen (still unread)."""
    with transaction.atomic():
        _lock_counter(tenant, user)
        targets = _mine(tenant, user, ids).unseen()
        changed = list(targets.values_list("id", flat=True))
        if not changed:
            return counts_for(tenant, user)
        Notification.objects.filter(id__in=changed).update(seen_at=timezone.now())
        counts = _apply(tenant, user, unseen=-len(changed))
        _announce("notification.seen", tenant, user, {"ids": changed, "counts": counts})
    return counts


def do_archive(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int]) -> dict[str, int]:
    """Archive notifications: they leave the unread and unseen counts and the main inbox."""
    return _set_archived(tenant, user, ids, archived=True)


def do_unarchive(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int]) -> dict[str, int]:
    """Bring archived notifications back to the inbox in the state they had."""
    return _set_archived(tenant, user, ids, archived=False)


def _set_archived(tenant: Tenant, user: AbstractBaseUser, ids: Iterable[int], *, archived: bool) -> dict[str, int]:
    """Move the user's notifications in or out of the archive, with their unread and unseen counts."""
    with transaction.atomic():
        _lock_counter(tenant, user)
        targets = _mine(tenant, user, ids).filter(archived_at__isnull=archived)
        rows = list(targets.values_list("id", "read_at", "seen_at"))
        if not rows:
            return counts_for(tenant, user)
        changed = [row[0] for row in rows]
        Notification.objects.filter(id__in=changed).update(archived_at=timezone.now() if archived else None)
        sign = -1 if archived else 1
        counts = _apply(
            tenant,
            user,
            unread=sign * sum(1 for row in rows if row[1] is None),
            unseen=sign * sum(1 for row in rows if row[2] is None),
        )
        event = "notification.archived" if archived else "notification.unarchived"
        _announce(event, tenant, user, {"ids": changed, "counts": counts})
    return counts


def do_mark_all_read(tenant: Tenant, user: AbstractBaseUser) -> dict[str, int]:
    """Mark every unread notification of the user in this tenant read (two UPDATEs, no per-row work)."""
    now = timezone.now()
    with transaction.atomic():
        _lock_counter(tenant, user)
        targets = Notification.objects.filter(tenant=tenant, recipient_id=user.pk).unread()
        up_to = targets.aggregate(up_to=Max("id"))["up_to"]
        if up_to is None:
            return counts_for(tenant, user)
        targets = targets.filter(id__lte=up_to)
        became_seen = targets.filter(seen_at__isnull=True).update(seen_at=now)
        became_read = targets.update(read_at=now)
        counts = _apply(tenant, user, unread=-became_read, unseen=-became_seen)
        _announce("notification.counts", tenant, user, {"counts": counts, "all_read": True, "up_to": up_to})
    return counts


def recount(tenant: Tenant, user: AbstractBaseUser) -> dict[str, int]:
    """Repair a user's counter from the rows (an operator's tool; nothing calls it per request)."""
    with transaction.atomic():
        _lock_counter(tenant, user)
        mine = Notification.objects.filter(tenant=tenant, recipient_id=user.pk)
        NotificationCounter.objects.filter(tenant=tenant, user_id=user.pk).update(
            unread=mine.unread().count(), unseen=mine.unseen().count(), version=F("version") + 1
        )
        counts = counts_for(tenant, user)
        _announce("notification.counts", tenant, user, {"counts": counts})
    return counts
