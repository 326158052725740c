"""The functions that change announcements, and who sees which.

Generation of the live events happens here: each ``do_*`` function changes rows and
names the audience of its event explicitly (``audience_of``). Delivery is the core's
``realtime.events.publish``; inside a transaction it waits for the commit, so a
browser never hears of a row it cannot read yet.

Events (all durable, so a reconnecting client replays them):

* ``announcement.published`` (the full announcement) when it becomes active;
* ``announcement.updated`` (the full announcement) when an active one is edited;
* ``announcement.ended`` (``{"id", "reason"}``: ended, expired, deleted, rescheduled,
  retargeted) when it stops being shown;
* ``announcement.dismissed`` (``{"id", "dismissable"}``) to the user's own sockets,
  so their other tabs drop it at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Membership, Tenant
from liveplatform import rawsql
from liveplatform.rendering import render_markdown
from realtime.audience import Audience
from realtime.events import publish

from .models import Announcement, AuditLogEntry, Dismissal

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = ("title", "body", "severity", "style", "audience", "starts_at", "ends_at", "dismissable")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
NOTIFICATION_LEVEL = {"critical": "error", "warning": "warning", "info": "info"}


# ------------------------------------------------------------------------------
# Who may publish, and who sees what
# ------------------------------------------------------------------------------
def check_may_publish(user: AbstractBaseUser | None, *, scope: str, tenant: Tenant | None) -> None:
    """Raise PermissionDenied unless ``user`` may publish to this scope (the one rule)."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise PermissionDenied("Sign in to publish announcements.")
    if scope == Announcement.Scope.PLATFORM:
        if not user.is_staff:
            raise PermissionDenied("Only platform staff can publish platform-wide announcements.")
        return
    if tenant is None:
        raise PermissionDenied("A tenant announcement needs a tenant.")
    if user.is_staff:
        return
    if not Membership.objects.admins().filter(user=user, tenant=tenant).exists():
        raise PermissionDenied("Only this tenant's admins can publish announcements to it.")


def check_may_manage(user: AbstractBaseUser | None, announcement: Announcement) -> None:
    """Raise PermissionDenied unless ``user`` may edit, end or delete this announcement."""
    check_may_publish(user, scope=announcement.scope, tenant=announcement.tenant)


def audience_of(announcement: Announcement) -> Audience:
    """The socket group that carries this announcement: one group send, never one per user."""
    if announcement.is_platform:
        return Audience.platform()
    if announcement.audience == Announcement.AudienceFilter.ADMINS:
        return Audience.tenant_admins(announcement.tenant_id)
    return Audience.tenant(announcement.tenant_id)


