"""The functions that change jobs, and the events that tell browsers about it.

Who hears about a job: its owner (``Audience.user``) and the tenant's admins
(``Audience.tenant_admins``), never the whole tenant. An owner who is an admin of
the tenant is reached through the admins' group only, so they get each event once.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Membership, Tenant
from liveplatform import rawsql
from realtime.audience import Audience
from realtime.events import make_event, publish_many

from .conf import job_settings
from .models import ACTIVE_STATES, Job, JobState
from .signals import job_finished

logger = logging.getLogger(__name__)


class JobNotAllowed(Exception):
    """The user may not do this to this job (the view answers 404 or 400)."""


# ------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------
def owner_is_admin(job: Job) -> bool:
    """Whether the owner is (now) an admin of the job's tenant."""
    return Membership.objects.admins().filter(tenant_id=job.tenant_id, user_id=job.owner_id).exists()


def job_audiences(job: Job, *, owner_admin: bool | None = None) -> list[Audience]:
    """The owner and the tenant's admins; the owner's own group only if they are not an admin."""
    if owner_admin is None:
        owner_admin = owner_is_admin(job)
    audiences = [Audience.tenant_admins(job.tenant_id)]
    if not owner_admin:
        audiences.append(Audience.user(job.owner_id))
    return audiences


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def job_payload(job: Job) -> dict[str, Any]:
    """Everything the jobs page needs to draw one job (the ``job.state`` event's data)."""
    from .jobs import get_kind

    kind = get_kind(job.kind)
    return {
        "id": job.pk,
        "kind": job.kind,
        "label": kind.label if kind else job.kind,
        "state": job.state,
        "owner": job.owner.email,
        "owner_id": job.owner_id,
        "done": job.progress_done,
        "total": job.progress_total,
        "percent": job.percent,
        "message": job.progress_message,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "cancel_requested": bool(job.cancel_requested_at),
        "attempt": job.attempt,
        "error": job.error,
        "result": job.result,
        "url": job.get_absolute_url(),
        "download_url": job.download_url(),
    }


def publish_job_state(job: Job) -> None:
    """A durable ``job.state`` event: replayed to a socket that was away when it happened."""
    data = job_payload(job)
    publish_many([make_event("job.state", data, audience=a, tenant=job.tenant) for a in job_audiences(job)])


def publish_job_progress(job: Job) -> None:
    """An ephemeral ``job.progress`` tick; the snapshot on connect covers missed ones."""
    owner_admin = getattr(job, "_owner_admin", None)
    if owner_admin is None:
        owner_admin = job._owner_admin = owner_is_admin(job)
    data = {
        "id": job.pk,
        "state": JobState.RUNNING,
        "done": job.progress_done,
        "total": job.progress_total,
        "percent": job.percent,
        "message": job.progress_message,
        "started_at": _iso(job.started_at),
        "attempt": job.attempt,
    }
    events = [
        make_event("job.progress", data, audience=a, tenant=job.tenant, durable=False)
        for a in job_audiences(job, owner_admin=owner_admin)
    ]
    publish_many(events)


def save_job_progress(job: Job, done: int, total: int | None, message: str) -> bool:
    """Write progress and a heartbeat; False if the job is no longer running for this task."""
    now = timezone.now()
    written = Job.objects.filter(
        pk=job.pk, state=JobState.RUNNING, task_id=job.task_id, cancel_requested_at__isnull=True
    ).update(progress_done=done, progress_total=total, progress_message=message, heartbeat_at=now)
    job.progress_done, job.progress_total, job.progress_message, job.heartbeat_at = done, total, message, now
    return bool(written)


def add_job_progress(job_id: int, amount: int, message: str = "") -> Job | None:
    """Add to a job's progress atomically (fan-out parts run in parallel) and publish the tick."""
    updates: dict[str, Any] = {"progress_done": F("progress_done") + amount, "heartbeat_at": timezone.now()}
    if message:
        updates["progress_message"] = message[:200]
    if not Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(**updates):
        return None
    job = Job.objects.select_related("tenant", "owner").get(pk=job_id)
    publish_job_progress(job)
    return job


# ------------------------------------------------------------------------------
# Life cycle
# ------------------------------------------------------------------------------
def do_start_job(
    tenant: Tenant,
    owner,
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
    retry_of: Job | None = None,
) -> Job:
    """Create a queued job and send its task once the row is committed."""
    from .jobs import get_kind

    job_kind = get_kind(kind)
    if job_kind is None:
        raise JobNotAllowed(f"Unknown job kind {kind!r}")
    membership = Membership.objects.filter(tenant=tenant, user=owner).first()
    if membership is None or (job_kind.admin_only and not membership.is_admin):
        raise JobNotAllowed(f"Only tenant admins may start {job_kind.label.lower()}")
    with transaction.atomic():
        job = Job.objects.create(
            tenant=tenant,
            owner=owner,
            kind=kind,
            params=params or {},
            task_id=str(uuid.uuid4()),
            retry_of=retry_of,
            progress_message="Waiting for a worker",
        )
        publish_job_state(job)
        transaction.on_commit(lambda: _send_task(job, queue=queue))
    return job


