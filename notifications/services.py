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

import re
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Max, Model
from django.utils import timezone

from accounts.models import Membership, Tenant
from liveplatform import rawsql
from liveplatform.rendering import render_markdown
from realtime.audience import Audience
from realtime.events import make_event, publish, publish_many

from . import preferences
from .models import Level, Notification, NotificationCounter
from .signals import notifications_created

CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
TITLE_MAX = 200
BODY_MAX = 10_000
LINK_MAX = 500
# Rows per statement for recipient lists (IN lists and the counter upsert):
# under SQLite's 999-parameter limit, and few round trips on PostgreSQL.
CHUNK = 900


class _AllMembers:
    """Sentinel: every member of the tenant (``role=`` narrows it)."""

    def __repr__(self) -> str:
        return "ALL_MEMBERS"


ALL_MEMBERS = _AllMembers()


def is_internal_link(link: str) -> bool:
    """A link inside the platform: an absolute path, not another site (``//host``) or a scheme."""
    return (
        link.startswith("/")
        and not link.startswith("//")
        and "\\" not in link
        and not any(ch.isspace() or ord(ch) < 32 for ch in link)
        and len(link) <= LINK_MAX
    )


def validate_content(*, category: str, title: str, body: str, level: str, link: str) -> dict[str, str]:
    """Field-by-field problems with a notification's content (empty when it is valid)."""
    errors = {}
    if not isinstance(category, str) or not CATEGORY_RE.match(category):
        errors["category"] = "Use 1-50 lowercase letters, digits, '-' or '_', starting with a letter or digit."
    if not isinstance(title, str) or not title.strip():
        errors["title"] = "A title is required."
    elif len(title) > TITLE_MAX:
        errors["title"] = f"At most {TITLE_MAX} characters."
    if not isinstance(body, str) or len(body) > BODY_MAX:
        errors["body"] = f"At most {BODY_MAX} characters."
    if level not in Level.values:
        errors["level"] = f"One of {', '.join(Level.values)}."
    if link and not is_internal_link(link):
        errors["link"] = "A path inside the platform, starting with '/'."
    return errors


# ------------------------------------------------------------------------------
# Serialisation: what sockets and the API see of a notification
# ------------------------------------------------------------------------------
def notification_data(notification: Notification, *, actor_label: str | None = None) -> dict[str, Any]:
    """The JSON shape of a notification in events and in the API."""
    if actor_label is None and notification.actor_id:
        actor_label = getattr(notification.actor, "email", None)
    return {
        "id": notification.pk,
        "category": notification.category,
        "level": notification.level,
        "title": notification.title,
        "body_html": notification.body_html,
        "link": notification.link,
        "actor": actor_label,
        "data": notification.data,
        "created_at": _iso(notification.created_at),
        "seen_at": _iso(notification.seen_at),
        "read_at": _iso(notification.read_at),
        "archived_at": _iso(notification.archived_at),
    }


def _iso(moment) -> str | None:
    # Events are stored in a JSONField: plain strings, not datetimes.
    return moment.isoformat() if moment is not None else None


def counts_data(counter: NotificationCounter | dict | None) -> dict[str, int]:
    """The badge's numbers as every event and the API carry them."""
    if counter is None:
        return {"unread": 0, "unseen": 0, "version": 0}
    if isinstance(counter, dict):
        return {"unread": counter["unread"], "unseen": counter["unseen"], "version": counter["version"]}
    return {"unread": counter.unread, "unseen": counter.unseen, "version": counter.version}


def counts_for(tenant: Tenant, user: AbstractBaseUser) -> dict[str, int]:
    """The current counts of one user in one tenant (one indexed row, no COUNT)."""
    return counts_data(
        NotificationCounter.objects.filter(tenant=tenant, user_id=user.pk).values("unread", "unseen", "version").first()
    )


