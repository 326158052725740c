"""Reads and inserts on hot paths without the ORM's per-query cost: a socket handshake's queries, an API call's rows.

Building a queryset, compiling it and turning rows into model instances costs 0.1-1 ms of
CPU per query, where the indexed read itself takes about 20 µs: on a socket handshake the
ORM was most of the server's CPU (``python -m bench.connect_cost``, docs/benchmarks.md).
These helpers run plain SQL through Django's connection (same transaction handling and
error wrapping, placeholders ``%s`` on every backend) and convert values the way the ORM
would. Use them only for short reads of a fixed shape on a measured hot path, each with
a test that pins it to the ORM definition it mirrors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def fetch(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Every row of one query on the default database."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def placeholders(values: Sequence[Any]) -> str:
    """``%s, %s, ...`` for an ``IN (...)`` list; callers never pass an empty list."""
    if not values:
        raise ValueError("an IN list needs at least one value")
    return ", ".join(["%s"] * len(values))


def to_db_datetime(value: datetime) -> Any:
    """A datetime as a query parameter, exactly as the ORM sends it (naive UTC text on SQLite)."""
    return connection.ops.adapt_datetimefield_value(value)


def from_db_datetime(value: Any) -> datetime | None:
    """A datetime column's value as the ORM returns it: aware in UTC when ``USE_TZ``."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite without a declared type (an expression's result)
        value = parse_datetime(value)
    if settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, connection.timezone)
    return value


def from_db_json(value: Any) -> Any:
    """A JSONField column's value as the ORM returns it (Django loads jsonb and JSON text as text)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


@dataclass(frozen=True)
class _InsertPlan:
    """What inserting rows of one model needs besides their values, worked out once per model and backend."""

    fields: list[Field]
    head: str
    row_sql: str
    tail: str


_insert_plans: dict[tuple[type[Model], str], _InsertPlan] = {}


def _insert_plan(model: type[Model], db: BaseDatabaseWrapper) -> _InsertPlan:
    key = (model, db.vendor)
    plan = _insert_plans.get(key)
    if plan is None:
        meta = model._meta
        fields = [field for field in meta.concrete_fields if not field.primary_key]
        quote = db.ops.quote_name
        plan = _insert_plans[key] = _InsertPlan(
            fields=fields,
            head=f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) VALUES ",
            row_sql="(" + ", ".join(["%s"] * len(fields)) + ")",
            tail=f" RETURNING {quote(meta.pk.column)}",
        )
    return plan


def insert(objs: Sequence[Model]) -> None:
    """Insert new model instances and set their primary keys: ``bulk_create`` without its per-call cost.

    For hot paths that write a row or a few per call (a notification and its outbox
    row on every API call): the values are prepared by the fields themselves
    (``pre_save`` and ``get_db_prep_save``, as ``bulk_create`` does), and one plain
    ``INSERT … RETURNING`` per batch returns the ids in order, as
    ``bulk_create`` relies on as well, in batches of its size. No signals, like ``bulk_create``; models with
    an auto-incremented primary key only. The statement's text is worked out once per
    model, and the fields are given the connection itself rather than the
    ``django.db.connection`` proxy, which costs a lookup on every use.
    """
    if not objs:
        return
    db = connections[DEFAULT_DB_ALIAS]
    plan = _insert_plan(type(objs[0]), db)
    rows_per_statement = max(1, db.ops.bulk_batch_size(plan.fields, objs))  # as bulk_create batches
    alias = db.alias
    with db.cursor() as cursor:
        for start in range(0, len(objs), rows_per_statement):
            chunk = objs[start : start + rows_per_statement]
            params = [field.get_db_prep_save(field.pre_save(obj, True), db) for obj in chunk for field in plan.fields]
            cursor.execute(plan.head + ", ".join([plan.row_sql] * len(chunk)) + plan.tail, params)
            for obj, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = alias