def _send_task(job: Job, *, queue: str | None = None) -> bool:
    """Hand the job's task to the broker; if Redis is down, say so on the row and return False.

    The row stays ``queued`` with ``task_sent_at`` unset; the reaper sends it again once
    the broker is back (``do_reap_stale_jobs``), and fails it after ``UNSENT_GIVE_UP_SECONDS``.
    """
    from liveplatform.celery import BROKER_UNAVAILABLE

    from .tasks import run_job

    # The row is the job's result: no subscription to the result backend per sending process
    # (with Redis down, that subscription failed with a misleading "restart the application").
    options: dict[str, Any] = {"task_id": job.task_id, "ignore_result": True}
    if queue:
        options["queue"] = queue
    try:
        run_job.apply_async(args=[job.pk, job.tenant_id], **options)
    except BROKER_UNAVAILABLE as exc:
        logger.warning("job %s: the task queue is unavailable (%s); it will be sent when it is back", job.pk, exc)
        if Job.objects.filter(pk=job.pk, state=JobState.QUEUED, task_sent_at__isnull=True).update(
            progress_message=UNSENT_MESSAGE
        ):
            job.progress_message = UNSENT_MESSAGE
            publish_job_state(job)
        return False
    job.task_sent_at = timezone.now()
    Job.objects.filter(pk=job.pk, task_id=job.task_id).update(task_sent_at=job.task_sent_at)
    return True


UNSENT_MESSAGE = "Waiting for the task queue, which is unavailable; the job starts when it is back"


def claim_job(job_id: int, tenant_id: int, task_id: str) -> Job | None:
    """Move a queued job to running for this task; None if it is not ours to run."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, tenant_id=tenant_id, state=JobState.QUEUED, task_id=task_id).update(
        state=JobState.RUNNING, started_at=now, heartbeat_at=now, progress_message="Starting"
    )
    if not claimed:
        return None
    job = Job.objects.select_related("tenant", "owner").get(pk=job_id)
    publish_job_state(job)
    return job


def finish_job(
    job: Job,
    state: str,
    *,
    done: int | None = None,
    total: int | None = None,
    message: str = "",
    result: dict | None = None,
    result_file: str = "",
    error: str = "",
    traceback: str = "",
    from_state: str = JobState.RUNNING,
) -> bool:
    """Record a running (or, for one never sent, queued) job's end exactly once; publish it and tell the owner."""
    now = timezone.now()
    updates: dict[str, Any] = {
        "state": state,
        "finished_at": now,
        "heartbeat_at": now,
        "progress_message": message[:200],
        "result": result or {},
        "result_file": result_file,
        "error": error,
        "traceback": traceback,
    }
    if done is not None:
        updates["progress_done"] = done
    if total is not None:
        updates["progress_total"] = total
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, state=from_state).update(**updates):
            return False
        job = Job.objects.select_related("tenant", "owner").get(pk=job.pk)
        publish_job_state(job)
        transaction.on_commit(lambda: job_finished.send(sender=Job, job=job), robust=True)
    return True


def can_manage(job: Job, user, membership: Membership) -> bool:
    """The owner and the tenant's admins may cancel and retry a job."""
    return membership.tenant_id == job.tenant_id and (membership.is_admin or job.owner_id == user.pk)


def do_cancel_job(job: Job, actor) -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next check."""
    from liveplatform.celery import app

    now = timezone.now()
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.CANCELLED, finished_at=now, cancel_requested_at=now, progress_message="Cancelled"
        ):
            job = Job.objects.select_related("tenant", "owner").get(pk=job.pk)
            publish_job_state(job)
            task_id = job.task_id
            # robust: with Redis down the revoke fails; the task, if it ever runs, finds nothing to claim.
            transaction.on_commit(lambda: app.control.revoke(task_id), robust=True)
            transaction.on_commit(lambda: job_finished.send(sender=Job, job=job), robust=True)
            return job
        if Job.objects.filter(pk=job.pk, state=JobState.RUNNING, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, progress_message="Cancelling"
        ):
            job = Job.objects.select_related("tenant", "owner").get(pk=job.pk)
            publish_job_state(job)
            return job
    raise JobNotAllowed("This job has already finished.")


def do_retry_job(job: Job, actor) -> Job:
    """Start a new attempt of a failed or cancelled job, with the same kind and parameters."""
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise JobNotAllowed("Only failed or cancelled jobs can be retried.")
    return do_start_job(job.tenant, job.owner, job.kind, job.params, retry_of=job)


def remove_job_files(job: Job) -> None:
    """Delete a job's output folder (partial files of a dead attempt)."""
    folder = Path(settings.MEDIA_ROOT) / "jobs" / str(job.tenant_id) / f"{job.pk}-{job.attempt}"
    shutil.rmtree(folder, ignore_errors=True)


