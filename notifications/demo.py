"""Demo notifications: a few weeks of a real team's bell, in every category, so `make run` looks lived in."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Tenant

from .models import Level, Notification
from .services import do_archive, do_mark_read, notify

# (tenant, recipient, key, category, level, title, body, link, actor, days ago, state)
# state: "unread", "read" or "archived". Keys make a second seed skip what exists.
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
        "admin@acme.test",
        21,
        "archived",
    ),
    (
        "acme",
        "alice@acme.test",
        "q3-plan",
        "comments",
        Level.INFO,
        "Bob commented on “Q3 roadmap”",
        "Looks good to me, but can we move the **billing export** to September?",
        "/t/acme/",
        "bob@acme.test",
        16,
        "read",
    ),
    (
        "acme",
        "alice@acme.test",
        "report-1",
        "jobs",
        Level.SUCCESS,
        "Your weekly report is ready",
        "Exported 2,418 notifications in 12 seconds.",
        "/t/acme/jobs/",
        None,
        14,
        "read",
    ),
    (
        "acme",
        "alice@acme.test",
        "maint",
        "announcements",
        Level.WARNING,
        "Maintenance on Saturday 22:00",
        "The platform is read-only for about **10 minutes**.",
        "/t/acme/",
        "admin@acme.test",
        9,
        "read",
    ),
    (
        "acme",
        "alice@acme.test",
        "quota",
        "general",
        Level.WARNING,
        "Storage is 80% full",
        "Consider archiving exports older than 90 days.",
        "/t/acme/jobs/",
        None,
        6,
        "read",
    ),
    (
        "acme",
        "alice@acme.test",
        "import-fail",
        "jobs",
        Level.ERROR,
        "Import of “contacts.csv” failed",
        "Row 14: *not an email address*. No members were changed.",
        "/t/acme/jobs/",
        None,
        3,
        "read",
    ),
    (
        "acme",
        "alice@acme.test",
        "c-1",
        "comments",
        Level.INFO,
        "Bob replied to your comment on “Onboarding doc”",
        "Agreed, I added the **SSO** section.",
        "/t/acme/",
        "bob@acme.test",
        1,
        "unread",
    ),
    (
        "acme",
        "alice@acme.test",
        "c-2",
        "comments",
        Level.INFO,
        "Pat mentioned you in “Release 1.4 notes”",
        "@alice can you check the wording of the *migration* paragraph?",
        "/t/acme/",
        "pat@both.test",
        0,
        "unread",
    ),
    (
        "acme",
        "alice@acme.test",
        "c-3",
        "comments",
        Level.INFO,
        "Bob commented on “Release 1.4 notes”",
        "Ship it, the notes read well.",
        "/t/acme/",
        "bob@acme.test",
        0,
        "unread",
    ),
    (
        "acme",
        "alice@acme.test",
        "deploy",
        "general",
        Level.SUCCESS,
        "Deploy of version 1.4.2 finished",
        "Version **1.4.2** is live on production.",
        "/t/acme/",
        "admin@acme.test",
        0,
        "unread",
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
        "admin@acme.test",
        20,
        "read",
    ),
    (
        "acme",
        "bob@acme.test",
        "c-1",
        "comments",
        Level.INFO,
        "Alice commented on “Onboarding doc”",
        "Could you add a section on **single sign-on**?",
        "/t/acme/",
        "alice@acme.test",
        2,
        "read",
    ),
    (
        "acme",
        "bob@acme.test",
        "export",
        "jobs",
        Level.SUCCESS,
        "Your export is ready",
        "1,204 notifications, 96 KB.",
        "/t/acme/jobs/",
        None,
        0,
        "unread",
    ),
    (
        "acme",
        "admin@acme.test",
        "joined-bob",
        "members",
        Level.INFO,
        "Bob joined Acme Corp",
        "bob@acme.test is now a member.",
        "/t/acme/members/",
        None,
        20,
        "read",
    ),
    (
        "acme",
        "admin@acme.test",
        "joined-pat",
        "members",
        Level.INFO,
        "Pat joined Acme Corp",
        "pat@both.test is now a member.",
        "/t/acme/members/",
        None,
        1,
        "unread",
    ),
    (
        "acme",
        "admin@acme.test",
        "failed",
        "jobs",
        Level.ERROR,
        "Nightly import failed",
        "The source file was empty. *No data was changed.*",
        "/t/acme/jobs/",
        None,
        0,
        "unread",
    ),
    (
        "acme",
        "pat@both.test",
        "welcome",
        "general",
        Level.INFO,
        "Welcome to Acme Corp",
        "",
        "/t/acme/",
        "admin@acme.test",
        1,
        "unread",
    ),
    (
        "globex",
        "gina@globex.test",
        "welcome",
        "general",
        Level.INFO,
        "Welcome to Globex Inc",
        "Notifications of each tenant stay in that tenant.",
        "/t/globex/notifications/",
        "admin@globex.test",
        12,
        "read",
    ),
    (
        "globex",
        "gina@globex.test",
        "c-1",
        "comments",
        Level.INFO,
        "Gus commented on “Supplier list”",
        "I added the **three** new suppliers.",
        "/t/globex/",
        "gus@globex.test",
        0,
        "unread",
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
        "admin@globex.test",
        0,
        "unread",
    ),
]


def seed() -> None:
    """Create the demo notifications once (a second run finds them by their demo key and skips)."""
    emails = {n[1] for n in DEMO_NOTIFICATIONS} | {n[8] for n in DEMO_NOTIFICATIONS if n[8]}
    users = {u.email: u for u in get_user_model().objects.filter(email__in=emails)}
    tenants = {t.slug: t for t in Tenant.objects.filter(slug__in={n[0] for n in DEMO_NOTIFICATIONS})}
    now = timezone.now()
    for index, row in enumerate(DEMO_NOTIFICATIONS):
        slug, email, key, category, level, title, body, link, actor, days, state = row
        tenant, user = tenants.get(slug), users.get(email)
        if tenant is None or user is None:
            continue
        if Notification.objects.filter(tenant=tenant, recipient=user, data__demo=key).exists():
            continue
        notify(
            tenant,
            user,
            category=category,
            title=title,
            body=body,
            level=level,
            link=link,
            data={"demo": key},
            actor=users.get(actor) if actor else None,
        )
        created = Notification.objects.filter(tenant=tenant, recipient=user, data__demo=key)
        # Spread over the day too, so "3 days ago" rows are not all at the same minute.
        created.update(created_at=now - timedelta(days=days, minutes=37 * (len(DEMO_NOTIFICATIONS) - index)))
        ids = list(created.values_list("id", flat=True))
        if state in ("read", "archived"):
            do_mark_read(tenant, user, ids)
        if state == "archived":
            do_archive(tenant, user, ids)
