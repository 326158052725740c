"""Structured logging: JSON lines in production, readable lines in development.

``LOG_FORMAT=json`` (the production default) writes one JSON object per line with
the time, level, logger, message, request id and any ``extra={...}`` fields, which
log shippers index without parsing. ``LOG_FORMAT=plain`` (the development default)
writes the same information as text. Both pass every record through
``RedactSecretsFilter`` so API keys and bearer tokens never reach a log.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from .request_id import get_request_id

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}

# API keys (``lpk_…``), bearer tokens and session/CSRF cookie values.
_SECRET_PATTERNS = [
    (re.compile(r"lpk_[A-Za-z0-9_\-]{6,}"), "lpk_[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)((?:sessionid|csrftoken|password|secret|token)[\"']?\s*[=:]\s*[\"']?)[^\s\"';,&]+"),
        r"\1[redacted]",
    ),
]


# Every pattern above needs one of these words (lower-cased): most lines have none, and
# looking for them costs a fraction of running the three expressions on every record.
_SECRET_HINTS = ("lpk_", "bearer", "sessionid", "csrftoken", "password", "secret", "token")


def redact(text: str) -> str:
    """Mask anything that looks like a credential in ``text``."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id (``-`` outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs 4xx/5xx after the middleware has returned; its record
            # carries the request, which carries the id.
            from_request = getattr(getattr(record, "request", None), "request_id", None)
            record.request_id = get_request_id() or from_request or "-"
        return True


class RedactSecretsFilter(logging.Filter):
    """Rewrite the formatted message with credentials masked (keys must never be logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is not ours to fix here
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or get_request_id(),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class ChannelLayerOverCapacityHandler(logging.Handler):
    """Count messages channels-redis dropped because a socket's queue was full.

    ``group_send`` drops silently apart from one INFO line
    (``"%s of %s channels over capacity in group %s"``); this handler, attached to the
    ``channels_redis.core`` logger, turns that line into a Prometheus counter.
    """

    MESSAGE = "%s of %s channels over capacity in group %s"

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != self.MESSAGE or not record.args:
            return
        from realtime import metrics

        try:
            dropped = int(record.args[0])
        except (TypeError, ValueError, IndexError):
            return
        metrics.OVER_CAPACITY_DROPS.inc(dropped)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict for Django, reused by Celery (see ``liveplatform.celery``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "liveplatform.logs.RequestIdFilter"},
            "redact": {"()": "liveplatform.logs.RedactSecretsFilter"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
            "json": {"()": "liveplatform.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                "filters": ["request_id", "redact"],
            },
            "over_capacity": {"class": "liveplatform.logs.ChannelLayerOverCapacityHandler", "level": "INFO"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.channels.server": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            # INFO so the over-capacity line reaches the counter; it still goes to the console.
            "channels_redis.core": {"handlers": ["over_capacity"], "level": "INFO"},
        },
    }