def do_reap_stale_jobs(now=None) -> list[int]:
    """Re-queue (or fail) running jobs whose worker stopped sending heartbeats; send unsent ones.

    The crash bound is ``STALE_AFTER_SECONDS + REAP_INTERVAL_SECONDS`` (see
    ``workers.conf``). Re-queueing gives the row a new task id, so a late
    re-delivery of the dead attempt's message finds nothing to claim.
    """
    now = now or timezone.now()
    reaped = _send_unsent_jobs(now)
    cutoff = now - timedelta(seconds=job_settings.STALE_AFTER_SECONDS)
    stale = Job.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=cutoff).select_related("tenant", "owner")
    for job in stale:
        remove_job_files(job)
        if job.cancel_requested_at:
            finish_job(job, JobState.CANCELLED, message="Cancelled")
        elif job.attempt <= job_settings.CRASH_RETRIES and _retry_on_crash(job.kind):
            with transaction.atomic():
                requeued = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, heartbeat_at__lt=cutoff).update(
                    state=JobState.QUEUED,
                    attempt=F("attempt") + 1,
                    task_id=str(uuid.uuid4()),
                    task_sent_at=None,
                    started_at=None,
                    heartbeat_at=None,
                    progress_done=0,
                    progress_message="The worker stopped; retrying",
                )
                if not requeued:
                    continue
                job = Job.objects.select_related("tenant", "owner").get(pk=job.pk)
                publish_job_state(job)
                transaction.on_commit(lambda job=job: _send_task(job))
            logger.warning("job %s: worker lost, re-queued as attempt %s", job.pk, job.attempt)
        else:
            finish_job(
                job,
                JobState.FAILED,
                message="Worker lost",
                error="The worker running this job stopped (it crashed or was killed). You can retry it.",
            )
            logger.warning("job %s: worker lost, marked failed", job.pk)
        reaped.append(job.pk)
    return reaped


def _send_unsent_jobs(now) -> list[int]:
    """Send the tasks of queued jobs started while the broker was down; fail those that waited too long.

    Sending twice is harmless: a job is claimed by its task id while queued, so a second
    message finds nothing to claim.
    """
    handled = []
    settled = now - timedelta(seconds=2)  # leave a job that is being started to its own on_commit
    give_up = now - timedelta(seconds=job_settings.UNSENT_GIVE_UP_SECONDS)
    unsent = Job.objects.filter(state=JobState.QUEUED, task_sent_at__isnull=True, created_at__lt=settled)
    for job in unsent.select_related("tenant", "owner"):
        if job.created_at < give_up:
            finish_job(
                job,
                JobState.FAILED,
                message="Never started",
                error="The task queue was unavailable for too long, so the job never started. You can retry it.",
                from_state=JobState.QUEUED,
            )
            logger.warning("job %s: never reached the task queue, marked failed", job.pk)
        elif _send_task(job):
            logger.info("job %s: sent to the task queue after it came back", job.pk)
        else:
            break  # still down: the next reap tries again
        handled.append(job.pk)
    return handled


def _retry_on_crash(kind: str) -> bool:
    from .jobs import get_kind

    registered = get_kind(kind)
    return registered is None or registered.retry_on_crash


# ------------------------------------------------------------------------------
# State on connect
# ------------------------------------------------------------------------------
def active_jobs_snapshot(user, subs) -> list[tuple[str, str | None, Any]]:
    """The active jobs this socket may see, as ``job.state`` frames (registered with realtime).

    An admin sees every active job of their tenant, a member their own. Every handshake
    asks and almost always finds none, so a plain query over the (few) active jobs
    decides first; only jobs it finds are loaded as models for their payload.
    """
    admin_tenants = [t.id for t in subs.tenants if t.is_admin]
    member_tenants = [t.id for t in subs.tenants if not t.is_admin]
    visible, params = [], []
    if admin_tenants:
        visible.append(f"tenant_id IN ({rawsql.placeholders(admin_tenants)})")
        params += admin_tenants
    if member_tenants:
        visible.append(f"(tenant_id IN ({rawsql.placeholders(member_tenants)}) AND owner_id = %s)")
        params += [*member_tenants, user.pk]
    if not visible:
        return []
    ids = [
        row[0]
        for row in rawsql.fetch(
            f"SELECT id FROM {Job._meta.db_table} WHERE state IN ({rawsql.placeholders(ACTIVE_STATES)})"
            f" AND ({' OR '.join(visible)}) ORDER BY id LIMIT 100",
            [*(state.value for state in ACTIVE_STATES), *params],
        )
    ]
    if not ids:
        return []
    jobs = Job.objects.filter(id__in=ids).select_related("tenant", "owner").order_by("id")
    return [("job.state", job.tenant.slug, job_payload(job)) for job in jobs]
