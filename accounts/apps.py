from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tenants, memberships and the tenant-scoping every other app relies on."""

    name = "accounts"
    # allauth's app is also labelled "Accounts" in the Django admin; ours holds tenants.
    verbose_name = "Tenants and members"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 - connects the signal receivers
