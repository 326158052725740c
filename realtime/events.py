"""The one publish path: everything that reaches a browser goes through this module.

Who may call it: services (``do_*`` functions), signal receivers through those
services, views, the HTTP API and Celery tasks. Nothing else calls ``group_send``.
Callers name the audience explicitly; choosing it is a security decision.

How an event travels::

    publish() ──(inside a transaction: on commit)──▶ _deliver()
        durable:   publish lock ─▶ INSERT Event (the cursor) ─▶ COMMIT ─▶ group_send ─▶ unlock
        ephemeral: group_send (no cursor, not replayed)
    group_send ─▶ channel layer (Redis) ─▶ RealtimeConsumer.realtime_event ─▶ socket

Durable events are written and sent under one lock, so the cursor order is the
commit order is the send order: a reconnecting client that resumes after cursor N
can never miss an event numbered below one it has already seen. If sending fails
(Redis down), the event is already stored and clients get it by replay when they
reconnect; publishing never raises for a delivery failure.

A publisher can die between its commit and its send (a worker killed with -9). The
``SendMark`` row says how far sending got; the next publisher, holding the lock,
sends those stored-but-unsent events before its own, so sockets still see cursor
order (``docs/reliability.md``).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from liveplatform.request_id import get_request_id

from . import metrics
from .audience import Audience
from .layers import send_to_groups
from .models import Event, SendMark

logger = logging.getLogger(__name__)

# Arbitrary, fixed key for PostgreSQL's advisory lock that serialises durable publishes.
_PG_PUBLISH_LOCK_KEY = 7_310_442_615
# A publish must never hang a request or a task for long if Redis stops answering.
SEND_TIMEOUT_SECONDS = 5.0
# Stored-but-unsent events the next publisher resends before its own. More than this
# means a long Redis outage, not a crashed publisher: sockets catch up by replay then.
MAX_UNSENT_RESEND = 200


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
    """Send many events with one lock, one INSERT and one event loop (bulk producers)."""
    events = list(events)
    if not events:
        return
    if connection.in_atomic_block:
        transaction.on_commit(partial(_deliver, events), robust=True)
    else:
        _deliver(events)


async def apublish(
    event_type: str,
    data: dict[str, Any],
    *,
    audience: Audience,
    tenant: Any = None,
    durable: bool = True,
) -> None:
    """``publish`` for async code (consumers): durable events still go through the store."""
    event = make_event(event_type, data, audience=audience, tenant=tenant, durable=durable)
    if durable:
        await sync_to_async(_deliver)([event])
    else:
        await _send_all([(event.audience.group, _message(event, None, timezone.now()))])


def send_control(audience: Audience, action: str, **payload: Any) -> None:
    """Tell the sockets of an audience to re-subscribe or close; users never see these frames.

    Like ``publish``, it waits for the surrounding transaction to commit, so a socket
    re-reading its memberships sees the change.
    """
    message = {"type": "realtime.control", "action": action, **payload}
    if connection.in_atomic_block:
        transaction.on_commit(partial(_send, [(audience.group, message)]), robust=True)
    else:
        _send([(audience.group, message)])


def envelope(event_id: int | None, event_type: str, tenant_slug: str | None, ts: datetime, data: Any) -> str:
    """Serialise the frame every server message uses, once per event (not once per socket)."""
    return json.dumps(
        {"id": event_id, "type": event_type, "tenant": tenant_slug, "ts": ts.isoformat(), "data": data},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )


def event_to_frame(event: Event, tenant_slug: str | None) -> str:
    """The frame for a stored event, as replay sends it (identical to the live one)."""
    return envelope(event.id, event.type, tenant_slug, event.created_at, event.data)


def _message(event: OutgoingEvent, event_id: int | None, ts: datetime) -> dict[str, Any]:
    return {
        "type": "realtime.event",
        "id": event_id,
        "event_type": event.type,
        "text": envelope(event_id, event.type, event.tenant_slug, ts, event.data),
        # For the publish-to-send latency metric and for tracing in logs; not sent to clients.
        "ts": ts.timestamp(),
        "request_id": get_request_id(),
    }


def _deliver(events: Sequence[OutgoingEvent]) -> None:
    durable = [event for event in events if event.durable]
    ephemeral = [event for event in events if not event.durable]
    if durable:
        with publish_lock():
            rows = _store(durable)
            unsent = _unsent_before(rows[0].id)
            messages = [_stored_message(row) for row in unsent] + [
                (event.audience.group, _message(event, row.id, row.created_at))
                for event, row in zip(durable, rows, strict=True)
            ]
            if _send(messages):
                _mark_sent(rows[-1].id)
                if unsent:
                    logger.warning("sent %d event(s) a publisher stored but never sent", len(unsent))
    if ephemeral:
        now = timezone.now()
        _send([(event.audience.group, _message(event, None, now)) for event in ephemeral])
    for event in events:
        metrics.EVENTS_PUBLISHED.labels(type=event.type).inc()
    # One line per batch; the log filter adds the request id. Progress ticks only at DEBUG.
    logger.log(
        logging.INFO if durable else logging.DEBUG,
        "published %d event(s): %s",
        len(events),
        ",".join(sorted({event.type for event in events})),
    )


def _store(events: Sequence[OutgoingEvent]) -> list[Event]:
    now = timezone.now()
    rows = [
        Event(
            type=event.type,
            audience=event.audience.kind,
            tenant_id=event.tenant_id if event.tenant_id is not None else event.audience.tenant_id,
            user_id=event.audience.user_id,
            data=event.data,
            created_at=now,
        )
        for event in events
    ]
    if len(rows) == 1:
        # One INSERT is atomic by itself: no BEGIN and COMMIT around it (a per-user event).
        rows[0].save(force_insert=True)
        return rows
    with transaction.atomic():
        return Event.objects.bulk_create(rows)


# The send mark this process wrote last, by database: see _unsent_before.
_last_mark: dict[str, int] = {}


def _database_key() -> str:
    return f"{connection.vendor}:{connection.settings_dict.get('HOST') or ''}:{connection.settings_dict['NAME']}"


def _unsent_before(first_id: int) -> list[Event]:
    """Stored events past the send mark and before ``first_id``: their publisher died before sending them.

    Called under the publish lock, once this publisher has stored its own events from
    ``first_id`` on, so no other publisher is between commit and send. Cursors are
    handed out in lock order: when this process wrote the mark last and its value is
    ``first_id - 1``, nobody has stored an event since, and there is nothing to read.
    Otherwise (another publisher came between, or a gap in the numbering) one query.
    """
    if not connection.in_atomic_block and _last_mark.get(_database_key()) == first_id - 1:
        return []
    # Without a mark row the subquery is NULL and matches nothing.
    sent_through = Subquery(SendMark.objects.filter(pk=1).values("sent_through")[:1])
    unsent = list(
        Event.objects.filter(id__gt=sent_through, id__lt=first_id)
        .select_related("tenant")
        .order_by("id")[: MAX_UNSENT_RESEND + 1]
    )
    return unsent if len(unsent) <= MAX_UNSENT_RESEND else []


def _mark_sent(cursor: int) -> None:
    if not SendMark.objects.filter(pk=1).update(sent_through=cursor):
        SendMark.objects.create(pk=1, sent_through=cursor)
    # Remembered only once written for good: inside a transaction (a test's, or a caller
    # running on-commit work itself) the write may still be rolled back.
    if connection.in_atomic_block:
        _last_mark.pop(_database_key(), None)
    else:
        _last_mark[_database_key()] = cursor


def _stored_message(row: Event) -> tuple[str, dict[str, Any]]:
    """The group and channel-layer message for an event read back from the store."""
    audience = Audience(row.audience, tenant_id=row.tenant_id, user_id=row.user_id)
    outgoing = OutgoingEvent(
        type=row.type,
        audience=audience,
        data=row.data,
        tenant_id=row.tenant_id,
        tenant_slug=row.tenant.slug if row.tenant else None,
    )
    return audience.group, _message(outgoing, row.id, row.created_at)


def _send(messages: list[tuple[str, dict[str, Any]]]) -> bool:
    """Hand messages to the channel layer in order; False (logged, counted) if that failed."""
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            async_to_sync(_send_all)(messages)
        else:
            # A sync caller on a thread that runs an event loop (async_to_sync refuses
            # there): send from a helper thread and wait, so ordering still holds.
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(async_to_sync(_send_all), messages).result()
    except Exception:
        metrics.PUBLISH_FAILURES.inc(len(messages))
        logger.exception("Could not deliver %d event(s) live; clients will catch up by replay", len(messages))
        return False
    return True


async def _send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
    # In order, and batched where the layer can (a tenant-wide notification is one
    # message per member): realtime.layers.send_to_groups.
    await asyncio.wait_for(
        send_to_groups(get_channel_layer(), messages), timeout=SEND_TIMEOUT_SECONDS + 0.001 * len(messages)
    )


@contextmanager
def publish_lock() -> Iterator[None]:
    """Serialise durable publishes across every process, so cursor order is send order."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_PG_PUBLISH_LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_PG_PUBLISH_LOCK_KEY])
    else:
        # SQLite is a single file on a single machine: an flock beside it does the job.
        lock_file = _lock_file()
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


_lock_files = threading.local()


def _lock_file() -> Any:
    """This thread's open publish lock file, opened once (not once per publish).

    flock excludes other open files of the same path, not other users of one open
    file: each thread, and each forked process, needs a file of its own.
    """
    path, pid = settings.VAR_DIR / "publish.lock", os.getpid()
    held = getattr(_lock_files, "held", None)
    if held is None or held[0] != (path, pid):
        held = _lock_files.held = ((path, pid), open(path, "a"))  # noqa: SIM115 - kept open for the thread
    return held[1]
