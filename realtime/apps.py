from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """The real-time core: the socket, the one publish path, durable events and replay."""

    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from . import receivers  # noqa: F401

        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "realtime.prune_events", {"task": "realtime.tasks.prune_events", "schedule": 3600.0}
        )