# ------------------------------------------------------------------------------
# Creating notifications
# ------------------------------------------------------------------------------
def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    """Split a recipient list into statements that fit every database's parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


_MEMBERS_SQL = f"SELECT user_id FROM {Membership._meta.db_table} WHERE tenant_id = %s{{role}} AND user_id IN ({{ids}})"


class NotMembers(ValueError):
    """Recipients named by id who are not members of the tenant (``notify(..., refuse_non_members=True)``)."""

    def __init__(self, user_ids: list[int]) -> None:
        super().__init__(f"not members of the tenant: {user_ids}")
        self.user_ids = user_ids


def _members_among(tenant_id: int, user_ids: list[int], role: str | None) -> list[int]:
    """Which of ``user_ids`` are members of the tenant (of ``role``, if given).

    Plain queries (``liveplatform.rawsql``), one per chunk: every notification to named
    users asks, and the ORM's query cost more than the rest of choosing recipients.
    """
    role_sql, role_params = (" AND role = %s", [role]) if role is not None else ("", [])
    found: list[int] = []
    for chunk in chunks(user_ids):
        sql = _MEMBERS_SQL.format(role=role_sql, ids=rawsql.placeholders(chunk))
        found.extend(user_id for (user_id,) in rawsql.fetch(sql, [tenant_id, *role_params, *chunk]))
    return found


def _recipient_ids(tenant: Tenant, recipients: Any, role: str | None, *, refuse_non_members: bool = False) -> list[int]:
    """Members of ``tenant`` among ``recipients``, sorted (a stable lock order) and without repeats."""
    if recipients is ALL_MEMBERS:
        # Unordered: Membership's default ordering joins users and tenants.
        members = Membership.objects.filter(tenant=tenant).order_by()
        if role is not None:
            members = members.filter(role=role)
        return sorted(members.values_list("user_id", flat=True))
    if isinstance(recipients, (Model, int)) or not isinstance(recipients, Iterable):
        recipients = [recipients]
    wanted = sorted({int(r.pk) if isinstance(r, Model) else int(r) for r in recipients})
    found = sorted(_members_among(tenant.pk, wanted, role))
    if refuse_non_members and len(found) != len(wanted):
        members_found = set(found)
        raise NotMembers([user_id for user_id in wanted if user_id not in members_found])
    return found


def _bump_counters(tenant_id: int, user_ids: list[int]) -> dict[int, dict[str, int]]:
    """Add one unread and one unseen notification for each user; return their new counts.

    One upsert per chunk that increments in the database (Django's
    ``bulk_create(update_conflicts=...)`` can only overwrite, not add) and returns the
    new values, so concurrent producers never lose an increment.
    """
    table = connection.ops.quote_name(NotificationCounter._meta.db_table)
    counts: dict[int, dict[str, int]] = {}
    with connection.cursor() as cursor:
        for chunk in chunks(user_ids):
            values = ", ".join([f"({int(tenant_id)}, %s, 1, 1, 1)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, user_id, unread, unseen, version) VALUES {values} "
                f"ON CONFLICT (tenant_id, user_id) DO UPDATE SET unread = {table}.unread + 1, "
                f"unseen = {table}.unseen + 1, version = {table}.version + 1 "
                "RETURNING user_id, unread, unseen, version",
                chunk,
            )
            for user_id, unread, unseen, version in cursor.fetchall():
                counts[user_id] = {"unread": unread, "unseen": unseen, "version": version}
    return counts


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
    # Producers inside the platform pass titles and bodies they do not control (a job's
    # error, an announcement): clip them rather than lose the notification.
    title, body = _clip(title.strip(), TITLE_MAX), _clip(body or "", BODY_MAX)
    errors = validate_content(category=category, title=title, body=body, level=level, link=link)
    if errors:
        raise ValueError("; ".join(f"{field}: {message}" for field, message in errors.items()))
    user_ids = _recipient_ids(tenant, recipients, role, refuse_non_members=refuse_non_members)
    if not user_ids:
        return 0
    body_html = render_markdown(body)
    toasts = preferences.toast_flags(tenant, category, user_ids)
    actor_label = getattr(actor, "email", None)
    now = timezone.now()
    with transaction.atomic():
        rows = Notification.objects.bulk_create(
            [
                Notification(
                    tenant=tenant,
                    recipient_id=user_id,
                    category=category,
                    level=level,
                    title=title,
                    body=body,
                    body_html=body_html,
                    link=link,
                    actor=actor,
                    data=data or {},
                    created_at=now,
                )
                for user_id in user_ids
            ]
        )
        counts = _bump_counters(tenant.pk, user_ids)
        publish_many(
            make_event(
                "notification.created",
                {
                    "notification": notification_data(row, actor_label=actor_label),
                    "counts": counts[row.recipient_id],
                    "toast": toasts[row.recipient_id],
                },
                audience=Audience.user(row.recipient_id),
                tenant=tenant,
            )
            for row in rows
        )
        transaction.on_commit(
            partial(notifications_created.send, sender=Notification, tenant=tenant, notifications=rows), robust=True
        )
    return len(rows)


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
