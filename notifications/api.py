"""HTTP API of the notifications app (mounted under /api/v1/notifications by liveplatform/api.py).

Two audiences, one set of services:

* other services send notifications with a tenant API key
  (``POST /api/v1/notifications``, ``Authorization: Bearer lpk_…``, ``Idempotency-Key``);
* a logged-in user lists and marks their own notifications (session cookie and
  CSRF token; the tenant is the ``tenant`` slug parameter, 404 for non-members).
  The bell and the inbox page use these same endpoints.
"""

import json
from datetime import datetime
from typing import Any, Literal

from django.db.models import Q
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest
from ninja import Field, Header, Query, Router, Schema, Status
from ninja.security import django_auth
from pydantic import ConfigDict, StrictBool, field_validator, model_validator

from accounts.api_auth import ApiKeyAuth
from accounts.idempotency import idempotent
from accounts.models import Membership
from accounts.tenancy import resolve_membership
from liveplatform.api_schemas import BodyIn, Id, errors

from . import services
from .models import Notification

router = Router(tags=["notifications"])

MAX_RECIPIENTS = 10_000
MAX_DATA_BYTES = 16 * 1024
# The same words for a user who does not exist and one of another tenant: the
# answer must not tell a key holder which users exist elsewhere.
NOT_A_MEMBER = "Not a member of this API key's tenant: {}"


# ------------------------------------------------------------------------------
# Schemas
# ------------------------------------------------------------------------------
# "Exactly one of user_ids, emails or tenant=true", and role only with tenant=true, as JSON
# Schema: the document says what one_kind_of_recipients below enforces.
RECIPIENTS_ONE_OF = [
    {
        "title": "Members by id",
        "required": ["user_ids"],
        "properties": {
            "user_ids": {"minItems": 1},
            "emails": {"maxItems": 0},
            "tenant": {"const": False},
            "role": {"const": None},
        },
    },
    {
        "title": "Members by email",
        "required": ["emails"],
        "properties": {
            "emails": {"minItems": 1},
            "user_ids": {"maxItems": 0},
            "tenant": {"const": False},
            "role": {"const": None},
        },
    },
    {
        "title": "Every member of the tenant (or every member of one role)",
        "required": ["tenant"],
        "properties": {"tenant": {"const": True}, "user_ids": {"maxItems": 0}, "emails": {"maxItems": 0}},
    },
]
NOTIFICATION_EXAMPLES = [
    {"tenant": True, "title": "Maintenance tonight", "body": "The platform restarts at **22:00 UTC**.",
     "level": "warning", "category": "maintenance"},
    {"emails": ["alice@acme.test"], "title": "Your export is ready", "level": "success", "category": "exports",
     "link": "/t/acme/jobs/"},
    {"tenant": True, "role": "admin", "title": "Invoice overdue", "level": "error", "category": "billing",
     "data": {"invoice": "2026-0042"}},
]  # fmt: skip


