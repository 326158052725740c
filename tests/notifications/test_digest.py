"""The email fallback: one digest per user with their old unread escalating notifications, never twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications import services
from notifications.digest import do_send_email_digests
from notifications.models import Notification
from notifications.preferences import do_set_preferences, do_set_tenant_defaults
from notifications.tasks import send_email_digests


def age(minutes: int, **filters) -> None:
    Notification.objects.filter(**filters).update(created_at=timezone.now() - timedelta(minutes=minutes))


@pytest.fixture
def pending(org):
    """Alice: three old unread "general" notifications (general escalates by default), one read."""
    for title in ["Invoice paid", "Deploy finished", "Disk almost full", "Already read"]:
        services.notify(org["acme"], org["alice"], category="general", title=title, link="/t/acme/")
    services.do_mark_read(
        org["acme"], org["alice"], Notification.objects.filter(title="Already read").values_list("id", flat=True)
    )
    age(20, recipient=org["alice"])
    return org


def test_one_digest_with_the_unread_ones_exactly_once(pending, settings):
    settings.PUBLIC_BASE_URL = "https://live.example"
    assert send_email_digests() == {"emails": 1, "notifications": 3}
    [email] = mail.outbox
    assert email.to == ["alice@acme.test"]
    assert "3 unread notifications" in email.subject
    for title in ["Invoice paid", "Deploy finished", "Disk almost full"]:
        assert title in email.body
    assert "Already read" not in email.body
    assert "https://live.example/t/acme/notifications/" in email.body
    html = email.alternatives[0][0]
    assert "Invoice paid" in html and "Already read" not in html
    # The next runs find nothing new: never the same notification twice.
    assert send_email_digests() == {"emails": 0, "notifications": 0}
    assert len(mail.outbox) == 1


def test_nothing_is_mailed_before_the_delay_or_after_reading(org):
    services.notify(org["acme"], org["alice"], category="general", title="fresh")
    assert do_send_email_digests() == {"emails": 0, "notifications": 0}  # 15 minutes have not passed
    age(20, title="fresh")
    services.do_mark_all_read(org["acme"], org["alice"])
    assert do_send_email_digests() == {"emails": 0, "notifications": 0}
    assert mail.outbox == []


def test_beat_runs_the_digest_every_period(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["notifications.send_email_digests"]
    assert entry["task"] == send_email_digests.name
    assert entry["schedule"] == settings.NOTIFICATIONS_EMAIL_DIGEST_PERIOD_SECONDS


def test_the_delay_is_a_setting(org, settings):
    settings.NOTIFICATIONS_EMAIL_DELAY_SECONDS = 60
    services.notify(org["acme"], org["alice"], category="general", title="soon")
    age(2, title="soon")
    assert do_send_email_digests()["emails"] == 1


def test_preferences_decide_what_escalates(org):
    from accounts.models import Membership

    # Members do not escalate by default; alice opts out of general; bob opts into members... required wins.
    services.notify(org["acme"], [org["alice"], org["bob"]], category="general", title="general one")
    services.notify(org["acme"], org["bob"], category="members", title="members one")
    age(30, recipient__in=[org["alice"], org["bob"]])
    do_set_preferences(Membership.objects.get(tenant=org["acme"], user=org["alice"]), {"general": (True, False)})
    assert do_send_email_digests() == {"emails": 1, "notifications": 1}
    assert mail.outbox[0].to == ["bob@acme.test"] and "members one" not in mail.outbox[0].body
    # A required category ignores alice's opt-out.
    do_set_tenant_defaults(org["acme"], {"general": (True, True, True)})
    assert do_send_email_digests() == {"emails": 1, "notifications": 1}
    assert mail.outbox[1].to == ["alice@acme.test"]


def test_one_email_per_user_across_tenants(org):
    services.notify(org["acme"], org["pat"], category="general", title="from acme")
    services.notify(org["globex"], org["pat"], category="general", title="from globex")
    age(30, recipient=org["pat"])
    assert do_send_email_digests() == {"emails": 1, "notifications": 2}
    body = mail.outbox[0].body
    assert "Acme Corp" in body and "Globex Inc" in body


@pytest.mark.stack
def test_the_celery_task_mails_once_through_a_real_worker(live, celery_worker, make_tenant, make_member):
    """Through the broker and a worker process: the first run mails, the second finds nothing."""
    acme = make_tenant("acme")
    alice = make_member(acme, email="alice@acme.test")
    for title in ["one", "two"]:
        services.notify(acme, alice, category="general", title=title)
    services.notify(acme, alice, category="general", title="read")
    services.do_mark_read(acme, alice, Notification.objects.filter(title="read").values_list("id", flat=True))
    age(20, recipient=alice)
    assert send_email_digests.delay().get(timeout=60) == {"emails": 1, "notifications": 2}
    assert send_email_digests.delay().get(timeout=60) == {"emails": 0, "notifications": 0}
    mailed = Notification.objects.filter(recipient=alice, emailed_at__isnull=False)
    assert sorted(mailed.values_list("title", flat=True)) == ["one", "two"]
