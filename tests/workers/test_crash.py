"""kill -9 of the worker mid-export: the heartbeat reaper re-queues the job and another worker finishes it.

The documented bound (workers/conf.py): a job whose worker died leaves ``running``
within STALE_AFTER_SECONDS + REAP_INTERVAL_SECONDS (5 s + 1 s under test settings).
"""

from __future__ import annotations

import csv
import os
import time

import pytest
from django.conf import settings

from notifications.models import Notification
from tests.support.processes import CeleryWorker, wait_for
from tests.workers.helpers import follow, make_notifications
from workers import services
from workers.conf import job_settings
from workers.models import Job, JobState
from workers.tasks import reap_stale_jobs

pytestmark = [pytest.mark.stack, pytest.mark.fault]

ROWS = 15_000  # a few seconds of export (also on PostgreSQL): long enough to die in the middle


def test_a_job_whose_worker_is_killed_leaves_running_within_the_bound_and_is_finished_by_another(
    live, celery_worker, subprocess_env, cast
):
    # A worker of its own, on a queue only it serves, so the job surely runs there.
    queue = f"jobs-crash-{os.getpid()}"
    doomed = CeleryWorker(subprocess_env, concurrency=1)
    doomed.argv += ["-Q", queue]
    doomed.start()
    make_notifications(cast.acme, [cast.alice], ROWS)
    rows = Notification.objects.filter(tenant=cast.acme).count()
    with live.socket(cast.admin) as sock:
        sock.wait_type("hello")
        try:
            job = services.do_start_job(cast.acme, cast.admin, "export", queue=queue)
            wait_for(lambda: Job.objects.get(pk=job.pk).progress_done > 0, timeout=90, message="export under way")
            doomed.kill()  # kill -9 of the worker's whole process group, mid-job
            killed_at = time.monotonic()
        finally:
            doomed.stop()
        dead = Job.objects.get(pk=job.pk)
        assert dead.state == JobState.RUNNING and 0 < dead.progress_done < rows
        dead_folder = settings.MEDIA_ROOT / "jobs" / str(cast.acme.pk) / f"{job.pk}-1"
        assert dead_folder.is_dir()  # the dead attempt's partial file

        # Beat would run the reaper every REAP_INTERVAL_SECONDS; the session worker runs it here.
        def reaped() -> bool:
            reap_stale_jobs.delay().get(timeout=30)
            return Job.objects.get(pk=job.pk).state != JobState.RUNNING

        bound = job_settings.STALE_AFTER_SECONDS + job_settings.REAP_INTERVAL_SECONDS
        wait_for(reaped, timeout=bound + 30, interval=job_settings.REAP_INTERVAL_SECONDS, message="the reaper")
        assert time.monotonic() - killed_at <= bound + 10  # slack for a loaded machine

        # Re-queued as attempt 2 on the default queue: the session worker picks it up and finishes.
        frames = follow(sock, job.pk, timeout=120)
    states = [(f["data"]["state"], f["data"]["attempt"]) for f in frames if f["type"] == "job.state" and "stream" in f]
    assert ("queued", 2) in states and states[-1] == ("succeeded", 2)
    final = frames[-1]["data"]
    assert final["result"]["rows"] == rows and final["done"] == rows
    assert not dead_folder.exists()  # the reaper removed the partial file
    job.refresh_from_db()
    with open(settings.MEDIA_ROOT / job.result_file, newline="") as exported:
        assert sum(1 for _ in csv.reader(exported)) == rows + 1
