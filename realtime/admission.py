"""Who may open a browser socket: the session cookie's user, their handshake budget, their groups.

Decided in one trip to the sockets' database threads (``realtime.auth`` calls
``admit_browser_socket``): Channels' ``AuthMiddlewareStack`` loaded the session and the
user in a hop of their own, on the one thread every ``database_sync_to_async`` call of
the process shares with Django's sync views, and the consumer then made another hop
to count the handshake and read the memberships. A reconnect storm of 3,000 sockets
queued all of those behind each other (docs/benchmarks.md, ``bench/connect_cost.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Collection
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.backends import db as db_sessions
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, router
from django.db.models.manager import BaseManager
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from liveplatform import rawsql

from .services import Subscriptions, note_connect_attempt, stream_tops, subscriptions_for
from .streams import Position


@dataclass
class Admission:
    """A browser socket's handshake decided: its user and groups, or why it is refused."""

    user: AbstractBaseUser | None = None
    subs: Subscriptions | None = None
    # The top position of each stream the user follows and the client named no position in.
    tops: dict[str, Position] = dataclasses.field(default_factory=dict)
    # The reason for the REFUSED metric: "anonymous", "too_many_connects" or
    # OVERLOADED; empty if admitted.
    refused: str = ""


# A handshake that queued too long for the database threads: "try again later", not 403.
OVERLOADED = "overloaded"


def admit_browser_socket(
    session_key: str | None, arrived: float | None = None, known: Collection[str] = ()
) -> Admission:
    """Authenticate a browser socket by its session cookie, count the handshake, read its groups.

    Also reads the top of each stream the user follows that is not ``known`` (the
    client sent no position in it), so the consumer can join and accept without a
    second trip through the threads' queue.

    Refused (the handshake is answered 403): no session, an expired or logged-out
    one, a session whose password hash no longer matches, an unknown or deactivated
    user, or a user over ``CONNECTS_PER_MINUTE``. A handshake that ``arrived``
    (``time.monotonic()``) more than ``HANDSHAKE_QUEUE_SECONDS`` ago is refused as
    ``OVERLOADED`` before any database work: in a reconnect storm the queue drains
    at once instead of every late handshake being worked on and then dropped by the
    ASGI server's handshake timeout.
    """
    if arrived is not None and time.monotonic() - arrived > settings.REALTIME["HANDSHAKE_QUEUE_SECONDS"]:
        return Admission(refused=OVERLOADED)
    user = user_for_session(session_key)
    if user is None:
        return Admission(refused="anonymous")
    if not note_connect_attempt(user.pk):
        return Admission(user, refused="too_many_connects")
    subs = subscriptions_for(user)
    unknown = subs.groups - set(known)
    return Admission(user, subs, stream_tops(unknown) if unknown else {})


def user_for_session(session_key: str | None) -> AbstractBaseUser | None:
    """The active user a session names, decided as ``django.contrib.auth.get_user`` decides it.

    Read-only: a session that fails verification is refused here and flushed by the
    next HTTP request, as Django does; a session verified by a fallback secret is
    accepted and rotated by that request.
    """
    data = _session_data(session_key)
    try:
        user_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
        backend_path = data[BACKEND_SESSION_KEY]
    except (KeyError, ValueError, TypeError, ValidationError):
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    backend = load_backend(backend_path)
    if type(backend).get_user is ModelBackend.get_user and _plain_user_lookup():
        user = _user_by_pk(user_id)
        user = user if user is not None and backend.user_can_authenticate(user) else None
    else:
        user = backend.get_user(user_id)
    if user is None or not getattr(user, "is_active", False):
        return None
    if hasattr(user, "get_session_auth_hash"):
        session_hash = data.get(HASH_SESSION_KEY)
        if not session_hash:
            return None
        hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
        if not any(constant_time_compare(session_hash, known) for known in hashes):
            return None
    return user


def _session_data(session_key: str | None) -> dict[str, Any]:
    """The decoded data of an unexpired session, or {} (unknown, expired, tampered)."""
    if not session_key:
        return {}
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if type(store) is not db_sessions.SessionStore:
        return store.load()
    if store.session_key is None:  # not a well-formed key: load() would find nothing either
        return {}
    # The database engine's load() with a plain query: the same row, expiry and decoding.
    rows = rawsql.fetch(_session_sql(), [store.session_key, rawsql.to_db_datetime(timezone.now())])
    return store.decode(rows[0][0]) if rows else {}


@functools.cache
def _session_sql() -> str:
    table = db_sessions.SessionStore.get_model_class()._meta.db_table
    return f"SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s"


def _user_by_pk(user_id: Any) -> AbstractBaseUser | None:
    """``UserModel._default_manager.get(pk=user_id)`` (None when missing) with a plain query."""
    model, sql, columns = _user_loader()
    rows = rawsql.fetch(sql, [user_id])
    if not rows:
        return None
    values = []
    for value, (column, converters) in zip(rows[0], columns, strict=True):
        for convert in converters:
            value = convert(value, column, connection)
        values.append(value)
    return model.from_db(connection.alias, [field.attname for field in model._meta.concrete_fields], values)


@functools.cache
def _plain_user_lookup() -> bool:
    """Whether ``_default_manager.get(pk=...)`` is a plain read of the default database (no manager filter)."""
    model = get_user_model()
    manager = model._default_manager
    return type(manager).get_queryset is BaseManager.get_queryset and router.db_for_read(model) == DEFAULT_DB_ALIAS


@functools.cache
def _user_loader() -> tuple[type[AbstractBaseUser], str, list[tuple[Any, list[Any]]]]:
    """The user model, its SELECT by primary key, and each column's converters (as the ORM applies them)."""
    model = get_user_model()
    meta = model._meta
    fields = meta.concrete_fields
    sql = f"SELECT {', '.join(field.column for field in fields)} FROM {meta.db_table} WHERE {meta.pk.column} = %s"
    columns = []
    for field in fields:
        column = field.get_col(meta.db_table)
        columns.append((column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
    return model, sql, columns
