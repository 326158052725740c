"""The Celery application: configured from Django settings, tasks found in each app."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_init, worker_process_shutdown
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from liveplatform import kombu_clients, kombu_guard

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liveplatform.settings.dev")

# What handing a task over raises while Redis is down (after the short retry policy in
# settings): kombu's error for the broker, and the RuntimeError Celery's Redis result
# backend raises when it cannot subscribe to the task's result.
BROKER_UNAVAILABLE = (OperationalError, RedisConnectionError, RedisTimeoutError, RuntimeError)

kombu_guard.install()  # a worker must outlive a Redis restart (see the module)
kombu_clients.install()  # one Redis client per channel, not one per command

app = Celery("liveplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(loglevel: int | str | None = None, **kwargs: Any) -> None:
    """Workers and beat log like the web processes (JSON in production, request ids).

    At the level of ``-l`` when it is given: the "realtime" queue's worker runs with
    ``-l WARNING``, since three INFO lines per task (received, published, succeeded)
    at hundreds of tasks a second are noise that costs a tenth of each task.
    """
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task: Any = None, **kwargs: Any) -> None:
    """Treat each task as Django treats a request: keep the connection while CONN_MAX_AGE allows.

    Closes a connection that is older than ``DATABASE_CONN_MAX_AGE`` (0: every time, as
    Celery itself would), broken, or left inside a transaction; with health checks on,
    a connection that went away (a database restart) is replaced before the next task.
    Eager tasks run inside the caller's transaction and are left alone.
    """
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
def serve_worker_metrics(**kwargs: Any) -> None:
    """Expose the pool processes' metrics on CELERY_METRICS_PORT (see liveplatform/observability.py)."""
    from liveplatform.observability import serve_worker_metrics

    serve_worker_metrics()


@worker_process_shutdown.connect
def forget_worker_process(pid: int | None = None, **kwargs: Any) -> None:
    """Drop an exited pool process's live gauges from the multiprocess metrics."""
    from liveplatform.observability import forget_worker_process

    forget_worker_process(pid or os.getpid())


def restore_unacknowledged(delivered_before: float, broker_url: str | None = None) -> int:
    """Put back on their queues the tasks delivered before ``delivered_before`` and never acknowledged.

    Tasks are acknowledged after they run (``CELERY_TASK_ACKS_LATE``). On Redis, a
    message a dead worker had taken stays in kombu's ``unacked`` set until its
    visibility timeout (an hour) has passed. ``runplatform`` calls this when the worker
    it supervises died, or Redis came back, and no other worker shares that Redis: the
    tasks run again at once. Only messages delivered before the death are restored, so
    the new worker's own are left alone. Returns how many were restored. ``broker_url``
    names another broker than the settings' one.
    """
    with app.connection_for_write(broker_url) as connection:
        channel = connection.default_channel
        client = channel.client
        tags = client.zrangebyscore(channel.unacked_index_key, 0, delivered_before)
        for tag in tags:
            channel.qos.restore_by_tag(tag.decode() if isinstance(tag, bytes) else tag, client)
        return len(tags)
