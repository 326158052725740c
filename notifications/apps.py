from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """In-app notifications: the inbox, the bell, preferences and the trigger API."""

    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from realtime.services import register_snapshot

        from . import receivers  # noqa: F401
        from .snapshot import counts_snapshot

        register_snapshot(counts_snapshot)
        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "notifications.send_email_digests",
            {
                "task": "notifications.tasks.send_email_digests",
                "schedule": float(settings.NOTIFICATIONS_EMAIL_DIGEST_PERIOD_SECONDS),
            },
        )
