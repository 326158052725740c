"""Publish a test event from the terminal and watch it arrive in the browser."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Tenant
from accounts.services import get_or_create_user
from liveplatform.celery import BROKER_UNAVAILABLE
from realtime.audience import Audience
from realtime.events import publish
from realtime.tasks import publish_event


class Command(BaseCommand):
    help = "Publish an event to a tenant, a user or everyone (optionally through a Celery worker)."

    def add_arguments(self, parser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tenant", help="tenant slug: every member's sockets")
        target.add_argument("--user", help="user email: every socket of that user")
        target.add_argument("--platform", action="store_true", help="every socket")
        parser.add_argument("--type", default="demo.message", help="event type, such as demo.message")
        parser.add_argument("--message", default="Hello from the terminal")
        parser.add_argument("--ephemeral", action="store_true", help="do not store (no replay)")
        parser.add_argument("--via-worker", action="store_true", help="publish from a Celery worker process")

    def handle(self, *args, **options) -> None:
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {options['tenant']!r}")
            audience = Audience.tenant(tenant.pk)
        elif options["user"]:
            user, created = get_or_create_user(options["user"])
            if created:
                user.delete()
                raise CommandError(f"No user {options['user']!r}")
            audience = Audience.user(user.pk)
        else:
            audience = Audience.platform()
        data = {"message": options["message"]}
        if options["via_worker"]:
            try:
                publish_event.apply_async(
                    (options["type"], data),
                    {
                        "audience_kind": audience.kind,
                        "tenant_id": audience.tenant_id,
                        "user_id": audience.user_id,
                        "durable": not options["ephemeral"],
                    },
                    ignore_result=True,  # nobody waits for it: no subscription to the result backend
                )
            except BROKER_UNAVAILABLE as exc:
                raise CommandError(
                    f"The task queue ({settings.CELERY_BROKER_URL}) is unavailable, nothing was queued: {exc}"
                ) from exc
            self.stdout.write(f"Queued {options['type']} to {audience.group} for a Celery worker")
        else:
            publish(options["type"], data, audience=audience, tenant=tenant, durable=not options["ephemeral"])
            self.stdout.write(f"Published {options['type']} to {audience.group}")
