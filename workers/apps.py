from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """Background jobs with live progress bars."""

    name = "workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from realtime.services import register_snapshot

        from . import kinds, receivers  # noqa: F401 - registers job kinds and signal receivers
        from .conf import job_settings
        from .services import active_jobs_snapshot

        register_snapshot(active_jobs_snapshot)
        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "workers.reap_stale_jobs",
            {"task": "workers.tasks.reap_stale_jobs", "schedule": job_settings.REAP_INTERVAL_SECONDS},
        )