class NotificationIn(BodyIn):
    """A notification to send. Name the recipients with exactly one of user_ids, emails or tenant."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": RECIPIENTS_ONE_OF, "examples": NOTIFICATION_EXAMPLES}
    )

    user_ids: list[Id] = Field(default_factory=list, max_length=MAX_RECIPIENTS, description="member user ids")
    emails: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS, description="member emails")
    tenant: StrictBool = Field(False, description="every member of the key's tenant")
    role: Literal["admin", "member"] | None = Field(None, description="with tenant=true: only members of this role")
    category: str = Field(
        "general", pattern=services.CATEGORY_RE.pattern, description="a short slug; preferences key on it"
    )
    level: Literal["info", "success", "warning", "error"] = "info"
    # The pattern tells the document what title_not_blank checks.
    title: str = Field(min_length=1, max_length=services.TITLE_MAX, json_schema_extra={"pattern": r"\S"})
    body: str = Field("", max_length=services.BODY_MAX, description="plain text or safe Markdown")
    link: str = Field("", max_length=services.LINK_MAX, description="a path inside the platform, e.g. /t/acme/")
    data: dict[str, Any] = Field(default_factory=dict, description="any JSON object, passed to clients as is")

    @field_validator("title")
    @classmethod
    def title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("link")
    @classmethod
    def link_inside_platform(cls, value: str) -> str:
        if value and not services.is_internal_link(value):
            raise ValueError("must be a path inside the platform, starting with '/'")
        return value

    @field_validator("data")
    @classmethod
    def data_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_DATA_BYTES:
            raise ValueError(f"must be at most {MAX_DATA_BYTES} bytes of JSON")
        return value

    @model_validator(mode="after")
    def one_kind_of_recipients(self) -> "NotificationIn":
        named = [bool(self.user_ids), bool(self.emails), self.tenant]
        if sum(named) != 1:
            raise ValueError("name the recipients with exactly one of user_ids, emails or tenant=true")
        if self.role and not self.tenant:
            raise ValueError("role is only used with tenant=true")
        return self


class SentOut(Schema):
    created: int = Field(description="notifications created (one per recipient)")
    tenant: str


class CountsOut(Schema):
    unread: int
    unseen: int
    version: int = Field(description="grows with every change; keep the counts with the highest version")


class NotificationOut(Schema):
    id: int
    category: str
    level: str
    title: str
    body_html: str = Field(description="sanitised HTML from the safe Markdown body")
    link: str
    actor: str | None
    data: dict[str, Any]
    created_at: datetime
    seen_at: datetime | None
    read_at: datetime | None
    archived_at: datetime | None


class PageOut(Schema):
    items: list[NotificationOut]
    next_cursor: str | None = Field(description="pass as cursor= for the next (older) page; null on the last page")
    counts: CountsOut


class IdsIn(BodyIn):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ids": [1041, 1042]}]})

    ids: list[Id] = Field(max_length=500, description="notification ids the bell listed")


# ------------------------------------------------------------------------------
# Sending (API key)
# ------------------------------------------------------------------------------
def _members_by_email(tenant, emails: list[str]) -> tuple[list[int] | None, dict[str, list[str]]]:
    """The member ids for ``notify`` or the per-field errors (same words for unknown and foreign)."""
    members = Membership.objects.filter(tenant=tenant).order_by()
    wanted_emails = sorted({email.strip().lower() for email in emails})
    by_email: dict[str, int] = {}
    for chunk in services.chunks(wanted_emails):
        rows = members.annotate(email=Lower("user__email")).filter(email__in=chunk).values_list("email", "user_id")
        by_email.update(rows)
    missing = [email for email in wanted_emails if email not in by_email]
    if missing:
        return None, {"emails": [NOT_A_MEMBER.format(", ".join(missing))]}
    return sorted(by_email.values()), {}


@router.post(
    "",
    auth=ApiKeyAuth(),
    response={201: SentOut, **errors(400, 401, 409, 422, 429)},
    summary="Send a notification (API key)",
)
@idempotent
def send_notification(
    request: HttpRequest,
    payload: NotificationIn,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", description="retry safely: the same key replays the first response for 24 h"
    ),
):
    """Notify members of the API key's tenant; recipients outside it are refused (400), nothing is sent."""
    tenant = request.auth.tenant
    if payload.tenant:
        recipients = services.ALL_MEMBERS
    elif payload.user_ids:
        # notify checks the ids against the tenant in the same query that finds them.
        recipients = payload.user_ids
    else:
        recipients, errors = _members_by_email(tenant, payload.emails)
        if errors:
            return Status(400, {"detail": "Invalid recipients", "errors": errors})
    try:
        created = services.notify(
            tenant,
            recipients,
            category=payload.category,
            title=payload.title,
            body=payload.body,
            level=payload.level,
            link=payload.link,
            data=payload.data,
            role=payload.role,
            refuse_non_members=bool(payload.user_ids),
        )
    except services.NotMembers as refused:
        missing = ", ".join(str(user_id) for user_id in refused.user_ids)
        return Status(400, {"detail": "Invalid recipients", "errors": {"user_ids": [NOT_A_MEMBER.format(missing)]}})
    return Status(201, {"created": created, "tenant": tenant.slug})


