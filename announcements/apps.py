from django.apps import AppConfig


class AnnouncementsConfig(AppConfig):
    """Admin broadcast announcements shown as live banners."""

    name = "announcements"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from realtime.services import register_snapshot

        from . import services
        from .conf import app_settings

        register_snapshot(services.snapshot)
        interval = app_settings.RECONCILE_SECONDS
        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "announcements.reconcile",
            {
                "task": "announcements.tasks.reconcile_announcements",
                "schedule": interval,
                # A backlog queued while no worker ran is useless: one fresh run does it all.
                "options": {"expires": max(interval * 2, 5.0)},
            },
        )
