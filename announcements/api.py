"""HTTP API of the announcements app, mounted at /api/v1/announcements.

* ``GET /active``: the active, undismissed announcements for the signed-in user.
* ``POST /``, ``PATCH /{id}``, ``POST /{id}/end``, ``DELETE /{id}``: for tenant admins
  (session) and tenant API keys (Bearer, own tenant only); platform scope for staff.
  ``POST`` honours ``Idempotency-Key``.
* ``POST /{id}/dismiss``: the signed-in user closes an announcement everywhere.

Errors: 401 unauthenticated, 403 not allowed (members, keys outside their tenant),
404 unknown or another tenant's announcement, 400 invalid fields
(``{"detail": "Invalid request", "errors": {field: [messages]}}``, the platform's
convention), 422 an ``Idempotency-Key`` reused with a different body.
"""

from datetime import datetime
from typing import Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from ninja import Header, Router, Schema, Status
from ninja.security import django_auth
from pydantic import ConfigDict, Field, StrictBool

from accounts.api_auth import ApiKeyAuth
from accounts.idempotency import idempotent
from accounts.models import ApiKey, Membership, Tenant
from liveplatform.api_schemas import BodyIn, DateTimeIn, errors

from . import services
from .models import Announcement

router = Router(tags=["announcements"])

Severity = Literal["info", "warning", "critical"]
Style = Literal["banner", "modal"]
AudienceFilter = Literal["all", "admins"]


class AnnouncementOut(Schema):
    id: int
    scope: Literal["tenant", "platform"]
    tenant: str | None
    tenant_name: str | None
    audience: AudienceFilter
    title: str
    body_html: str
    severity: Severity
    style: Style
    dismissable: bool
    starts_at: datetime
    ends_at: datetime | None


class ActiveAnnouncementOut(AnnouncementOut):
    display: Style = Field(description="How to show it to this user: an acknowledged modal becomes a banner.")


class AnnouncementDetailOut(AnnouncementOut):
    body: str
    status: Literal["scheduled", "active", "ended"]
    created_at: datetime
    updated_at: datetime


class AnnouncementIn(BodyIn):
    """An announcement to publish now or to schedule; a tenant API key publishes to its own tenant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Deploy finished", "body": "Version **1.4.2** is live.", "severity": "info"},
                {"title": "Maintenance window", "body": "The platform restarts between 08:00 and 10:00 UTC.",
                 "severity": "warning", "starts_at": "2030-06-01T07:30:00Z", "ends_at": "2030-06-01T10:00:00Z"},
                {"scope": "tenant", "tenant": "acme", "title": "New terms of service", "style": "modal",
                 "severity": "critical", "audience": "admins", "dismissable": False},
            ]
        }
    )  # fmt: skip

    scope: Literal["tenant", "platform"] = "tenant"
    tenant: str | None = Field(None, description="Tenant slug; API keys may omit it (their own tenant).")
    # Blank after trimming is refused (services.clean_fields); the pattern says so in the document.
    title: str = Field(..., min_length=1, max_length=200, json_schema_extra={"pattern": r"\S"})
    body: str = Field("", max_length=10_000, description="Safe Markdown subset.")
    severity: Severity = "info"
    style: Style = "banner"
    audience: AudienceFilter = "all"
    starts_at: DateTimeIn | None = Field(None, description="Omit to publish now.")
    ends_at: DateTimeIn | None = Field(None, description="Omit to keep it until ended.")
    dismissable: StrictBool = True


class AnnouncementPatch(BodyIn):
    """The fields to change; the others stay as they are."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"severity": "critical", "body": "Extended until **11:00 UTC**."}]}
    )

    title: str | None = Field(None, min_length=1, max_length=200)
    body: str | None = Field(None, max_length=10_000)
    severity: Severity | None = None
    style: Style | None = None
    audience: AudienceFilter | None = None
    starts_at: DateTimeIn | None = None
    ends_at: DateTimeIn | None = None
    dismissable: StrictBool | None = None


def _detail(announcement: Announcement) -> dict:
    return {
        **services.announcement_payload(announcement),
        "body": announcement.body,
        "status": announcement.status(),
        "created_at": announcement.created_at,
        "updated_at": announcement.updated_at,
    }


def _validation_error(error: ValidationError) -> Status:
    """The platform's invalid-input answer (liveplatform/api.py): 400 with messages per field."""
    return Status(400, {"detail": "Invalid request", "errors": error.message_dict})


def _actor(request: HttpRequest):
    """The user behind the request, or None for an API key."""
    return None if isinstance(request.auth, ApiKey) else request.auth


def _via(request: HttpRequest) -> str:
    return f"api key {request.auth.prefix}" if isinstance(request.auth, ApiKey) else "api"


def _check_manage(request: HttpRequest, announcement: Announcement) -> None:
    if isinstance(request.auth, ApiKey):
        if announcement.tenant_id != request.auth.tenant_id:
            raise PermissionDenied("API keys manage only their own tenant's announcements.")
        return
    services.check_may_manage(request.user, announcement)


def _get_for_caller(request: HttpRequest, announcement_id: int) -> Announcement | None:
    """The announcement if the caller may know it exists (404 otherwise, like tenant pages)."""
    queryset = Announcement.objects.select_related("tenant")
    if isinstance(request.auth, ApiKey):
        return queryset.filter(pk=announcement_id, tenant_id=request.auth.tenant_id).first()
    user = request.user
    if user.is_staff:
        return queryset.filter(pk=announcement_id).first()
    return services.visible_to(user).select_related("tenant").filter(pk=announcement_id).first()


