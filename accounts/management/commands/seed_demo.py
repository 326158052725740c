"""Create the demo tenants, users and a little activity (idempotent)."""

from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import demo


class Command(BaseCommand):
    help = "Create demo tenants acme and globex with admins, members and one user in both."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("Demo logins have known passwords; seed_demo runs only with DEBUG on.")
        with transaction.atomic():
            logins = demo.seed(password=demo.DEMO_PASSWORD)
            # Each feature app may add demo content in its own demo.py: seed() -> None.
            for app in ("notifications", "announcements", "workers"):
                try:
                    module = import_module(f"{app}.demo")
                except ModuleNotFoundError:
                    continue
                module.seed()
        if options["verbosity"] < 1:  # make run: runplatform prints them once the site is up
            return
        self.stdout.write(f"Demo logins (password {demo.DEMO_PASSWORD!r}):")
        for line in logins:
            self.stdout.write(f"  {line}")
