"""``manage.py generate_vapid_keys``: print a new VAPID key pair as environment lines."""

from django.core.management.base import BaseCommand

from push.vapid import generate_pair


class Command(BaseCommand):
    help = "Print a new VAPID key pair for Web Push, as lines for the environment (keep the private key secret)."

    def handle(self, *args, **options) -> None:
        public, private = generate_pair()
        self.stdout.write(f"WEBPUSH_VAPID_PUBLIC_KEY={public}\nWEBPUSH_VAPID_PRIVATE_KEY={private}\n")