def visible_to(user: AbstractBaseUser) -> QuerySet[Announcement]:
    """Announcements whose audience includes ``user`` (any time, dismissed or not)."""
    if not user.is_authenticated:
        return Announcement.objects.none()
    roles = list(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
    tenant_ids = [tenant_id for tenant_id, _ in roles]
    admin_ids = [tenant_id for tenant_id, role in roles if role == Membership.Role.ADMIN]
    return Announcement.objects.filter(
        Q(scope=Announcement.Scope.PLATFORM)
        | Q(scope=Announcement.Scope.TENANT, tenant_id__in=tenant_ids, audience=Announcement.AudienceFilter.ALL)
        | Q(scope=Announcement.Scope.TENANT, tenant_id__in=admin_ids, audience=Announcement.AudienceFilter.ADMINS)
    )


def announcement_payload(announcement: Announcement) -> dict[str, Any]:
    """What a browser needs to draw an announcement (the data of published/updated events)."""
    tenant = announcement.tenant
    return {
        "id": announcement.pk,
        "scope": announcement.scope,
        "tenant": tenant.slug if tenant else None,
        "tenant_name": tenant.name if tenant else None,
        "audience": announcement.audience,
        "title": announcement.title,
        "body_html": announcement.body_html,
        "severity": announcement.severity,
        "style": announcement.style,
        "dismissable": announcement.dismissable,
        "starts_at": announcement.starts_at.isoformat(),
        "ends_at": announcement.ends_at.isoformat() if announcement.ends_at else None,
    }


def active_for(user: AbstractBaseUser, now: datetime | None = None) -> list[dict[str, Any]]:
    """The active, undismissed announcements for ``user``, most severe first.

    Each carries ``display``: its style, except that an acknowledged non-dismissable
    modal is shown as a banner (it was a one-time modal; it still may not disappear).
    """
    announcements = list(visible_to(user).current(now).select_related("tenant"))
    closed = set(
        Dismissal.objects.filter(user=user, announcement__in=[a.pk for a in announcements]).values_list(
            "announcement_id", flat=True
        )
    )
    return _displayed(announcements, closed)


def _displayed(announcements: list[Announcement], closed: set[int]) -> list[dict[str, Any]]:
    """The payloads to show, given which of these announcements the user closed, most severe first."""
    result = []
    for announcement in announcements:
        if announcement.pk in closed and announcement.dismissable:
            continue
        display = Announcement.Style.BANNER if announcement.pk in closed else announcement.style
        result.append({**announcement_payload(announcement), "display": display})
    result.sort(key=lambda item: (SEVERITY_ORDER[item["severity"]], item["starts_at"]))
    return result


_SOCKET_COLUMNS = (
    "id",
    "scope",
    "tenant_id",
    "audience",
    "title",
    "body_html",
    "severity",
    "style",
    "dismissable",
    "starts_at",
    "ends_at",
)


def active_for_socket(user: AbstractBaseUser, subs: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """``active_for`` for a socket that knows the user's tenants and roles already: one plain query.

    Every handshake asks, and the querysets of ``active_for`` (memberships, announcements,
    dismissals) cost ten times the reads. The same rule as ``visible_to`` + ``current()``
    + dismissals, in SQL; tests/announcements/test_socket_snapshot.py holds the two together.
    """
    now = now or timezone.now()
    tenants = {tenant.id: tenant for tenant in subs.tenants}
    admin_ids = [tenant.id for tenant in subs.tenants if tenant.is_admin]
    visible, params = ["a.scope = %s"], [Announcement.Scope.PLATFORM.value]
    if tenants:
        visible.append(f"(a.scope = %s AND a.audience = %s AND a.tenant_id IN ({rawsql.placeholders(list(tenants))}))")
        params += [Announcement.Scope.TENANT.value, Announcement.AudienceFilter.ALL.value, *tenants]
    if admin_ids:
        visible.append(f"(a.scope = %s AND a.audience = %s AND a.tenant_id IN ({rawsql.placeholders(admin_ids)}))")
        params += [Announcement.Scope.TENANT.value, Announcement.AudienceFilter.ADMINS.value, *admin_ids]
    at = rawsql.to_db_datetime(now)
    # current() excludes ended ones; naming the other states lets the (state, starts_at) index
    # find the few live rows instead of scanning every announcement ever made.
    live = [state for state in Announcement.State.values if state != Announcement.State.ENDED]
    rows = rawsql.fetch(
        f"SELECT {', '.join('a.' + column for column in _SOCKET_COLUMNS)}, d.id"
        f" FROM {Announcement._meta.db_table} a LEFT JOIN {Dismissal._meta.db_table} d"
        " ON d.announcement_id = a.id AND d.user_id = %s"
        f" WHERE a.state IN ({rawsql.placeholders(live)}) AND a.starts_at <= %s"
        " AND (a.ends_at IS NULL OR a.ends_at > %s)"
        f" AND ({' OR '.join(visible)}) ORDER BY a.starts_at DESC, a.id DESC",
        [user.pk, *live, at, at, *params],
    )
    announcements, closed = [], set()
    for *values, dismissal_id in rows:
        fields = dict(zip(_SOCKET_COLUMNS, values, strict=True))
        fields["starts_at"] = rawsql.from_db_datetime(fields["starts_at"])
        fields["ends_at"] = rawsql.from_db_datetime(fields["ends_at"])
        fields["dismissable"] = bool(fields["dismissable"])
        announcement = Announcement(**fields)
        if announcement.tenant_id is not None:
            # Visible tenant announcements are of the user's tenants: no query for the name.
            tenant = tenants[announcement.tenant_id]
            announcement.tenant = Tenant(id=tenant.id, slug=tenant.slug, name=tenant.name)
        announcements.append(announcement)
        if dismissal_id is not None:
            closed.add(announcement.pk)
    return _displayed(announcements, closed)


def snapshot(user: AbstractBaseUser, subs: Any) -> list[tuple[str, str | None, Any]]:
    """State on connect: the full active list, so a reconnecting browser reconciles its banners."""
    return [("announcement.active", None, {"announcements": active_for_socket(user, subs)})]


# ------------------------------------------------------------------------------
# Validation (one set of rules for the composer, the API and Django admin)
# ------------------------------------------------------------------------------
def clean_fields(values: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """Check and normalise announcement fields; raise ValidationError keyed by field."""
    now = now or timezone.now()
    errors: dict[str, str] = {}
    cleaned = dict(values)
    title = (cleaned.get("title") or "").strip()
    if not title:
        errors["title"] = "Give the announcement a title."
    elif len(title) > 200:
        errors["title"] = "Keep the title under 200 characters."
    cleaned["title"] = title
    cleaned["body"] = (cleaned.get("body") or "").strip()
    if len(cleaned["body"]) > 10_000:
        errors["body"] = "Keep the body under 10,000 characters."
    for field, choices in (
        ("severity", Announcement.Severity),
        ("style", Announcement.Style),
        ("audience", Announcement.AudienceFilter),
    ):
        if cleaned.get(field) not in choices.values:
            errors[field] = f"Choose one of: {', '.join(choices.values)}."
    if (
        cleaned.get("scope", Announcement.Scope.TENANT) == Announcement.Scope.PLATFORM
        and cleaned.get("audience") == Announcement.AudienceFilter.ADMINS
    ):
        errors["audience"] = "Platform-wide announcements go to everyone; admins-only is for one tenant."
    starts_at = cleaned.get("starts_at") or None
    ends_at = cleaned.get("ends_at") or None
    if starts_at is None:
        starts_at = now  # no start: immediately
    if ends_at is not None:
        if ends_at <= now:
            errors["ends_at"] = "The end must be in the future (use “End now” to end it at once)."
        elif starts_at is not None and ends_at <= starts_at:
            errors["ends_at"] = "The end must come after the start."
    cleaned["starts_at"], cleaned["ends_at"] = starts_at, ends_at
    if cleaned.get("severity") == Announcement.Severity.CRITICAL:
        cleaned["dismissable"] = False  # critical announcements cannot be dismissed
    cleaned["dismissable"] = bool(cleaned.get("dismissable", True))
    if errors:
        raise ValidationError(errors)
    return cleaned


# ------------------------------------------------------------------------------
# Actions
# ------------------------------------------------------------------------------
def do_publish_announcement(
    *,
    actor: AbstractBaseUser | None,
    scope: str = Announcement.Scope.TENANT,
    tenant: Tenant | None = None,
    title: str,
    body: str = "",
    severity: str = Announcement.Severity.INFO,
    style: str = Announcement.Style.BANNER,
    audience: str = Announcement.AudienceFilter.ALL,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    dismissable: bool = True,
    via: str = "composer",
) -> Announcement:
    """Create an announcement: live at once if it starts now, else scheduled for ``starts_at``.

    Permission is the caller's to check (``check_may_publish``); API keys have no user.
    """
    now = timezone.now()
    values = clean_fields(
        {
            "scope": scope,
            "title": title,
            "body": body,
            "severity": severity,
            "style": style,
            "audience": audience,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "dismissable": dismissable,
        },
        now=now,
    )
    with transaction.atomic():
        announcement = Announcement.objects.create(
            tenant=None if scope == Announcement.Scope.PLATFORM else tenant,
            author=actor,
            body_html=render_markdown(values["body"]),
            **values,
        )
        live_now = announcement.starts_at <= now
        _audit(
            announcement,
            actor,
            via,
            AuditLogEntry.Action.PUBLISHED if live_now else AuditLogEntry.Action.SCHEDULED,
            {field: [None, _jsonable(getattr(announcement, field))] for field in ("scope", *EDITABLE_FIELDS)},
        )
        if live_now:
            _activate(announcement, now)
        else:
            _schedule_start(announcement)
        _schedule_end(announcement)
    return announcement


def do_update_announcement(
    announcement: Announcement, *, actor: AbstractBaseUser | None, changes: dict[str, Any], via: str = "composer"
) -> Announcement:
    """Edit an announcement; an active one changes in place in every browser showing it."""
    now = timezone.now()
    with transaction.atomic():
        announcement = Announcement.objects.select_for_update().get(pk=announcement.pk)
        if announcement.status(now) == "ended":
            raise ValidationError({"__all__": "This announcement has ended; publish a new one instead."})
        before = {field: getattr(announcement, field) for field in EDITABLE_FIELDS}
        merged = {**before, **{k: v for k, v in changes.items() if k in EDITABLE_FIELDS}, "scope": announcement.scope}
        values = clean_fields(merged, now=now)
        diff = {
            field: [_jsonable(before[field]), _jsonable(values[field])]
            for field in EDITABLE_FIELDS
            if values[field] != before[field]
        }
        if not diff:
            return announcement
        old_audience = audience_of(announcement)
        for field in EDITABLE_FIELDS:
            setattr(announcement, field, values[field])
        announcement.body_html = render_markdown(announcement.body)
        announcement.save()
        _audit(announcement, actor, via, AuditLogEntry.Action.UPDATED, diff)
        if announcement.state == Announcement.State.ACTIVE:
            if announcement.starts_at > now:
                # Moved into the future: take it down until its new start.
                Announcement.objects.filter(pk=announcement.pk).update(
                    state=Announcement.State.SCHEDULED, activated_at=None
                )
                announcement.state = Announcement.State.SCHEDULED
                _publish_ended(announcement, "rescheduled", audience=old_audience)
                _schedule_start(announcement)
            elif audience_of(announcement) != old_audience:
                _publish_ended(announcement, "retargeted", audience=old_audience)
                publish(
                    "announcement.published",
                    announcement_payload(announcement),
                    audience=audience_of(announcement),
                    tenant=announcement.tenant,
                )
            else:
                publish(
                    "announcement.updated",
                    announcement_payload(announcement),
                    audience=audience_of(announcement),
                    tenant=announcement.tenant,
                )
                if "severity" in diff and announcement.severity == Announcement.Severity.CRITICAL:
                    _notify_members(announcement)
        elif announcement.starts_at <= now:
            _activate(announcement, now)
        elif "starts_at" in diff:
            _schedule_start(announcement)
        if "ends_at" in diff:
            _schedule_end(announcement)
    return announcement


def do_end_announcement(
    announcement: Announcement, *, actor: AbstractBaseUser | None, via: str = "composer"
) -> Announcement:
    """End an announcement now: it disappears from every browser at once."""
    now = timezone.now()
    with transaction.atomic():
        announcement = Announcement.objects.select_for_update().get(pk=announcement.pk)
        if announcement.state == Announcement.State.ENDED:
            return announcement
        shown = _end(announcement, now, "ended")
        _audit(announcement, actor, via, AuditLogEntry.Action.ENDED, {"ended_at": [None, now.isoformat()]})
        if not shown:
            logger.info("ended announcement %s before it started", announcement.pk)
    return announcement


def do_delete_announcement(
    announcement: Announcement, *, actor: AbstractBaseUser | None, via: str = "composer"
) -> None:
    """Delete an announcement (the audit log keeps its trace); it disappears live."""
    with transaction.atomic():
        announcement = Announcement.objects.select_for_update().get(pk=announcement.pk)
        if announcement.state == Announcement.State.ACTIVE or (
            announcement.state == Announcement.State.SCHEDULED and announcement.starts_at <= timezone.now()
        ):
            _publish_ended(announcement, "deleted")
        _audit(announcement, actor, via, AuditLogEntry.Action.DELETED, {})
        announcement.delete()


def do_dismiss_announcement(announcement: Announcement, user: AbstractBaseUser) -> Dismissal:
    """Close an announcement for ``user`` everywhere: every other tab and device drops it.

    Dismissable announcements disappear; a non-dismissable one-time modal is only
    acknowledged (it stays as a banner). A non-dismissable banner cannot be closed.
    """
    if not announcement.dismissable and announcement.style != Announcement.Style.MODAL:
        raise PermissionDenied("This announcement cannot be dismissed.")
    with transaction.atomic():
        dismissal, created = Dismissal.objects.get_or_create(announcement=announcement, user=user)
        if created:
            publish(
                "announcement.dismissed",
                {"id": announcement.pk, "dismissable": announcement.dismissable},
                audience=Audience.user(user.pk),
                tenant=announcement.tenant,
            )
    return dismissal


# ------------------------------------------------------------------------------
# Scheduled transitions (Celery eta tasks and the beat reconciler call these)
# ------------------------------------------------------------------------------
def do_activate_due_announcement(announcement_id: int, now: datetime | None = None) -> bool:
    """Publish an announcement whose start has come; exactly once however many callers race."""
    now = now or timezone.now()
    with transaction.atomic():
        announcement = Announcement.objects.select_for_update().filter(pk=announcement_id).first()
        if announcement is None or announcement.state != Announcement.State.SCHEDULED or announcement.starts_at > now:
            return False
        if announcement.ends_at and announcement.ends_at <= now:
            # Its whole window passed while nothing ran: pages may have shown it, so say it ended.
            return _end(announcement, now, "expired")
        return _activate(announcement, now)


def do_expire_due_announcement(announcement_id: int, now: datetime | None = None) -> bool:
    """End an announcement whose ``ends_at`` has come; exactly once however many callers race."""
    now = now or timezone.now()
    with transaction.atomic():
        announcement = Announcement.objects.select_for_update().filter(pk=announcement_id).first()
        if (
            announcement is None
            or announcement.state == Announcement.State.ENDED
            or not announcement.ends_at
            or announcement.ends_at > now
        ):
            return False
        return _end(announcement, now, "expired")


def reconcile_due_announcements(now: datetime | None = None) -> int:
    """Start and end everything that is due but unpublished (a worker was down, a task lost)."""
    now = now or timezone.now()
    changed = 0
    for pk in Announcement.objects.filter(state=Announcement.State.SCHEDULED, starts_at__lte=now).values_list(
        "pk", flat=True
    ):
        changed += do_activate_due_announcement(pk, now)
    for pk in Announcement.objects.filter(state=Announcement.State.ACTIVE, ends_at__lte=now).values_list(
        "pk", flat=True
    ):
        changed += do_expire_due_announcement(pk, now)
    return changed


# ------------------------------------------------------------------------------
def _activate(announcement: Announcement, now: datetime) -> bool:
    """Mark active and publish, in the caller's transaction: the row and the event commit together."""
    won = Announcement.objects.filter(pk=announcement.pk, state=Announcement.State.SCHEDULED).update(
        state=Announcement.State.ACTIVE, activated_at=now
    )
    if not won:
        return False
    announcement.state, announcement.activated_at = Announcement.State.ACTIVE, now
    publish(
        "announcement.published",
        announcement_payload(announcement),
        audience=audience_of(announcement),
        tenant=announcement.tenant,
    )
    if announcement.severity == Announcement.Severity.CRITICAL:
        _notify_members(announcement)
    return True


def _end(announcement: Announcement, now: datetime, reason: str) -> bool:
    """Mark ended and, if anyone may be showing it, publish ``announcement.ended``."""
    was_visible = announcement.state == Announcement.State.ACTIVE or announcement.starts_at <= now
    won = (
        Announcement.objects.filter(pk=announcement.pk)
        .exclude(state=Announcement.State.ENDED)
        .update(state=Announcement.State.ENDED, ended_at=now)
    )
    if not won:
        return False
    announcement.state, announcement.ended_at = Announcement.State.ENDED, now
    if was_visible:
        _publish_ended(announcement, reason)
    return True


def _publish_ended(announcement: Announcement, reason: str, *, audience: Audience | None = None) -> None:
    publish(
        "announcement.ended",
        {"id": announcement.pk, "reason": reason},
        audience=audience or audience_of(announcement),
        tenant=announcement.tenant,
    )


def _notify_members(announcement: Announcement) -> None:
    """Critical: also a notification for every member of the audience (each tenant's bell)."""
    try:
        from notifications.services import ALL_MEMBERS, notify
    except ImportError:  # the notifications app is not there yet: the banner still goes out
        logger.warning(
            "notifications.services.notify is unavailable; critical announcement %s not notified", announcement.pk
        )
        return
    tenants = [announcement.tenant] if announcement.tenant else list(Tenant.objects.all())
    role = "admin" if announcement.audience == Announcement.AudienceFilter.ADMINS else None
    for tenant in tenants:
        notify(
            tenant,
            ALL_MEMBERS,
            category="announcements",
            title=announcement.title,
            body=announcement.body,
            level=NOTIFICATION_LEVEL[announcement.severity],
            data={"announcement": announcement.pk},
            actor=announcement.author,
            role=role,
        )


def _schedule_start(announcement: Announcement) -> None:
    from .tasks import activate_announcement

    _enqueue_after_commit(activate_announcement, announcement.pk, announcement.starts_at)


def _schedule_end(announcement: Announcement) -> None:
    if announcement.ends_at is None:
        return
    from .tasks import expire_announcement

    _enqueue_after_commit(expire_announcement, announcement.pk, announcement.ends_at)


def _enqueue_after_commit(task: Any, announcement_id: int, eta: datetime) -> None:
    def enqueue() -> None:
        try:
            task.apply_async(args=[announcement_id], eta=eta)
        except Exception:  # broker down: the beat reconciler publishes it when it is due
            logger.exception("could not schedule %s for announcement %s", task.name, announcement_id)

    transaction.on_commit(enqueue, robust=True)


def _audit(
    announcement: Announcement, actor: AbstractBaseUser | None, via: str, action: str, changes: dict[str, Any]
) -> None:
    AuditLogEntry.objects.create(
        announcement=announcement if action != AuditLogEntry.Action.DELETED else None,
        announcement_title=announcement.title,
        tenant=announcement.tenant,
        actor=actor if actor is not None and actor.is_authenticated else None,
        via=via[:40],
        action=action,
        changes={"id": announcement.pk, **changes},
    )


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
