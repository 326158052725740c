"""Logs an operator can search: JSON lines, request ids across processes, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re

from liveplatform.logs import JsonFormatter, RedactSecretsFilter, RequestIdFilter, logging_config
from liveplatform.request_id import _add_request_id_header, reset_request_id, set_request_id


def json_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("tests.deploy.json")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_json_line_carries_the_request_id_and_extra_fields_and_no_api_key():
    """Tests the production format: one parseable object per line, credentials masked."""
    logger, stream = json_logger()
    token = set_request_id("req-0123456789")
    try:
        logger.info(
            "key %s used with Authorization: Bearer abc.def-ghi",
            "lpk_Zm9vYmFyYmF6cXV4MTIz",
            extra={"user_id": 7, "tenants": "acme"},
        )
    finally:
        reset_request_id(token)
    line = json.loads(stream.getvalue().strip())
    assert line["request_id"] == "req-0123456789"
    assert line["level"] == "INFO" and line["logger"] == "tests.deploy.json"
    assert line["user_id"] == 7 and line["tenants"] == "acme"
    assert "Zm9vYmFy" not in line["message"] and "abc.def" not in line["message"]
    assert line["message"] == "key lpk_[redacted] used with Authorization: Bearer [redacted]"


def test_outside_a_request_the_request_id_is_a_dash_in_the_plain_format():
    """Tests the development format: readable, with the request id in brackets."""
    config = logging_config("plain", "INFO")
    fmt = config["formatters"]["plain"]["format"]
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "x"})
    RequestIdFilter().filter(record)
    assert logging.Formatter(fmt).format(record).endswith("INFO x [-] hello")


def test_every_response_carries_a_request_id_and_a_bad_one_is_replaced(client, db):
    """Tests the middleware: a well-formed caller id is kept, anything else gets a fresh id."""
    kept = client.get("/healthz", HTTP_X_REQUEST_ID="edge-4f2a9c1e")
    assert kept.headers["X-Request-ID"] == "edge-4f2a9c1e"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID='"><script>')
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])
    fresh = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["X-Request-ID"])
    assert fresh.headers["X-Request-ID"] != replaced.headers["X-Request-ID"]


def test_error_responses_logged_after_the_middleware_still_carry_the_request_id(client, db, caplog):
    """Tests django.request's 404 line, written after the request's context has ended."""
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get("/no-such-page/", HTTP_X_REQUEST_ID="edge-404-0001")
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    record.request_id = None
    RequestIdFilter().filter(record)
    assert record.request_id == "edge-404-0001"


def test_a_task_queued_during_a_request_carries_its_id_in_the_message_headers():
    """Tests the publishing half of the Celery hand-over (the worker half is in test_scale_out)."""
    headers: dict = {}
    _add_request_id_header(headers=headers)
    assert headers == {}
    token = set_request_id("req-abcdef012345")
    try:
        _add_request_id_header(headers=headers)
    finally:
        reset_request_id(token)
    assert headers == {"request_id": "req-abcdef012345"}
