from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """The real-time core: the socket, the one publish path, streams and replay."""

    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.signals import setting_changed

        from . import receivers  # noqa: F401
        from .presence.services import forget_settings as forget_presence_settings
        from .streams import forget_settings

        setting_changed.connect(forget_settings, dispatch_uid="realtime.streams.forget_settings")
        setting_changed.connect(forget_presence_settings, dispatch_uid="realtime.presence.forget_settings")

        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "realtime.prune_tickets", {"task": "realtime.tasks.prune_tickets", "schedule": 3600.0}
        )
        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "realtime.relay_outbox",
            {"task": "realtime.tasks.relay_outbox", "schedule": settings.REALTIME["OUTBOX_RELAY_SECONDS"]},
        )
