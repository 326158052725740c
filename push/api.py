"""``/api/v1/push``: a signed-in user's Web Push devices (the preferences page's control uses these)."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.security import django_auth
from pydantic import ConfigDict

from liveplatform.api_schemas import BodyIn, errors

from . import services
from .models import PushSubscription
from .vapid import vapid_keys

router = Router(tags=["push"])


class KeyOut(Schema):
    public_key: str = Field(description="the VAPID public key: the browser's applicationServerKey")


class SubscriptionKeys(BodyIn):
    model_config = ConfigDict(extra="ignore")
    p256dh: str = Field(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_\-]+=*$")
    auth: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_\-]+=*$")


class SubscriptionIn(BodyIn):
    """``PushSubscription.toJSON()`` as the browser gives it, and a name for the device."""

    model_config = ConfigDict(extra="ignore")  # expirationTime and whatever browsers add
    endpoint: str = Field(min_length=10, max_length=1000)
    keys: SubscriptionKeys
    device: str = Field("", max_length=120, description="shown in the device list, e.g. 'Firefox on Linux'")


class SubscriptionOut(Schema):
    id: int
    device: str
    created_at: datetime
    last_sent_at: datetime | None


def _out(subscription: PushSubscription) -> dict:
    return {
        "id": subscription.pk,
        "device": subscription.device,
        "created_at": subscription.created_at,
        "last_sent_at": subscription.last_sent_at,
    }


@router.get("/key", auth=django_auth, response={200: KeyOut, **errors(401)}, summary="The VAPID public key")
def get_key(request: HttpRequest):
    """The key a browser subscribes with; 503 when this platform has no VAPID keys (push is off)."""
    keys = vapid_keys()
    if keys is None:
        return Status(503, {"detail": "Web Push is not configured on this platform."})
    return Status(200, {"public_key": keys.public_key})


@router.get(
    "/subscriptions", auth=django_auth, response={200: list[SubscriptionOut], **errors(401)}, summary="My devices"
)
def list_subscriptions(request: HttpRequest):
    """The devices the signed-in user gets push notifications on, newest first."""
    return Status(200, [_out(s) for s in PushSubscription.objects.filter(user=request.user)])


@router.post(
    "/subscriptions",
    auth=django_auth,
    response={201: SubscriptionOut, **errors(400, 401, 403)},
    summary="Notify me on this device",
)
def create_subscription(request: HttpRequest, payload: SubscriptionIn):
    """Store this browser's push subscription for the signed-in user (again: updated, not doubled)."""
    try:
        subscription = services.do_subscribe(
            request.user,
            endpoint=payload.endpoint,
            p256dh=payload.keys.p256dh,
            auth=payload.keys.auth,
            device=payload.device,
        )
    except services.BadSubscription as error:
        return Status(400, {"detail": str(error), "errors": {"endpoint": [str(error)]}})
    return Status(201, _out(subscription))


@router.delete(
    "/subscriptions/{subscription_id}",
    auth=django_auth,
    response={204: None, **errors(400, 401, 403, 404)},
    summary="Stop notifying me on a device",
)
def delete_subscription(request: HttpRequest, subscription_id: int):
    """Forget one of the signed-in user's devices (another user's answers 404, as a missing one)."""
    if not services.do_unsubscribe(request.user, subscription_id):
        return Status(404, {"detail": "No such device."})
    return Status(204, None)
