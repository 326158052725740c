"""notify() and the state changes: rows, counters kept without COUNT(*), and the events they publish."""

from __future__ import annotations

import math

import pytest
from django.db import connection

from notifications import services
from notifications.models import Notification, NotificationCounter
from realtime.audience import user_group
from realtime.models import OutboxEvent
from tests.support.stream_log import StreamLog


def created_events(published, user=None):
    """The ``notification.created`` events that reached the users' streams (or one user's) since the test began."""
    stream = None if user is None else user_group(user.pk)
    return published.frames(stream, event_type="notification.created")


def test_notify_one_user_creates_a_row_and_publishes_after_commit(org, published, django_capture_on_commit_callbacks):
    """One notification, one event to that user only, published once the transaction commits."""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        created = services.notify(
            org["acme"], org["alice"], category="general", title="Hello", body="**bold** <script>x</script>"
        )
        assert created == 1
        assert created_events(published) == []  # not before commit
    assert len(callbacks) == 2  # the publish, then notifications_created (Web Push listens)
    notification = Notification.objects.get(recipient=org["alice"])
    assert notification.tenant == org["acme"] and notification.level == "info"
    assert "<strong>bold</strong>" in notification.body_html and "<script>" not in notification.body_html
    [event] = created_events(published)
    assert event["stream"] == user_group(org["alice"].pk) and event["tenant"] == "acme"
    assert event["data"]["notification"]["id"] == notification.pk
    assert event["data"]["counts"] == {"unread": 1, "unseen": 1, "version": 1}
    assert event["data"]["toast"] is True


def test_notify_drops_recipients_outside_the_tenant(org, published, django_capture_on_commit_callbacks):
    """A notification never crosses tenants: gina (globex) gets nothing from acme."""
    with django_capture_on_commit_callbacks(execute=True):
        created = services.notify(
            org["acme"], [org["alice"].pk, org["gina"].pk, 999_999], category="general", title="x"
        )
    assert created == 1
    assert not Notification.objects.filter(recipient=org["gina"]).exists()
    assert [e["stream"] for e in created_events(published)] == [user_group(org["alice"].pk)]


def test_notify_whole_tenant_and_role(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert services.notify(org["acme"], services.ALL_MEMBERS, category="general", title="all") == 4
        assert services.notify(org["acme"], services.ALL_MEMBERS, role="admin", category="general", title="a") == 1
    assert Notification.objects.filter(title="a").get().recipient == org["admin"]
    assert not Notification.objects.filter(recipient=org["gina"]).exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"category": "Bad Slug", "title": "x"},
        {"category": "general", "title": "  "},
        {"category": "general", "title": "x", "level": "fatal"},
        {"category": "general", "title": "x", "link": "https://evil.example/"},
        {"category": "general", "title": "x", "link": "//evil.example/"},
    ],
)
def test_notify_refuses_invalid_content(org, kwargs):
    with pytest.raises(ValueError):
        services.notify(org["acme"], org["alice"], **kwargs)
    assert not Notification.objects.filter(recipient=org["alice"]).exists()


def test_notify_clips_overlong_titles_and_bodies(org):
    services.notify(org["acme"], org["alice"], category="jobs", title="t" * 500, body="b" * 20_000)
    notification = Notification.objects.get(recipient=org["alice"])
    assert len(notification.title) == services.TITLE_MAX and notification.title.endswith("…")
    assert len(notification.body) == services.BODY_MAX


def test_counters_stay_exact_through_every_state_change(org, counters, published, django_capture_on_commit_callbacks):
    """After each change the stored counter equals a recount, and the event carries it."""
    acme, alice = org["acme"], org["alice"]
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(5):
            services.notify(acme, alice, category="general", title=f"n{index}")
    ids = list(Notification.objects.filter(recipient=alice).order_by("id").values_list("id", flat=True))

    def check(expected: tuple[int, int]) -> dict:
        state = counters(acme, alice)
        assert state["stored"] == state["actual"] == expected
        return services.counts_for(acme, alice)

    check((5, 5))
    steps = [
        (lambda: services.do_mark_seen(acme, alice, ids[:2]), (5, 3), "notification.seen"),
        (lambda: services.do_mark_read(acme, alice, [ids[0], ids[2]]), (3, 2), "notification.read"),
        (lambda: services.do_mark_read(acme, alice, [ids[0]]), (3, 2), None),  # already read: no change
        (lambda: services.do_mark_unread(acme, alice, [ids[2]]), (4, 2), "notification.unread"),
        (lambda: services.do_archive(acme, alice, [ids[3], ids[0]]), (3, 1), "notification.archived"),
        (lambda: services.do_unarchive(acme, alice, [ids[3]]), (4, 2), "notification.unarchived"),
        (lambda: services.do_mark_all_read(acme, alice), (0, 0), "notification.counts"),
        (lambda: services.do_mark_all_read(acme, alice), (0, 0), None),
        (lambda: services.do_mark_unread(acme, alice, ids), (4, 0), "notification.unread"),
        (lambda: services.do_archive(acme, alice, ids), (0, 0), "notification.archived"),
    ]
    version = services.counts_for(acme, alice)["version"]
    for change, expected, event_type in steps:
        since = StreamLog(published.start)  # every stream of the org, from here
        with django_capture_on_commit_callbacks(execute=True):
            returned = change()
        assert returned == check(expected)
        new_events = since.frames()
        if event_type is None:
            assert new_events == [] and returned["version"] == version
            continue
        [event] = new_events
        assert event["type"] == event_type and event["stream"] == user_group(alice.pk) and event["tenant"] == "acme"
        assert event["data"]["counts"] == returned and returned["version"] > version
        version = returned["version"]


