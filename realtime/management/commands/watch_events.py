"""Watch a user's live events in the terminal, through the app socket route."""

import json

from django.core.management.base import BaseCommand, CommandError

from realtime.tickets import issue_ticket


class Command(BaseCommand):
    help = "Connect to /ws/app/ as a user (with a fresh single-use ticket) and print every frame."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True, help="the user whose events to watch")
        parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/app/", help="the app socket URL")
        parser.add_argument(
            "--positions",
            default=None,
            help="replay what came after these stream positions first (the token a pong or page gives: "
            "stream:offset:epoch,...)",
        )
        parser.add_argument("--count", type=int, default=0, help="stop after this many frames (0: never)")

    def handle(self, *args, **options) -> None:
        from django.contrib.auth import get_user_model

        try:
            from websockets.sync.client import connect
        except ImportError as exc:  # pragma: no cover - dev dependency
            raise CommandError("watch_events needs the websockets package (requirements/dev.txt)") from exc
        user = get_user_model().objects.filter(email__iexact=options["email"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {options['email']!r}")
        ticket, _ = issue_ticket(user)
        auth = {"type": "auth", "ticket": ticket}
        if options["positions"]:
            auth["positions"] = options["positions"]
        seen = 0
        with connect(options["url"]) as socket:
            socket.send(json.dumps(auth))
            self.stderr.write(f"Watching events of {user.email} on {options['url']} (Ctrl-C to stop)")
            try:
                for text in socket:
                    frame = json.loads(text)
                    position = f"{frame['stream']}:{frame['offset']}" if "stream" in frame else "-"
                    tenant = frame["tenant"] or "-"
                    self.stdout.write(f"{position:>16} {frame['type']:<28} {tenant:<10} {json.dumps(frame['data'])}")
                    seen += 1
                    if options["count"] and seen >= options["count"]:
                        break
            except KeyboardInterrupt:
                pass
