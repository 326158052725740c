"""The one job-context API: how a job kind is written and how it runs.

A job kind is one decorated function::

    @job_kind("export", label="Export notifications to CSV")
    def export(ctx: JobContext) -> dict:
        for done, row in enumerate(rows, 1):
            ...
            ctx.progress(done, total, "Writing rows")
        return {"rows": total}

``ctx.progress(done, total, message)`` may be called as often as the code likes: it
writes the row and publishes at most every ``PROGRESS_MIN_INTERVAL`` seconds and at
most once per 1 % step; the first update, the last one (``done == total``) and every
state change go out at once. ``progress()`` also notices a cancel request (as does
``ctx.check_cancelled()``) and raises ``JobCancelled``, so cancellation is
cooperative and prompt. Raise ``JobError("message")`` for a failure the owner should
read; any other exception fails the job with a generic message and keeps the
traceback for admins.

Events (all to the owner and the tenant's admins, see ``services.job_audiences``):
``job.state`` (durable, on every state change, the whole job) and ``job.progress``
(ephemeral ticks). A socket that connects gets the active jobs it may see as
``job.state`` frames (the snapshot), so a reloaded page shows the right position.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from . import services
from .conf import job_settings
from .models import Job, JobState

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a job when its owner or an admin cancelled it."""


class JobAbandoned(Exception):
    """Raised inside a job whose row is no longer running for this worker (reaped, re-queued)."""


class JobError(Exception):
    """A failure whose message the job's owner should read (bad input, missing data)."""


# Returned by a kind that finishes later elsewhere (a chord callback): the runner
# leaves the job running.
DEFERRED = object()


@dataclass(frozen=True)
class JobKind:
    """A registered kind: its function, label and who may start it."""

    name: str
    label: str
    func: Callable[[JobContext], Any]
    admin_only: bool = False
    description: str = ""
    # False for kinds whose side effects must not happen twice (the reaper fails them instead).
    retry_on_crash: bool = True


KINDS: dict[str, JobKind] = {}


def job_kind(
    name: str, *, label: str, admin_only: bool = False, description: str = "", retry_on_crash: bool = True
) -> Callable[[Callable[[JobContext], Any]], Callable[[JobContext], Any]]:
    """Register a function as a job kind: the one way to write background work."""

    def register(func: Callable[[JobContext], Any]) -> Callable[[JobContext], Any]:
        KINDS[name] = JobKind(name, label, func, admin_only, description, retry_on_crash)
        return func

    return register


def get_kind(name: str) -> JobKind | None:
    """The registered kind of this name (kinds register when ``workers.kinds`` is imported)."""
    from . import kinds  # noqa: F401 - registers the built-in kinds

    return KINDS.get(name)


