"""What the heartbeat needs from the store: which events were sent lately, and frames to resend.

The heartbeat (``realtime.hub``) checks every socket of a process at once, so it asks
the database once per beat and process, not once per socket: the 3,000-socket
benchmark spent more than half of the server's CPU on per-socket heartbeat queries
(docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser

from .audience import Audience
from .events import event_to_frame
from .models import Event, SendMark
from .services import Subscriptions, latest_cursor, subscriptions_for

# The most events one beat checks; a longer backlog is checked over the next beats.
MAX_WINDOW = 50_000


@dataclass
class SentWindow:
    """Durable events sent in ``(after, through]``, by the group that carried them.

    ``by_group`` maps a group to ``(cursor, tenant id)`` pairs in cursor order.
    ``sent_through`` is the send mark when the window was read: the next beat checks
    up to it, once every socket has had a beat's time to receive those events live.
    """

    after: int
    through: int
    sent_through: int
    by_group: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)


def sent_window(after: int | None, through: int | None) -> SentWindow:
    """The events sent in ``(after, through]`` (none when either is None), and the send mark now."""
    sent_through = SendMark.objects.filter(pk=1).values_list("sent_through", flat=True).first() or 0
    window = SentWindow(after or 0, through or 0, sent_through)
    if after is None or through is None or through <= after:
        return window
    rows = list(
        Event.objects.filter(id__gt=after, id__lte=through)
        .order_by("id")
        .values_list("id", "audience", "tenant_id", "user_id")[:MAX_WINDOW]
    )
    if len(rows) == MAX_WINDOW:
        window.through = rows[-1][0]
    for event_id, audience, tenant_id, user_id in rows:
        group = Audience(audience, tenant_id=tenant_id, user_id=user_id).group
        window.by_group.setdefault(group, []).append((event_id, tenant_id))
    return window


def frames_for(event_ids: set[int]) -> dict[int, str]:
    """The frames of these stored events, as replay sends them, by cursor."""
    frames = {}
    rows = Event.objects.filter(id__in=event_ids).select_related("tenant").order_by("id")
    for event in rows.iterator(chunk_size=2000):
        frames[event.id] = event_to_frame(event, event.tenant.slug if event.tenant else None)
    return frames


def resubscription(user: AbstractBaseUser) -> tuple[Subscriptions, int]:
    """A connected user's memberships now, and the newest cursor after reading them.

    A group the socket joins from here on is only owed events above that cursor:
    nothing its user could not see before joining is resent to it.
    """
    subs = subscriptions_for(user)
    return subs, latest_cursor()