# ------------------------------------------------------------------------------
# The logged-in user's own notifications (session)
# ------------------------------------------------------------------------------
def _membership(request: HttpRequest, tenant_slug: str) -> Membership:
    return resolve_membership(request.user, tenant_slug)


def _own(membership: Membership, notification_id: int) -> None:
    mine = Notification.objects.filter(tenant_id=membership.tenant_id, recipient_id=membership.user_id)
    if not mine.filter(pk=notification_id).exists():
        raise Http404("No such notification")


@router.get("", auth=django_auth, response={200: PageOut, **errors(400, 401, 404)}, summary="List my notifications")
def list_notifications(
    request: HttpRequest,
    tenant: str = Query(description="tenant slug"),
    state: Literal["unread", "all", "archived"] = Query("all", description="inbox tab"),
    category: str | None = Query(None, pattern=services.CATEGORY_RE.pattern),
    cursor: str | None = Query(None, pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page"),
    limit: int = Query(20, ge=1, le=100),
):
    """Newest first, one page at a time (cursor pagination: stable while new notifications arrive)."""
    membership = _membership(request, tenant)
    rows = Notification.objects.filter(tenant_id=membership.tenant_id, recipient_id=membership.user_id)
    rows = {"unread": rows.unread(), "all": rows.active(), "archived": rows.filter(archived_at__isnull=False)}[state]
    if category:
        rows = rows.filter(category=category)
    if cursor:
        rows = rows.filter(Q(id__lt=int(cursor)))
    page = list(rows.select_related("actor").order_by("-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {
        "items": [services.notification_data(n) for n in page],
        "next_cursor": str(page[-1].pk) if more else None,
        "counts": services.counts_for(membership.tenant, request.user),
    }


@router.get(
    "/counts",
    auth=django_auth,
    response={200: CountsOut, **errors(400, 401, 404)},
    summary="My unread and unseen counts",
)
def get_counts(request: HttpRequest, tenant: str = Query(description="tenant slug")):
    """The badge's numbers, read from the counter row (no COUNT)."""
    membership = _membership(request, tenant)
    return services.counts_for(membership.tenant, request.user)


@router.post(
    "/read-all",
    auth=django_auth,
    response={200: CountsOut, **errors(400, 401, 403, 404)},
    summary="Mark all my notifications read",
)
def mark_all_read(request: HttpRequest, tenant: str = Query(description="tenant slug")):
    """Every unread notification in the tenant becomes read; all the user's tabs clear their badge."""
    membership = _membership(request, tenant)
    return services.do_mark_all_read(membership.tenant, request.user)


@router.post(
    "/seen",
    auth=django_auth,
    response={200: CountsOut, **errors(400, 401, 403, 404)},
    summary="Mark notifications seen (bell opened)",
)
def mark_seen(request: HttpRequest, payload: IdsIn, tenant: str = Query(description="tenant slug")):
    """The bell listed these notifications: they are seen, still unread."""
    membership = _membership(request, tenant)
    return services.do_mark_seen(membership.tenant, request.user, payload.ids)


ACTIONS = {
    "read": services.do_mark_read,
    "unread": services.do_mark_unread,
    "archive": services.do_archive,
    "unarchive": services.do_unarchive,
}


def _action_view(action: str):
    service = ACTIONS[action]

    def view(request: HttpRequest, notification_id: int, tenant: str = Query(description="tenant slug")):
        membership = _membership(request, tenant)
        _own(membership, notification_id)
        return service(membership.tenant, request.user, [notification_id])

    view.__name__ = f"mark_{action}"
    view.__doc__ = f"{action.capitalize()} one of my notifications; returns the new counts."
    return view


for _action in ACTIONS:
    router.post(
        # A plain {notification_id}: a malformed id is ninja's JSON 400, not Django's HTML 404 for an unmatched URL.
        f"/{{notification_id}}/{_action}",
        auth=django_auth,
        response={200: CountsOut, **errors(400, 401, 403, 404)},
        summary=f"{_action.capitalize()} a notification",
        operation_id=f"notifications_{_action}",
    )(_action_view(_action))
