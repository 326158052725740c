"""Starting a job while the task queue (Redis) is down: a quick, understandable answer, and no job queued for good."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.broker import broker_unavailable
from tests.workers.helpers import client_for
from workers import services
from workers.models import Job, JobState


@pytest.fixture
def broker_down():
    """Celery's broker is down for this test; ``broker_down()`` brings it back."""
    with broker_unavailable() as restore:
        yield restore


def test_a_job_started_while_the_broker_is_down_says_so_at_once_and_is_sent_when_it_is_back(
    transactional_db, cast, broker_down, media_root
):
    """Tests that the start answers (no 500, no 19 s wait), the row says why it waits, and the reaper sends it later."""
    client = client_for(cast.admin)
    started = time.monotonic()
    response = client.post("/t/acme/jobs/start/export/", follow=True)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    # Not a speed figure: before, the request hung 19 s on Celery's reconnects and then answered 500.
    assert elapsed < 5, elapsed
    text = response.content.decode()
    assert "task queue is unavailable" in text and "start by itself" in text
    job = Job.objects.get(tenant=cast.acme, kind="export")
    assert job.state == JobState.QUEUED and job.task_sent_at is None
    assert "unavailable" in job.progress_message

    # Still down: the reaper tries, leaves the job queued and unsent.
    later = timezone.now() + timedelta(seconds=5)
    services.do_reap_stale_jobs(now=later)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.task_sent_at is None

    broker_down()
    assert services.do_reap_stale_jobs(now=later) == [job.pk]
    job.refresh_from_db()
    # Sent; a worker of this test session (if one runs) may already have taken it.
    assert job.task_sent_at is not None and job.state != JobState.FAILED


def test_a_job_whose_task_never_reached_the_broker_ends_failed_with_the_reason(transactional_db, cast, broker_down):
    """Tests that a job never sent within UNSENT_GIVE_UP_SECONDS is failed, saying why, and can be retried."""
    job = Job.objects.create(tenant=cast.acme, owner=cast.alice, kind="export", task_id="never-sent")
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert services.do_reap_stale_jobs() == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "task queue was unavailable" in job.error and "retry" in job.error
