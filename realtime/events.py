"""The one publish path: everything that reaches a browser goes through this module.

Who may call it: services (``do_*`` functions), signal receivers through those
services, views, the HTTP API and Celery tasks. Nothing else sends events to sockets.
Callers name the audience explicitly; choosing it is a security decision.

How an event travels::

    publish() ──(inside a transaction: an outbox row now, the rest on commit)──▶ _deliver()
        stream store (realtime.streams): one Lua script on the Redis host that owns the
        audience's stream: offset + epoch, capped history, queued for the stream's group
    group ─▶ each server process's pump ─▶ RealtimeConsumer.deliver ─▶ socket

Durable events get an offset in their stream (one user, one tenant, one tenant's
admins, the platform): order and no-gap hold per stream, which is all a client can
observe, and there is no lock shared by the platform. Ephemeral events (progress
ticks) take the same script without an offset or history.

Crash safety: published inside a transaction, a durable event is first an
``OutboxEvent`` row in that transaction. A producer killed after its commit and before
its publish leaves the row; ``realtime.outbox.relay`` publishes it under the same
idempotency key, so it reaches its stream once. When Redis refuses a publish (an
outage), the events are written to the outbox too, and relayed once it is back.
Publishing never raises for a delivery failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from . import metrics, outbox
from .audience import Audience
from .layers import send_to_groups
from .models import AudienceKind
from .streams import Publication, StreamMessage, frame_text, stream_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingEvent:
    """An event on its way out: what happened, to whom, in which tenant."""

    type: str
    audience: Audience
    data: dict[str, Any] = field(default_factory=dict)
    tenant_id: int | None = None
    tenant_slug: str | None = None
    durable: bool = True


def make_event(
    event_type: str,
    data: dict[str, Any],
    *,
    audience: Audience,
    tenant: Any = None,
    durable: bool = True,
) -> OutgoingEvent:
    """Build an ``OutgoingEvent``; ``tenant`` is the Tenant the event happened in, if any."""
    return OutgoingEvent(
        type=event_type,
        audience=audience,
        data=data,
        tenant_id=getattr(tenant, "pk", None),
        tenant_slug=getattr(tenant, "slug", None),
        durable=durable,
    )


def publish(
    event_type: str,
    data: dict[str, Any],
    *,
    audience: Audience,
    tenant: Any = None,
    durable: bool = True,
) -> None:
    """Send one event to an audience; from inside a transaction, once it commits."""
    publish_many([make_event(event_type, data, audience=audience, tenant=tenant, durable=durable)])


def publish_many(events: Iterable[OutgoingEvent]) -> None:
    """Send many events in one round trip per Redis host (bulk producers); inside a transaction, on commit."""
    messages = [stream_message(event) for event in events]
    if not messages:
        return
    if connection.in_atomic_block:
        held = outbox.hold([message for message in messages if message.durable])
        transaction.on_commit(partial(_deliver, _with_keys(messages, held), held), robust=True)
    else:
        _deliver(messages, [])


async def apublish(
    event_type: str,
    data: dict[str, Any],
    *,
    audience: Audience,
    tenant: Any = None,
    durable: bool = True,
) -> None:
    """``publish`` for async code (consumers): the store's client is synchronous, so it runs on a thread."""
    event = make_event(event_type, data, audience=audience, tenant=tenant, durable=durable)
    await sync_to_async(publish_many, thread_sensitive=False)([event])


def send_control(audience: Audience, action: str, **payload: Any) -> None:
    """Tell the sockets of an audience to re-subscribe or close; users never see these frames.

    Like ``publish``, it waits for the surrounding transaction to commit, so a socket
    re-reading its memberships sees the change. Rare, so it goes through the channel
    layer's own ``group_send``.
    """
    message = {"type": "realtime.control", "action": action, **payload}
    if connection.in_atomic_block:
        transaction.on_commit(partial(_send_control, audience.group, message), robust=True)
    else:
        _send_control(audience.group, message)


def _send_control(group: str, message: dict[str, Any]) -> None:
    try:
        _run_from_sync(send_to_groups, get_channel_layer(), [(group, message)])
    except Exception:  # noqa: BLE001 - sockets re-read their state on reconnect
        logger.warning("could not send %s to %s: %s", message.get("action"), group, "the channel layer failed")


