"""Demo notifications for the demo users, so `make run` shows a bell with something in it."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from accounts.models import Tenant

from .models import Level, Notification
from .services import notify

# (tenant slug, recipient email, key, category, level, title, body, link)
DEMO_NOTIFICATIONS = [
    (
        "acme",
        "alice@acme.test",
        "welcome",
        "general",
        Level.INFO,
        "Welcome to Acme Corp",
        "This is your **inbox**. New notifications appear here and in the bell, live.",
        "/t/acme/notifications/",
    ),
    (
        "acme",
        "alice@acme.test",
        "report",
        "jobs",
        Level.SUCCESS,
        "Your weekly report is ready",
        "The export finished in 42 seconds.",
        "/t/acme/",
    ),
    (
        "acme",
        "alice@acme.test",
        "quota",
        "general",
        Level.WARNING,
        "Storage is 80% full",
        "Consider archiving old exports.",
        "",
    ),
    (
        "acme",
        "bob@acme.test",
        "welcome",
        "general",
        Level.INFO,
        "Welcome to Acme Corp",
        "Open the bell to see your notifications.",
        "/t/acme/notifications/",
    ),
    (
        "acme",
        "admin@acme.test",
        "failed",
        "jobs",
        Level.ERROR,
        "Nightly import failed",
        "The source file was empty. *No data was changed.*",
        "/t/acme/",
    ),
    ("acme", "pat@both.test", "welcome", "general", Level.INFO, "Welcome to Acme Corp", "", "/t/acme/"),
    (
        "globex",
        "gina@globex.test",
        "welcome",
        "general",
        Level.INFO,
        "Welcome to Globex Inc",
        "Notifications of each tenant stay in that tenant.",
        "/t/globex/notifications/",
    ),
    (
        "globex",
        "pat@both.test",
        "welcome",
        "general",
        Level.SUCCESS,
        "Welcome to Globex Inc",
        "You belong to two tenants: the switcher shows a dot when the other one has news.",
        "/t/globex/",
    ),
]


def seed() -> None:
    """Create the demo notifications once (a second run finds them by their demo key and skips)."""
    users = {u.email: u for u in get_user_model().objects.filter(email__in={n[1] for n in DEMO_NOTIFICATIONS})}
    tenants = {t.slug: t for t in Tenant.objects.filter(slug__in={n[0] for n in DEMO_NOTIFICATIONS})}
    for slug, email, key, category, level, title, body, link in DEMO_NOTIFICATIONS:
        tenant, user = tenants.get(slug), users.get(email)
        if tenant is None or user is None:
            continue
        if Notification.objects.filter(tenant=tenant, recipient=user, data__demo=key).exists():
            continue
        notify(tenant, user, category=category, title=title, body=body, level=level, link=link, data={"demo": key})
