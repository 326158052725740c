"""The job-context API in-process: throttled progress, final state, failures, the reaper."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from workers import services
from workers.jobs import KINDS, JobError, job_kind, run_job
from workers.models import Job, JobState

MILLION = 1_000_000


@pytest.fixture
def published(monkeypatch):
    """Record every progress tick and state event the services send (the real publish is stubbed)."""
    sent = {"progress": [], "state": []}
    monkeypatch.setattr(
        services,
        "publish_job_progress",
        lambda job: sent["progress"].append((job.progress_done, job.progress_total, time.monotonic())),
    )
    real_state = services.publish_job_state
    monkeypatch.setattr(
        services, "publish_job_state", lambda job: (sent["state"].append(job.state), real_state(job))[0]
    )
    return sent


@pytest.fixture
def test_kinds():
    """Kinds registered only for these tests."""

    @job_kind("test-million", label="A million ticks")
    def million(ctx):
        for done in range(1, MILLION + 1):
            ctx.progress(done, MILLION, "ticking")
        return {"ticks": MILLION}

    @job_kind("test-leaves-last-tick", label="Stops between ticks")
    def leaves_last_tick(ctx):
        ctx.progress(0, 10)
        for done in range(1, 10):  # 9 of 10 in a tight loop: the last ones are throttled away
            ctx.progress(done, 10, f"step {done}")
        return {}

    @job_kind("test-crash", label="Crashes")
    def crash(ctx):
        ctx.progress(1, 4)
        raise RuntimeError("database password is hunter2")

    @job_kind("test-refuses", label="Refuses")
    def refuses(ctx):
        raise JobError("The file has no header row.")

    yield
    for name in ("test-million", "test-leaves-last-tick", "test-crash", "test-refuses"):
        KINDS.pop(name, None)


def queued_job(tenant, owner, kind: str) -> Job:
    return Job.objects.create(tenant=tenant, owner=owner, kind=kind, task_id=str(uuid.uuid4()))


def run(job: Job) -> Job:
    run_job(job.pk, job.tenant_id, job.task_id)
    return Job.objects.get(pk=job.pk)


def test_a_million_progress_calls_send_a_bounded_number_of_updates(transactional_db, cast, published, test_kinds):
    """A tight loop of a million progress() calls costs at most ~one update per 1 % step and 10 per second."""
    job = queued_job(cast.acme, cast.alice, "test-million")
    started = time.monotonic()
    job = run(job)
    seconds = time.monotonic() - started

    ticks = published["progress"]
    # One per 1 % step at most (101 steps: 0..100) plus the first; and never faster than ~10/s.
    assert 2 <= len(ticks) <= 102
    assert len(ticks) <= seconds * 10 + 3
    # Any eleven consecutive updates span about a second or more (10 per second at most).
    middle = [t for _, _, t in ticks[1:-1]]
    assert all(later - earlier >= 0.9 for earlier, later in zip(middle, middle[10:], strict=False))
    # The first and the last update always go out; the row holds the final numbers.
    assert ticks[0][:2] == (1, MILLION)
    assert ticks[-1][:2] == (MILLION, MILLION)
    assert published["state"] == [JobState.RUNNING, JobState.SUCCEEDED]
    assert job.state == JobState.SUCCEEDED and job.progress_done == MILLION and job.percent == 100
    assert job.result == {"ticks": MILLION}


def test_a_throttled_last_tick_is_flushed_before_the_final_state(transactional_db, cast, published, test_kinds):
    """Progress swallowed by the throttle still reaches the row and the browser before the job ends."""
    job = run(queued_job(cast.acme, cast.alice, "test-leaves-last-tick"))
    assert published["progress"][-1][:2] == (9, 10)
    assert published["state"][-1] == JobState.SUCCEEDED
    # Succeeded means complete: the bar shows 100 %, never "stuck" below it.
    assert job.progress_done == 10 and job.percent == 100


def test_an_unexpected_exception_fails_the_job_without_leaking_details(transactional_db, cast, published, test_kinds):
    job = run(queued_job(cast.acme, cast.alice, "test-crash"))
    assert job.state == JobState.FAILED
    assert "RuntimeError" in job.error and "hunter2" not in job.error
    assert "hunter2" in job.traceback  # for admins only
    assert job.finished_at is not None


def test_a_job_error_message_is_shown_to_the_owner(transactional_db, cast, published, test_kinds):
    job = run(queued_job(cast.acme, cast.alice, "test-refuses"))
    assert job.state == JobState.FAILED and job.error == "The file has no header row."


def test_a_stale_or_duplicate_delivery_does_not_run_the_job_twice(transactional_db, cast, published, test_kinds):
    job = queued_job(cast.acme, cast.alice, "test-refuses")
    assert run_job(job.pk, job.tenant_id, "some-other-task-id") == "skipped"
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    run(job)
    assert run_job(job.pk, job.tenant_id, job.task_id) == "skipped"


def test_the_reaper_requeues_once_then_fails_a_job_whose_worker_died(transactional_db, cast, published, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "_send_task", lambda job, queue=None: sent.append(job.task_id))
    long_ago = timezone.now() - timedelta(minutes=5)
    job = Job.objects.create(
        tenant=cast.acme,
        owner=cast.alice,
        kind="export",
        task_id="dead-task",
        state=JobState.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
        progress_done=40,
        progress_total=100,
    )
    fresh = Job.objects.create(
        tenant=cast.acme,
        owner=cast.bob,
        kind="export",
        task_id="alive",
        state=JobState.RUNNING,
        heartbeat_at=timezone.now(),
    )
    assert services.do_reap_stale_jobs() == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.attempt == 2 and job.task_id != "dead-task"
    assert sent == [job.task_id]
    assert Job.objects.get(pk=fresh.pk).state == JobState.RUNNING

    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, heartbeat_at=long_ago)
    services.do_reap_stale_jobs()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "stopped" in job.error
