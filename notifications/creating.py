"""Creating notifications in two steps: ``prepare`` a call (reads only), then ``write`` one or many.

``notifications.services.notify`` is ``prepare`` then ``write`` of one call, in the
caller's transaction; ``write`` also takes many prepared calls at once (a group commit
of several requests' calls, measured in docs/benchmarks.md). It makes one ``bulk_create`` of the
rows, one counter upsert per tenant (per chunk) and one ``publish_many`` of their
``notification.created`` events once the transaction commits; each event carries its
recipient's counts as they were right after that notification, also when one batch
holds several notifications for the same user.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Membership, Tenant
from liveplatform import rawsql
from liveplatform.rendering import render_markdown
from realtime.audience import Audience
from realtime.events import make_event, publish_many

from . import preferences
from .content import BODY_MAX, CHUNK, TITLE_MAX, notification_data, validate_content
from .models import Notification, NotificationCounter
from .signals import notifications_created


class _AllMembers:
    """Sentinel: every member of the tenant (``role=`` narrows it)."""

    def __repr__(self) -> str:
        return "ALL_MEMBERS"


ALL_MEMBERS = _AllMembers()


class NotMembers(ValueError):
    """Recipients named by id who are not members of the tenant (``notify(..., refuse_non_members=True)``)."""

    def __init__(self, user_ids: list[int]) -> None:
        super().__init__(f"not members of the tenant: {user_ids}")
        self.user_ids = user_ids


@dataclass
class Prepared:
    """A notify call checked and ready to write: who gets it, what they see, and who wants a toast."""

    tenant: Tenant
    user_ids: list[int]
    category: str
    level: str
    title: str
    body: str
    body_html: str
    link: str
    data: dict
    actor: AbstractBaseUser | None
    toasts: dict[int, bool]
    created_at: datetime


def chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    """Split a recipient list into statements that fit every database's parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_MEMBERS_SQL = f"SELECT user_id FROM {Membership._meta.db_table} WHERE tenant_id = %s{{role}} AND user_id IN ({{ids}})"


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


def prepare(
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
) -> Prepared | None:
    """Check a notify call and read what writing it needs; ``None`` when it has no recipient.

    Raises ``ValueError`` for invalid content and ``NotMembers`` (with
    ``refuse_non_members``) as ``notify`` documents. Writes nothing, except a tenant's
    preference row for a category on its first use.
    """
    # Producers inside the platform pass titles and bodies they do not control (a job's
    # error, an announcement): clip them rather than lose the notification.
    title, body = _clip(title.strip(), TITLE_MAX), _clip(body or "", BODY_MAX)
    errors = validate_content(category=category, title=title, body=body, level=level, link=link)
    if errors:
        raise ValueError("; ".join(f"{field}: {message}" for field, message in errors.items()))
    user_ids = _recipient_ids(tenant, recipients, role, refuse_non_members=refuse_non_members)
    if not user_ids:
        return None
    return Prepared(
        tenant=tenant,
        user_ids=user_ids,
        category=category,
        level=level,
        title=title,
        body=body,
        body_html=render_markdown(body),
        link=link,
        data=data or {},
        actor=actor,
        toasts=preferences.toast_flags(tenant, category, user_ids),
        created_at=timezone.now(),
    )


def write(calls: Sequence[Prepared]) -> list[int]:
    """Write prepared calls in one transaction (the caller's, if it has one); how many rows each made.

    Events and the ``notifications_created`` signal (one per tenant) go out once the
    transaction commits.
    """
    with transaction.atomic():
        rows = [
            Notification(
                tenant=call.tenant,
                recipient_id=user_id,
                category=call.category,
                level=call.level,
                title=call.title,
                body=call.body,
                body_html=call.body_html,
                link=call.link,
                actor=call.actor,
                data=call.data,
                created_at=call.created_at,
            )
            for call in calls
            for user_id in call.user_ids
        ]
        rawsql.insert(rows)
        added = Counter((call.tenant.pk, user_id) for call in calls for user_id in call.user_ids)
        final: dict[tuple[int, int], dict[str, int]] = {}
        for tenant_id in sorted({tenant_id for tenant_id, _ in added}):
            mine = {user_id: count for (tid, user_id), count in added.items() if tid == tenant_id}
            final.update(((tenant_id, user_id), counts) for user_id, counts in _bump_counters(tenant_id, mine).items())
        written: Counter[tuple[int, int]] = Counter()
        events = []
        tenants: dict[int, Tenant] = {}
        rows_of_tenant: dict[int, list[Notification]] = defaultdict(list)
        start = 0
        for call in calls:
            actor_label = getattr(call.actor, "email", None)
            call_rows = rows[start : start + len(call.user_ids)]
            start += len(call.user_ids)
            tenants[call.tenant.pk] = call.tenant
            rows_of_tenant[call.tenant.pk].extend(call_rows)
            for row in call_rows:
                key = (call.tenant.pk, row.recipient_id)
                written[key] += 1
                # Counts right after this row: the final counts less the rows written after it.
                later = added[key] - written[key]
                counts = {name: value - later for name, value in final[key].items()}
                events.append(
                    make_event(
                        "notification.created",
                        {
                            "notification": notification_data(row, actor_label=actor_label),
                            "counts": counts,
                            "toast": call.toasts[row.recipient_id],
                        },
                        audience=Audience.user(row.recipient_id),
                        tenant=call.tenant,
                    )
                )
        publish_many(events)
        for tenant_id, tenant_rows in rows_of_tenant.items():
            transaction.on_commit(
                partial(
                    notifications_created.send,
                    sender=Notification,
                    tenant=tenants[tenant_id],
                    notifications=tenant_rows,
                ),
                robust=True,
            )
    return [len(call.user_ids) for call in calls]


def _bump_counters(tenant_id: int, added: dict[int, int]) -> dict[int, dict[str, int]]:
    """Add ``added[user]`` unread and unseen notifications for each user; return their new counts.

    One upsert per chunk that increments in the database (Django's
    ``bulk_create(update_conflicts=...)`` can only overwrite, not add) and returns the
    new values, so concurrent producers never lose an increment. Users are locked in
    id order. The common case (one each) sends one parameter per user.
    """
    table = connection.ops.quote_name(NotificationCounter._meta.db_table)
    user_ids = sorted(added)
    counts: dict[int, dict[str, int]] = {}
    one_each = all(added[user_id] == 1 for user_id in user_ids)
    with connection.cursor() as cursor:
        for chunk in chunks(user_ids, CHUNK if one_each else CHUNK // 4):
            if one_each:
                values, params = ", ".join([f"({int(tenant_id)}, %s, 1, 1, 1)"] * len(chunk)), chunk
            else:
                values = ", ".join([f"({int(tenant_id)}, %s, %s, %s, %s)"] * len(chunk))
                params = [value for user_id in chunk for value in (user_id, *[added[user_id]] * 3)]
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, user_id, unread, unseen, version) VALUES {values} "
                f"ON CONFLICT (tenant_id, user_id) DO UPDATE SET unread = {table}.unread + excluded.unread, "
                f"unseen = {table}.unseen + excluded.unseen, version = {table}.version + excluded.version "
                "RETURNING user_id, unread, unseen, version",
                params,
            )
            for user_id, unread, unseen, version in cursor.fetchall():
                counts[user_id] = {"unread": unread, "unseen": unseen, "version": version}
    return counts
