"""Scheduled announcements start and end on time through a real Celery worker and beat."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from announcements import services
from announcements.models import Announcement
from tests.support.processes import CeleryBeat, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def beat(subprocess_env):
    """Celery beat running the announcements reconciler every second; stopped by pid afterwards."""
    started = []

    def start() -> CeleryBeat:
        process = CeleryBeat({**subprocess_env, "ANNOUNCEMENTS_RECONCILE_SECONDS": "1"}).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def frame_of(sock, event_type, announcement_id, timeout):
    return sock.wait_for(lambda f: f["type"] == event_type and f["data"].get("id") == announcement_id, timeout)


def test_scheduled_announcement_appears_at_starts_at_and_disappears_at_ends_at(live, celery_worker, beat, people):
    """The eta task and the beat reconciler both run; browsers see one publish, on time, then one end."""
    beat()
    with live.socket(people["alice"]) as alice:
        alice.wait_type("announcement.active")
        starts_at = timezone.now() + timedelta(seconds=2)
        announcement = services.do_publish_announcement(
            actor=people["acme_admin"],
            tenant=people["acme"],
            title="Starts soon",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(seconds=2),
        )
        assert announcement.state == "scheduled"
        published = frame_of(alice, "announcement.published", announcement.pk, timeout=45)
        # Not early: the event was stored (its timestamp) at or after starts_at.
        assert parse_datetime(published["ts"]) >= starts_at
        ended = frame_of(alice, "announcement.ended", announcement.pk, timeout=45)
        assert ended["data"]["reason"] == "expired"
        assert parse_datetime(ended["ts"]) >= announcement.ends_at
        # Exactly once each, although two paths (eta task, reconciler) raced for both.
        assert len(alice.durable("announcement.published")) == 1
        assert [f for f in alice.listen(1.0) if f["type"].startswith("announcement.")] == []
    assert Announcement.objects.get(pk=announcement.pk).state == "ended"


def test_start_missed_while_no_worker_ran_is_published_once_the_worker_is_back(live, celery_worker, people, beat):
    """The eta task was lost with its worker: when the workers are back, beat's reconciler publishes it."""
    with live.socket(people["bob"]) as bob:
        bob.wait_type("announcement.active")
        # The scheduling message goes nowhere, as if the worker holding it had died.
        with mock.patch("announcements.tasks.activate_announcement.apply_async"):
            announcement = services.do_publish_announcement(
                actor=None,
                tenant=people["acme"],
                title="Missed start",
                starts_at=timezone.now() + timedelta(seconds=1),
            )
        wait_for(lambda: timezone.now() > announcement.starts_at, timeout=5, message="start passes")
        # A page load already shows it (the window decides what pages render)...
        assert [a["id"] for a in services.active_for(people["bob"])] == [announcement.pk]
        # ...and once beat runs, its reconciler (the only path left) publishes it live, once.
        beat()
        frame = frame_of(bob, "announcement.published", announcement.pk, timeout=45)
        assert frame["data"]["title"] == "Missed start"
        assert [f for f in bob.listen(1.0) if f["type"] == "announcement.published"] == []
    assert Announcement.objects.get(pk=announcement.pk).state == "active"
