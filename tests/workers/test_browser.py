"""The jobs page in a real browser: a live bar, a reload mid-way, a download and a cancel."""

from __future__ import annotations

import csv
import time

import pytest

from notifications.models import Notification
from tests.support.processes import wait_for
from tests.workers.helpers import make_notifications
from workers.models import Job, JobState

pytestmark = [pytest.mark.browser, pytest.mark.stack]

ROWS = 80_000  # about 1 s per 20,000 rows here: several seconds, so a reload lands in the middle


def bar_value(page, job_id: int) -> int:
    return int(float(page.eval_on_selector(f'tr.job[data-job-id="{job_id}"] progress', "bar => bar.value")))


def row_text(page, job_id: int, field: str) -> str:
    return page.inner_text(f'tr.job[data-job-id="{job_id}"] [data-field="{field}"]')


def start_export(page) -> Job:
    before = set(Job.objects.values_list("id", flat=True))
    page.click('button[data-start="export"]')
    page.wait_for_load_state("load")
    job = wait_for(lambda: Job.objects.exclude(id__in=before).first(), timeout=30, message="a new job")
    page.wait_for_selector(f'tr.job[data-job-id="{job.pk}"]')
    return job


def test_export_bar_moves_survives_a_reload_downloads_and_another_job_is_cancelled(
    browser_page, live, celery_worker, cast, artifacts_dir, tmp_path
):
    make_notifications(cast.acme, [cast.alice, cast.bob], ROWS)
    rows = Notification.objects.filter(tenant=cast.acme).count()
    page = browser_page(cast.admin)
    page.goto("/t/acme/jobs/")
    page.wait_for_selector('#live-status[data-state="connected"]')
    job = start_export(page)

    # Watch the bar move (values rendered by the page, polled from outside).
    seen: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        value = bar_value(page, job.pk)
        if not seen or value != seen[-1]:
            seen.append(value)
        if len([v for v in seen if 0 < v < 100]) >= 2:
            break
        time.sleep(0.03)  # polling interval of the observer, not synchronisation
    before_reload = seen[-1]
    assert 0 < before_reload < 100, seen

    # Reload mid-way (at once: the screenshot waits until after): the bar comes back where the
    # job is, not at zero or "pending".
    page.reload()
    page.wait_for_selector(f'tr.job[data-job-id="{job.pk}"]')
    after_reload = bar_value(page, job.pk)
    assert after_reload >= before_reload, (before_reload, after_reload)
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING, "the export ended before the reload"
    page.screenshot(path=str(artifacts_dir / "jobs-export-running.png"), full_page=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and row_text(page, job.pk, "state") != "Succeeded":
        value = bar_value(page, job.pk)
        if value != seen[-1]:
            seen.append(value)
        time.sleep(0.03)
    assert row_text(page, job.pk, "state") == "Succeeded"
    assert bar_value(page, job.pk) == 100 and row_text(page, job.pk, "percent") == "100%"
    assert row_text(page, job.pk, "counts") == f"{rows} / {rows}"
    intermediate = sorted({v for v in seen if 0 < v < 100})
    assert len(intermediate) >= 4, seen  # several distinct positions were drawn, live

    # Download through the checked view.
    with page.expect_download() as download_info:
        page.click(f'tr.job[data-job-id="{job.pk}"] [data-field="download"]')
    saved = tmp_path / "export.csv"
    download_info.value.save_as(saved)
    with open(saved, newline="") as exported:
        assert sum(1 for _ in csv.reader(exported)) == rows + 1

    # Another export, cancelled from its row while it runs. Twice the rows, so that on a loaded
    # machine the export is still running when the click's POST arrives.
    make_notifications(cast.acme, [cast.alice, cast.bob], ROWS, prefix="More")
    other = start_export(page)
    page.wait_for_selector(f'tr.job[data-job-id="{other.pk}"][data-state="running"]')
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this job?"
    page.click(f'tr.job[data-job-id="{other.pk}"] [data-action="cancel"] button')
    page.wait_for_load_state("load")
    try:
        page.wait_for_selector(f'tr.job[data-job-id="{other.pk}"][data-state="cancelled"]', timeout=30_000)
    except Exception as exc:
        other.refresh_from_db()
        shown = page.get_attribute(f'tr.job[data-job-id="{other.pk}"]', "data-state")
        raise AssertionError(
            f"job {other.pk}: page shows {shown!r}, database has {other.state!r} "
            f"(cancel requested at {other.cancel_requested_at}, message {other.progress_message!r})"
        ) from exc
    assert row_text(page, other.pk, "state") == "Cancelled"
    assert Job.objects.get(pk=other.pk).state == JobState.CANCELLED
    # Each state shows only its own actions: retry after a cancel, download after success.
    assert page.is_visible(f'tr.job[data-job-id="{other.pk}"] [data-action="retry"]')
    assert not page.is_visible(f'tr.job[data-job-id="{other.pk}"] [data-action="cancel"]')
    assert not page.is_visible(f'tr.job[data-job-id="{other.pk}"] [data-field="download"]')
    assert page.is_visible(f'tr.job[data-job-id="{job.pk}"] [data-field="download"]')
    assert not page.is_visible(f'tr.job[data-job-id="{job.pk}"] [data-action="retry"]')
    page.screenshot(path=str(artifacts_dir / "jobs-page.png"), full_page=True)
    assert page.errors == []