def _send_to_layer(messages: Sequence[StreamMessage], publications: Sequence[Publication]) -> None:
    """Hand publications to a channel layer that keeps no groups in Redis (the in-memory layer), in order."""
    now = time.time()
    sends = []
    for message, publication in zip(messages, publications, strict=True):
        sent = {"type": "realtime.event", "event_type": message.event_type, "ts": now, "text": message.frame_rest}
        if message.durable:
            sent["text"] = frame_text(message.stream, publication.offset, publication.epoch, message.frame_rest)
            sent.update(stream=message.stream, offset=publication.offset, epoch=publication.epoch)
        sends.append((message.stream, sent))
    _run_from_sync(send_to_groups, get_channel_layer(), sends)


def _run_from_sync(func: Any, *args: Any) -> None:
    """Run a channel-layer coroutine from sync code, also on a thread that runs an event loop.

    ``async_to_sync`` refuses a thread with a running loop (Playwright's sync API in
    tests, a sync helper called from async code); there it runs on a helper thread and
    is waited for, so the caller's order still holds.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(func)(*args)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(async_to_sync(func), *args).result()


def envelope(event_id: int | None, event_type: str, tenant_slug: str | None, ts: datetime, data: Any) -> str:
    """Serialise a frame that has no stream position (control frames, snapshots, ephemeral events)."""
    return json.dumps(
        {"id": event_id, "type": event_type, "tenant": tenant_slug, "ts": ts.isoformat(), "data": data},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )


def frame_rest(event_type: str, tenant_slug: str | None, ts: datetime, data: Any) -> str:
    """A durable frame after its position fields; the stream store puts ``{"stream":…,"offset":…,…,`` in front."""
    return json.dumps(
        {"type": event_type, "tenant": tenant_slug, "ts": ts.isoformat(), "data": data},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )[1:]


def stream_message(event: OutgoingEvent) -> StreamMessage:
    """The stream store's message for an event: its stream is its audience's group."""
    now = timezone.now()
    if not event.durable:
        return StreamMessage(
            event.audience.group,
            envelope(None, event.type, event.tenant_slug, now, event.data),
            event_type=event.type,
            durable=False,
        )
    # A user's own event remembers its tenant, so a replay can leave out a tenant the user has left.
    tenant_id = event.tenant_id if event.tenant_id is not None else event.audience.tenant_id
    extra = str(tenant_id) if event.audience.kind == AudienceKind.USER and tenant_id is not None else ""
    return StreamMessage(
        event.audience.group,
        frame_rest(event.type, event.tenant_slug, now, event.data),
        event_type=event.type,
        extra=extra,
    )


def _with_keys(messages: list[StreamMessage], held: list[outbox.Held]) -> list[StreamMessage]:
    """The messages, each durable one with the idempotency key of its outbox row."""
    keys = iter(held)
    return [
        StreamMessage(**{**message.__dict__, "idempotency_key": next(keys).idempotency_key})
        if message.durable
        else message
        for message in messages
    ]


def _deliver(messages: Sequence[StreamMessage], held: Sequence[outbox.Held]) -> None:
    store = stream_store()
    try:
        publications = store.publish_many(messages)
        if not store.queues_for_groups:
            _send_to_layer(messages, publications)
    except RedisError as error:
        durable = [message for message in messages if message.durable]
        metrics.PUBLISH_FAILURES.inc(len(messages))
        if not held and durable:
            outbox.hold(durable, autocommit=True)
        outbox.note_outage(error, len(durable))
        return
    if held:
        outbox.release(held)
    outbox.note_recovered()
    dropped = sum(publication.dropped for publication in publications)
    if dropped:
        metrics.OVER_CAPACITY_DROPS.inc(dropped)
    for message in messages:
        metrics.EVENTS_PUBLISHED.labels(type=message.event_type).inc()
    durable = any(message.durable for message in messages)
    # One line per batch; the log filter adds the request id. Progress ticks only at DEBUG.
    logger.log(
        logging.INFO if durable else logging.DEBUG,
        "published %d event(s): %s",
        len(messages),
        ",".join(sorted({message.event_type for message in messages})),
    )