def _managed_by_caller(request: HttpRequest, announcement_id: int) -> tuple[Announcement | None, Status | None]:
    """The announcement the caller may change, or the 404/403 answer to give instead."""
    announcement = _get_for_caller(request, announcement_id)
    if announcement is None:
        return None, Status(404, {"detail": "No such announcement."})
    try:
        _check_manage(request, announcement)
    except PermissionDenied as error:
        return None, Status(403, {"detail": str(error)})
    return announcement, None


@router.get(
    "/active",
    response={200: list[ActiveAnnouncementOut], **errors(401)},
    auth=django_auth,
    summary="My active announcements",
)
def active_announcements(request: HttpRequest):
    """The active announcements the signed-in user has not dismissed, most severe first."""
    return services.active_for(request.user)


@router.post(
    "",
    response={201: AnnouncementDetailOut, **errors(400, 401, 403, 404, 409, 422, 429)},
    auth=[ApiKeyAuth(), django_auth],
    summary="Publish or schedule an announcement (tenant admin, staff or tenant API key)",
)
@idempotent
def create_announcement(
    request: HttpRequest,
    payload: AnnouncementIn,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", description="retry safely: the same key replays the first response for 24 h"
    ),
):
    """Publish (or schedule) an announcement. Send ``Idempotency-Key`` to retry safely."""
    values = payload.model_dump()
    slug = values.pop("tenant")
    scope = values.pop("scope")
    tenant = None
    if isinstance(request.auth, ApiKey):
        if scope != "tenant" or (slug and slug != request.auth.tenant.slug):
            return Status(403, {"detail": "API keys publish only to their own tenant."})
        tenant = request.auth.tenant
    else:
        if scope == "tenant":
            if not slug:
                return _validation_error(ValidationError({"tenant": "Name the tenant (its slug)."}))
            tenant = Tenant.objects.filter(slug=slug).first()
            is_member = tenant and Membership.objects.filter(user=request.user, tenant=tenant).exists()
            if tenant is None or not (is_member or request.user.is_staff):
                return Status(404, {"detail": "No such tenant."})
        try:
            services.check_may_publish(request.user, scope=scope, tenant=tenant)
        except PermissionDenied as error:
            return Status(403, {"detail": str(error)})
    try:
        announcement = services.do_publish_announcement(
            actor=_actor(request), scope=scope, tenant=tenant, via=_via(request), **values
        )
    except ValidationError as error:
        return _validation_error(error)
    return Status(201, _detail(announcement))


@router.get(
    "/{announcement_id}",
    response={200: AnnouncementDetailOut, **errors(400, 401, 404, 429)},
    auth=[ApiKeyAuth(), django_auth],
    summary="One announcement with its status",
)
def get_announcement(request: HttpRequest, announcement_id: int):
    """One announcement, with its status."""
    announcement = _get_for_caller(request, announcement_id)
    if announcement is None:
        return Status(404, {"detail": "No such announcement."})
    return Status(200, _detail(announcement))


@router.patch(
    "/{announcement_id}",
    response={200: AnnouncementDetailOut, **errors(400, 401, 403, 404, 429)},
    summary="Edit an announcement (changes live in every browser showing it)",
    auth=[ApiKeyAuth(), django_auth],
)
def update_announcement(request: HttpRequest, announcement_id: int, payload: AnnouncementPatch):
    """Change an announcement; an active one changes in place in every browser."""
    announcement, refusal = _managed_by_caller(request, announcement_id)
    if refusal is not None:
        return refusal
    try:
        announcement = services.do_update_announcement(
            announcement, actor=_actor(request), changes=payload.model_dump(exclude_unset=True), via=_via(request)
        )
    except ValidationError as error:
        return _validation_error(error)
    return Status(200, _detail(announcement))


@router.post(
    "/{announcement_id}/end",
    response={200: AnnouncementDetailOut, **errors(400, 401, 403, 404, 429)},
    summary="End an announcement now",
    auth=[ApiKeyAuth(), django_auth],
)
def end_announcement(request: HttpRequest, announcement_id: int):
    """End an announcement now; it disappears from every browser."""
    announcement, refusal = _managed_by_caller(request, announcement_id)
    if refusal is not None:
        return refusal
    return Status(200, _detail(services.do_end_announcement(announcement, actor=_actor(request), via=_via(request))))


@router.delete(
    "/{announcement_id}",
    response={204: None, **errors(400, 401, 403, 404, 429)},
    auth=[ApiKeyAuth(), django_auth],
    summary="Delete an announcement",
)
def delete_announcement(request: HttpRequest, announcement_id: int):
    """Delete an announcement (the audit log keeps the record); it disappears live."""
    announcement, refusal = _managed_by_caller(request, announcement_id)
    if refusal is not None:
        return refusal
    services.do_delete_announcement(announcement, actor=_actor(request), via=_via(request))
    return Status(204, None)


@router.post(
    "/{announcement_id}/dismiss",
    response={204: None, **errors(400, 401, 403, 404)},
    auth=django_auth,
    summary="Dismiss an announcement for me, on every device",
)
def dismiss_announcement(request: HttpRequest, announcement_id: int):
    """Close an announcement for the signed-in user on every device (not for critical banners)."""
    announcement = services.visible_to(request.user).select_related("tenant").filter(pk=announcement_id).first()
    if announcement is None:
        return Status(404, {"detail": "No such announcement."})
    try:
        services.do_dismiss_announcement(announcement, request.user)
    except PermissionDenied as error:
        return Status(403, {"detail": str(error)})
    return Status(204, None)
