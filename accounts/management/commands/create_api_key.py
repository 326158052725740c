"""Create a tenant API key from the terminal; the key is printed once."""

from django.core.management.base import BaseCommand, CommandError

from accounts.api_keys import do_create_api_key
from accounts.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant: create_api_key <tenant-slug> <name>"

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant_slug")
        parser.add_argument("name")

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant_slug"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant_slug']!r}")
        api_key, raw_key = do_create_api_key(tenant, options["name"])
        self.stderr.write(f"Created key {api_key.name!r} for {tenant.slug}; it is shown once, store it now:")
        self.stdout.write(raw_key)
