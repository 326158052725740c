"""The outbox: durable events kept in the database until their stream has them.

A producer's transaction writes its events here (``hold``) and publishes them once it
commits; a publish that succeeded queues them for deletion (``release``): a thread of the
process deletes the rows of every publish of the last few milliseconds in one statement
(``liveplatform.batcher``). What stays behind is a producer that died between commit
and publish (or before its rows' deletion), or a publish Redis refused: ``relay``
(every ``REALTIME_OUTBOX_RELAY_SECONDS`` from Celery beat) publishes rows older than
``REALTIME_OUTBOX_RELAY_AFTER_SECONDS`` under their idempotency keys, so an event
its producer did publish before dying is not appended twice.

The relay is not a serialisation point: producers never wait for it, each row is
published on its own stream, and on PostgreSQL concurrent relays skip each other's
rows (``SKIP LOCKED``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from liveplatform import rawsql
from liveplatform.batcher import Batcher

from .models import OutboxEvent
from .streams import StreamMessage, stream_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """An outbox row written for one message: its id, and the key its publish carries."""

    id: int
    idempotency_key: str


def hold(messages: Sequence[StreamMessage], *, autocommit: bool = False) -> list[Held]:
    """Write an outbox row per durable message, in the caller's transaction (or on its own with ``autocommit``)."""
    if not messages:
        return []
    now = timezone.now()
    rows = [
        OutboxEvent(
            stream=message.stream,
            event_type=message.event_type,
            frame_rest=message.frame_rest,
            extra=message.extra,
            idempotency_key=message.idempotency_key or uuid.uuid4().hex,
            created_at=now,
        )
        for message in messages
    ]
    try:
        rawsql.insert(rows)
    except Exception:
        if not autocommit:
            raise  # the caller's transaction fails with it: nothing was published
        logger.exception("could not keep %d event(s) in the outbox; they are lost", len(rows))
        return []
    return [Held(row.id, row.idempotency_key) for row in rows]


def release(held: Sequence[Held]) -> None:
    """Let the rows of messages now in their streams be deleted, with others' in the next batch."""
    _releases.add(row.id for row in held)


def _delete(ids: list[int]) -> None:
    """One DELETE for a batch of published rows (plain SQL: the ORM's collector cost more than the statement)."""
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({rawsql.placeholders(ids)})", ids)
    except Exception:  # noqa: BLE001 - the relay publishes them again, idempotently
        logger.warning("could not delete %d published outbox row(s); the relay will", len(ids))


# Batches of at most 900 ids: one IN list under SQLite's parameter limit.
_releases: Batcher[int] = Batcher("outbox-release", _delete)


def relay(older_than: float | None = None, batch: int = 500) -> int:
    """Publish outbox rows their producers left behind (older than ``older_than`` seconds); returns how many."""
    age = settings.REALTIME["OUTBOX_RELAY_AFTER_SECONDS"] if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=age)
    relayed = 0
    while True:
        with transaction.atomic():
            rows = OutboxEvent.objects.filter(created_at__lte=cutoff).order_by("id")
            if connection.features.has_select_for_update_skip_locked:
                rows = rows.select_for_update(skip_locked=True)
            rows = list(rows[:batch])
            if not rows:
                return relayed
            messages = [
                StreamMessage(
                    row.stream,
                    row.frame_rest,
                    event_type=row.event_type,
                    extra=row.extra,
                    idempotency_key=row.idempotency_key,
                )
                for row in rows
            ]
            try:
                stream_store().publish_many(messages)
            except RedisError as error:
                note_outage(error, 0)
                return relayed
            OutboxEvent.objects.filter(id__in=[row.id for row in rows]).delete()
        relayed += len(rows)
        logger.warning("relayed %d event(s) their producer stored but did not publish", len(rows))
        if len(rows) < batch:
            return relayed


# ------------------------------------------------------------------------------
# One log line when publishing starts failing, one when it works again
# ------------------------------------------------------------------------------
_outage_lock = threading.Lock()
_outage: dict[str, int] = {}


def note_outage(error: BaseException, kept: int) -> None:
    """Count a refused publish; log only the first of an outage (a traceback per event would flood the log)."""
    with _outage_lock:
        first = not _outage
        _outage["failures"] = _outage.get("failures", 0) + 1
        _outage["kept"] = _outage.get("kept", 0) + kept
    if first:
        logger.error("publishing failed (%s); events are kept in the outbox until Redis answers", error)


def note_recovered() -> None:
    """After an outage, one line saying it is over and what it cost."""
    if not _outage:
        return
    with _outage_lock:
        failures, kept = _outage.get("failures", 0), _outage.get("kept", 0)
        _outage.clear()
    logger.warning(
        "publishing works again after %d refused publish(es); %d event(s) kept for the relay", failures, kept
    )
