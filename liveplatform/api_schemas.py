"""What every operation of the HTTP API shares: the error body, the error answers it declares, the body base.

Every error the API gives, whoever produces it (a view, ninja's validation, its
authentication and CSRF check, the rate limit, the database handler, or Django below
ninja: ``liveplatform.middleware.JsonApiErrorsMiddleware``), is JSON of one shape,
``ErrorOut``. Each operation lists the codes it can answer with ``errors(...)`` in its
``response={...}``, so the OpenAPI document says so; tests/security/test_api_contract.py
holds the document to it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import BaseModel, BeforeValidator, StrictInt

# A database id (BIGINT). A larger number in a list is refused as input: SQL parameters
# cannot carry it (SQLite raised OverflowError, a 500, for `user_ids: [-10**22]`).
MAX_ID = 2**63 - 1
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    """What the document's ``format: date-time`` promises: a string with a date, a time and an offset."""
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with its offset, e.g. 2030-06-01T07:30:00Z")
    return value


# pydantic alone would also take 0 (the Unix epoch) or a date without a time.
DateTimeIn = Annotated[datetime, BeforeValidator(_rfc3339)]


class ErrorOut(Schema):
    """Every error answer of the API."""

    detail: str = Field(description="what went wrong, in words for people")
    errors: dict[str, list[str]] = Field(
        default_factory=dict, description="400 only: messages per field or parameter, by its name"
    )


def errors(*codes: int) -> dict[int, type[ErrorOut]]:
    """``response={...}`` entries for the error answers an operation can give; 503 (database down) is always one."""
    return {code: ErrorOut for code in sorted({*codes, 503})}


class BodyIn(BaseModel):
    """The base of every request body: a JSON object, validated as the schema says and nothing more.

    A pydantic model, not ninja's ``Schema``: ``Schema`` also reads attributes of any
    object it is given (for ORM rows), so a body of ``"AAA"`` became an announcement
    titled ``"AAA".title()``. Fields that must not be coerced (an id from ``false``, a
    flag from ``"yes"``, a time from ``0``) use ``Id``, ``StrictBool`` and ``DateTimeIn``.
    """
