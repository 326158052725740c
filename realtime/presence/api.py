"""``GET /api/v1/presence``: who of a tenant's members is online now (API key or session)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from ninja.security import django_auth
from redis.exceptions import RedisError

from accounts.api_auth import ApiKeyAuth
from accounts.models import ApiKey
from accounts.tenancy import resolve_membership
from liveplatform.api_schemas import errors

from .services import online_members

logger = logging.getLogger(__name__)
router = Router(tags=["presence"])


class OnlineMemberOut(Schema):
    user: int
    email: str
    since: datetime


class PresenceOut(Schema):
    tenant: str
    online: list[OnlineMemberOut]


@router.get(
    "",
    auth=[ApiKeyAuth(), django_auth],
    response={200: PresenceOut, **errors(400, 401, 404, 429)},
    summary="Who of a tenant's members is online now",
)
def get_presence(
    request: HttpRequest,
    tenant: str | None = Query(
        None, max_length=50, description="tenant slug (a session's tenant; an API key has its own)"
    ),
):
    """Members with an open socket on any web process, longest online first; members who hide it are left out."""
    if isinstance(request.auth, ApiKey):
        if tenant and tenant != request.auth.tenant.slug:
            return Status(404, {"detail": "No such tenant."})
        found = request.auth.tenant
    else:
        if not tenant:
            return Status(400, {"detail": "Name the tenant: ?tenant=<slug>."})
        found = resolve_membership(request.user, tenant).tenant
    try:
        online = online_members(found.pk)
    except RedisError as error:
        logger.warning("presence unavailable, Redis did not answer: %s", error)
        return Status(503, {"detail": "Presence is unavailable for a moment. Retry shortly."})
    return Status(200, {"tenant": found.slug, "online": online})
