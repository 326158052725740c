"""Each transition is published exactly once, whichever of the eta task and the reconciler gets there."""

from datetime import timedelta

from django.utils import timezone

from announcements import services
from announcements.models import Announcement
from realtime.audience import tenant_admins_group, tenant_group


def kind(stream):
    """The audience a stream carries: ``tenant.3`` -> tenant, ``tenant.3.admins`` -> tenant_admins."""
    return "tenant_admins" if stream.endswith(".admins") else stream.split(".")[0]


def events(published, stream=None):
    """What reached the streams since the test began, in order per stream (there is no order across streams)."""
    frames = published.frames(stream)
    return [
        (f["type"], kind(f["stream"]), f["data"].get("reason")) for f in frames if f["type"].startswith("announcement.")
    ]


def scheduled(people, **fields):
    """A scheduled row whose start has come, as left behind when no task ran at its start."""
    values = {"tenant": people["acme"], "title": "Due", "starts_at": timezone.now() - timedelta(seconds=1), **fields}
    return Announcement.objects.create(**values)


def test_activation_is_published_once_however_often_it_is_attempted(
    people, published, django_capture_on_commit_callbacks
):
    announcement = scheduled(people)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.do_activate_due_announcement(announcement.pk) is True
        assert services.do_activate_due_announcement(announcement.pk) is False
        assert services.reconcile_due_announcements() == 0
    assert events(published) == [("announcement.published", "tenant", None)]


def test_a_future_start_is_not_published_early(people, published, django_capture_on_commit_callbacks):
    announcement = scheduled(people, starts_at=timezone.now() + timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.do_activate_due_announcement(announcement.pk) is False
        assert services.reconcile_due_announcements() == 0
    assert events(published) == []


def test_expiry_is_published_once(people, published, django_capture_on_commit_callbacks):
    announcement = scheduled(people, ends_at=timezone.now() + timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        services.reconcile_due_announcements()
        later = timezone.now() + timedelta(seconds=31)
        assert services.do_expire_due_announcement(announcement.pk, now=later) is True
        assert services.reconcile_due_announcements(now=later) == 0
        assert services.do_expire_due_announcement(announcement.pk, now=later) is False
    assert events(published) == [
        ("announcement.published", "tenant", None),
        ("announcement.ended", "tenant", "expired"),
    ]


def test_a_window_that_passed_while_nothing_ran_only_ends(people, published, django_capture_on_commit_callbacks):
    announcement = scheduled(people, ends_at=timezone.now() + timedelta(seconds=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reconcile_due_announcements(now=timezone.now() + timedelta(seconds=10)) == 1
    assert events(published) == [("announcement.ended", "tenant", "expired")]
    assert Announcement.objects.get(pk=announcement.pk).state == "ended"


def test_moving_an_active_start_into_the_future_takes_it_down_until_then(
    people, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        announcement = services.do_publish_announcement(actor=None, tenant=people["acme"], title="Too early")
        services.do_update_announcement(
            announcement, actor=None, changes={"starts_at": timezone.now() + timedelta(minutes=5)}
        )
    assert services.active_for(people["alice"]) == []
    assert Announcement.objects.get(pk=announcement.pk).state == "scheduled"
    with django_capture_on_commit_callbacks(execute=True):
        services.reconcile_due_announcements(now=timezone.now() + timedelta(minutes=6))
    assert events(published) == [
        ("announcement.published", "tenant", None),
        ("announcement.ended", "tenant", "rescheduled"),
        ("announcement.published", "tenant", None),
    ]


def test_narrowing_the_audience_takes_it_from_members_and_keeps_it_for_admins(
    people, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        announcement = services.do_publish_announcement(actor=None, tenant=people["acme"], title="For all")
        services.do_update_announcement(announcement, actor=None, changes={"audience": "admins"})
    acme = people["acme"]
    assert events(published, tenant_group(acme.pk)) == [
        ("announcement.published", "tenant", None),
        ("announcement.ended", "tenant", "retargeted"),
    ]
    assert events(published, tenant_admins_group(acme.pk)) == [("announcement.published", "tenant_admins", None)]
    assert len(events(published)) == 3  # nothing on any other stream
    assert services.active_for(people["alice"]) == []
    assert [a["id"] for a in services.active_for(people["acme_admin"])] == [announcement.pk]
