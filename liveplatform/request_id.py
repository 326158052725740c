"""Request ids: one id follows a piece of work from the HTTP API into Celery tasks and events.

The id comes from the proxy (nginx sets ``X-Request-ID: $request_id``) or is made
here, lives in a context variable for the duration of the request, is echoed in the
response, travels to Celery tasks in a message header (``before_task_publish`` /
``task_prerun``), and is attached to every log line (``logs.RequestIdFilter``) and to
the channel-layer message of each published event (``realtime.events``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
CELERY_HEADER = "request_id"
# Accept a caller's id only if it is short and harmless in a log line.
_VALID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def get_request_id() -> str | None:
    """The id of the request or task this code runs for, if any."""
    return _current.get()


def set_request_id(value: str | None) -> Any:
    """Bind an id to the current context; returns a token for ``reset_request_id``."""
    return _current.set(value)


def reset_request_id(token: Any) -> None:
    """Undo ``set_request_id`` (end of a request or task)."""
    _current.reset(token)


def new_request_id() -> str:
    """A fresh random id (32 hex digits, like nginx's ``$request_id``)."""
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """Keep a well-formed incoming id, else make a new one (ids end up in logs)."""
    return value if value and _VALID.match(value) else new_request_id()


class RequestIdMiddleware:
    """Give each HTTP request an id, expose it to logs and tasks, and echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = clean_request_id(request.headers.get(HEADER))
        request.request_id = request_id
        token = set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response.headers[HEADER] = request_id
        return response


# ------------------------------------------------------------------------------
# Celery: the publisher adds the id to the message headers; the worker binds it.
# ------------------------------------------------------------------------------
@before_task_publish.connect(dispatch_uid="liveplatform.request_id.publish")
def _add_request_id_header(headers: dict | None = None, **kwargs: Any) -> None:
    request_id = get_request_id()
    if request_id and headers is not None:
        headers.setdefault(CELERY_HEADER, request_id)


_task_tokens: dict[str, Any] = {}


@task_prerun.connect(dispatch_uid="liveplatform.request_id.prerun")
def _bind_request_id(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    incoming = getattr(getattr(task, "request", None), CELERY_HEADER, None)
    # A task started without a request (beat, another system) still gets an id, so
    # everything it logs and publishes can be found together.
    request_id = clean_request_id(incoming) if incoming else f"task-{task_id}"
    _task_tokens[task_id or ""] = set_request_id(request_id)


@task_postrun.connect(dispatch_uid="liveplatform.request_id.postrun")
def _unbind_request_id(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        try:
            reset_request_id(token)
        except ValueError:  # set in another context (eager mode): just clear it
            set_request_id(None)
