"""Celery tasks of the workers app. They take ids, never model instances."""

from __future__ import annotations

from celery import shared_task

from . import services
from .jobs import run_job as run_job_in_context


@shared_task(bind=True, name="workers.tasks.run_job")
def run_job(self, job_id: int, tenant_id: int) -> str:
    """Run one job; the task id must match the row's, so stale deliveries do nothing."""
    return run_job_in_context(job_id, tenant_id, self.request.id)


@shared_task(name="workers.tasks.reap_stale_jobs")
def reap_stale_jobs() -> list[int]:
    """Re-queue or fail running jobs whose worker died (beat runs this every few seconds)."""
    return services.do_reap_stale_jobs()


@shared_task(name="workers.tasks.notify_batch")
def notify_batch(job_id: int, tenant_id: int, user_ids: list[int]) -> int:
    """One part of a fan-out job: notify a slice of members and add it to the job's progress."""
    from .kinds import run_notify_batch

    return run_notify_batch(job_id, tenant_id, user_ids)


@shared_task(name="workers.tasks.finish_fanout")
def finish_fanout(results: list[int], job_id: int, tenant_id: int) -> str:
    """Chord callback: the fan-out job ends once, after all of its parts."""
    from .kinds import finish_fanout_job

    return finish_fanout_job(results, job_id, tenant_id)
