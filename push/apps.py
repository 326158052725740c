from django.apps import AppConfig


class PushConfig(AppConfig):
    """Web Push: notifications reach a user's devices while no tab of the site is open."""

    name = "push"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401