class JobContext:
    """What a job kind gets: its job, throttled progress, cancellation and output files."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.tenant = job.tenant
        self.owner = job.owner
        self.params: dict[str, Any] = job.params or {}
        self.done = 0
        self.total: int | None = None
        self.message = ""
        self._last_emit: float | None = None
        self._last_step: int | None = None
        self._emitted: tuple[int, int | None, str] | None = None
        self._last_check = time.monotonic()
        self._files: list[Path] = []
        self.result_file = ""
        self.publishes = 0  # how many progress updates went out (for tests and logs)
        self._interval = job_settings.PROGRESS_MIN_INTERVAL
        self._poll = job_settings.CANCEL_POLL_SECONDS

    # --------------------------------------------------------------------------
    # Progress
    # --------------------------------------------------------------------------
    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress; cheap to call often (throttled), raises ``JobCancelled`` if cancelled."""
        self.done = done
        if total is not None:
            self.total = total
        if message:
            self.message = message[:200]
        now = time.monotonic()
        # The hot path of a tight loop: too soon after the last update, and not the last one.
        too_soon = self._last_emit is not None and now - self._last_emit < self._interval
        if too_soon and (self.total is None or done < self.total):
            if now - self._last_check >= self._poll:
                self.check_cancelled()
            return
        if self._due(now):
            self._emit(now)
        elif now - self._last_check >= self._poll:
            self.check_cancelled()

    def _step(self) -> int | None:
        if not self.total:
            return None
        return min(100, self.done * 100 // self.total)

    def _due(self, now: float) -> bool:
        if (self.done, self.total, self.message) == self._emitted:
            return False
        if self._last_emit is None:
            return True  # the first update
        if self.total is not None and self.done >= self.total:
            return True  # the last update
        if now - self._last_emit < self._interval:
            return False
        step = self._step()
        return step is None or self._last_step is None or step > self._last_step

    def _emit(self, now: float) -> None:
        self._last_emit = now
        self._last_check = now
        self._last_step = self._step()
        self._emitted = (self.done, self.total, self.message)
        written = services.save_job_progress(self.job, self.done, self.total, self.message)
        if not written:
            self._raise_if_stopped()
        self.publishes += 1
        services.publish_job_progress(self.job)

    def flush(self) -> None:
        """Write and publish the latest progress if a throttled update is pending."""
        if (self.done, self.total, self.message) != self._emitted and self._last_emit is not None:
            self._emit(time.monotonic())

    # --------------------------------------------------------------------------
    # Cancellation
    # --------------------------------------------------------------------------
    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if a cancel was requested (reads the row at most 4 times a second)."""
        now = time.monotonic()
        if now - self._last_check < self._poll:
            return
        self._last_check = now
        self._raise_if_stopped()

    def _raise_if_stopped(self) -> None:
        row = Job.objects.filter(pk=self.job.pk).values("state", "cancel_requested_at", "task_id").first()
        if row is None:
            raise JobAbandoned("the job was deleted")
        if row["state"] == JobState.RUNNING and row["cancel_requested_at"]:
            raise JobCancelled()
        if row["state"] != JobState.RUNNING or row["task_id"] != self.job.task_id:
            raise JobAbandoned(f"the job is {row['state']} now")

    # --------------------------------------------------------------------------
    # Output files
    # --------------------------------------------------------------------------
    def output_path(self, filename: str) -> Path:
        """A path under MEDIA_ROOT for this job's result file; removed if the job does not succeed."""
        folder = Path(settings.MEDIA_ROOT) / "jobs" / str(self.tenant.pk) / f"{self.job.pk}-{self.job.attempt}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        self._files.append(path)
        self.result_file = str(path.relative_to(settings.MEDIA_ROOT))
        return path

    def cleanup(self) -> None:
        """Remove partial output after a failure or a cancel."""
        for path in self._files:
            shutil.rmtree(path.parent, ignore_errors=True)
        self.result_file = ""


class Heartbeat(threading.Thread):
    """Stamps ``heartbeat_at`` while the task runs: proof of life the reaper reads."""

    def __init__(self, job_id: int, task_id: str) -> None:
        super().__init__(name=f"job-{job_id}-heartbeat", daemon=True)
        self.job_id, self.task_id = job_id, task_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(job_settings.HEARTBEAT_SECONDS):
                try:
                    Job.objects.filter(pk=self.job_id, state=JobState.RUNNING, task_id=self.task_id).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    logger.exception("heartbeat of job %s failed", self.job_id)
        finally:
            connections.close_all()  # this thread's own connections

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def user_message(exc: BaseException) -> str:
    """What the owner reads when a job fails: our message for ``JobError``, a generic one otherwise."""
    if isinstance(exc, JobError):
        return str(exc)
    return f"The job failed unexpectedly ({type(exc).__name__}). An administrator can see the details."


def run_job(job_id: int, tenant_id: int, task_id: str) -> str:
    """Claim a queued job, run its kind with a context, and record how it ended.

    The claim is a conditional UPDATE on (state=queued, task_id): a duplicate or
    stale delivery of the message (re-delivered after a crash, revoked, cancelled
    while queued) finds nothing to claim and does nothing.
    """
    job = services.claim_job(job_id, tenant_id, task_id)
    if job is None:
        logger.info("job %s: nothing to claim for task %s", job_id, task_id)
        return "skipped"
    kind = get_kind(job.kind)
    ctx = JobContext(job)
    heartbeat = Heartbeat(job.pk, task_id)
    heartbeat.start()
    try:
        if kind is None:
            raise JobError(f"Unknown job kind {job.kind!r}.")
        result = kind.func(ctx)
        if result is DEFERRED:
            return "deferred"
        ctx.flush()
    except JobCancelled:
        ctx.cleanup()
        services.finish_job(job, JobState.CANCELLED, done=ctx.done, total=ctx.total, message="Cancelled")
        return "cancelled"
    except JobAbandoned as exc:
        ctx.cleanup()
        logger.warning("job %s abandoned: %s", job_id, exc)
        return "abandoned"
    except Exception as exc:
        ctx.cleanup()
        logger.exception("job %s (%s) failed", job_id, job.kind)
        services.finish_job(
            job,
            JobState.FAILED,
            done=ctx.done,
            total=ctx.total,
            message=ctx.message,
            error=user_message(exc),
            traceback=traceback.format_exc(),
        )
        return "failed"
    finally:
        heartbeat.stop()
    services.finish_job(
        job,
        JobState.SUCCEEDED,
        done=ctx.total if ctx.total is not None else ctx.done,
        total=ctx.total,
        message=ctx.message or "Done",
        result=result if isinstance(result, dict) else {},
        result_file=ctx.result_file,
    )
    return "succeeded"