def test_state_changes_touch_only_the_users_own_notifications(org, counters, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(org["acme"], [org["alice"], org["bob"]], category="general", title="x")
    bobs = Notification.objects.get(recipient=org["bob"])
    services.do_mark_read(org["acme"], org["alice"], [bobs.pk])
    services.do_archive(org["acme"], org["alice"], [bobs.pk])
    bobs.refresh_from_db()
    assert bobs.read_at is None and bobs.archived_at is None
    assert counters(org["acme"], org["bob"])["stored"] == (1, 1)


def test_counts_are_per_tenant(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(org["acme"], org["pat"], category="general", title="acme")
        services.notify(org["globex"], org["pat"], category="general", title="globex 1")
        services.notify(org["globex"], org["pat"], category="general", title="globex 2")
    services.do_mark_all_read(org["globex"], org["pat"])
    assert services.counts_for(org["acme"], org["pat"])["unread"] == 1
    assert services.counts_for(org["globex"], org["pat"])["unread"] == 0


@pytest.mark.slow
def test_fan_out_to_ten_thousand_members_in_a_bounded_number_of_queries(
    make_tenant, inmemory_channel_layer, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    """10,000 recipients: rows, counters and events are written in batches, not one query each."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership

    big = make_tenant("big")
    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"u{i}@big.test", email=f"u{i}@big.test") for i in range(10_000)], batch_size=2000
    )
    Membership.objects.bulk_create([Membership(tenant=big, user=u) for u in users], batch_size=2000)
    recipients = 10_000

    def batches(model, excluded=("id",)) -> int:
        fields = [f for f in model._meta.concrete_fields if f.name not in excluded]
        return math.ceil(recipients / max(1, connection.ops.bulk_batch_size(fields, [None] * recipients)))

    # Every statement that grows with the recipients is a batch (the events are outbox rows until
    # commit, deleted in one statement after their publish); the rest is a small constant
    # (category lookup, savepoints): about 20 on PostgreSQL.
    bound = batches(Notification) + batches(OutboxEvent) + math.ceil(recipients / services.CHUNK) + 30
    published = StreamLog([user_group(user.pk) for user in users])
    assert bound < recipients / 25
    with django_assert_max_num_queries(bound), django_capture_on_commit_callbacks(execute=True):
        created = services.notify(big, services.ALL_MEMBERS, category="general", title="Maintenance tonight")
    assert created == recipients
    assert Notification.objects.filter(tenant=big).count() == recipients
    assert NotificationCounter.objects.filter(tenant=big, unread=1, unseen=1).count() == recipients
    events = published.frames(event_type="notification.created")
    assert len(events) == recipients and {event["tenant"] for event in events} == {"big"}
    assert {event["stream"] for event in events} == {user_group(user.pk) for user in users}
    assert not OutboxEvent.objects.exists()


def test_one_write_of_several_calls_gives_each_event_the_counts_right_after_it(
    org, published, django_capture_on_commit_callbacks
):
    """Two calls for the same user written together: counts 1 then 2, as if written one after the other."""
    from notifications import creating

    calls = [
        creating.prepare(org["acme"], [org["alice"], org["bob"]], category="general", title="First"),
        creating.prepare(org["acme"], org["alice"], category="general", title="Second"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert creating.write(calls) == [2, 1]
    titles_and_counts = [
        (event["data"]["notification"]["title"], event["data"]["counts"])
        for event in created_events(published, org["alice"])
    ]
    assert titles_and_counts == [
        ("First", {"unread": 1, "unseen": 1, "version": 1}),
        ("Second", {"unread": 2, "unseen": 2, "version": 2}),
    ]
    assert services.counts_for(org["acme"], org["alice"]) == {"unread": 2, "unseen": 2, "version": 2}
    assert services.counts_for(org["acme"], org["bob"]) == {"unread": 1, "unseen": 1, "version": 1}
