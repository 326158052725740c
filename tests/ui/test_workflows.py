"""The details a user trips over: local-time scheduling, confirmations, the new job's row, the jobs indicator."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from announcements.models import Announcement
from workers.models import Job, JobState
from workers.services import finish_job

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT = 20_000


def test_announcements_are_scheduled_in_the_browsers_zone_and_ending_asks_first(browser_page, live, org):
    page = browser_page(org["admin"], timezone_id="Asia/Tokyo")
    page.goto("/t/acme/announcements/new/")
    expect(page.locator('label[for="id_starts_at"]')).to_contain_text("(Asia/Tokyo)")
    page.fill("#id_title", "Office move")
    page.fill("#id_starts_at", "2030-01-10T09:00")
    page.get_by_test_id("publish").click()
    page.wait_for_url("**/t/acme/announcements/")
    announcement = Announcement.objects.get(title="Office move")
    assert announcement.starts_at == datetime(2030, 1, 10, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
    row = page.locator(f'[data-announcement-row="{announcement.pk}"]')
    expect(row).to_contain_text("9:00")
    expect(page.locator("th", has_text="Window")).to_contain_text("(Asia/Tokyo)")

    # End now asks first; saying no changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("[data-action=end]").click()
    expect(row.locator(".announcement-status")).to_have_text("scheduled")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("[data-action=end]").click()
    page.wait_for_load_state("load")
    expect(row.locator(".announcement-status")).to_have_text("ended", timeout=TIMEOUT)
    expect(row).not_to_contain_text("until ended")
    assert page.errors == []
    page.context.close()


def test_a_started_job_is_the_first_row_highlighted_near_the_top(browser_page, live, org):
    page = browser_page(org["admin"])
    Job.objects.create(tenant=org["acme"], owner=org["alice"], kind="export", state=JobState.CANCELLED)
    page.goto("/t/acme/jobs/")
    expect(page.get_by_test_id("jobs-running")).to_be_hidden()
    cancelled = page.locator('tr.job[data-state="cancelled"] .job-state')
    assert "⊘" in cancelled.evaluate("e => getComputedStyle(e, '::before').content")

    page.click('button[data-start="export"]')
    page.wait_for_url(re.compile(r"/t/acme/jobs/#job-\d+$"))
    job = Job.objects.order_by("-id").first()
    first = page.locator("#jobs tbody tr.job").first
    expect(first).to_have_attribute("data-job-id", str(job.pk))
    assert first.evaluate("row => row.matches(':target')")  # the highlighted one
    box = first.bounding_box()
    assert 0 <= box["y"] < page.viewport_size["height"] / 2  # near the top, not at the bottom edge
    assert page.errors == []
    page.context.close()


def test_every_header_says_a_job_runs_until_it_ends_and_cancelling_asks_first(browser_page, live, org):
    # A running job made in the database, never sent to a worker: whether a Celery worker
    # runs in this test session must not decide what the header shows.
    job = Job.objects.create(tenant=org["acme"], owner=org["alice"], kind="export", state=JobState.RUNNING)
    page = browser_page(org["admin"])
    page.goto("/t/acme/members/")
    indicator = page.get_by_test_id("jobs-running")
    expect(indicator).to_contain_text("1 job running", timeout=TIMEOUT)
    expect(indicator).to_have_attribute("href", "/t/acme/jobs/")

    # Cancelling asks first; saying no changes nothing.
    page.goto("/t/acme/jobs/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator(f'tr.job[data-job-id="{job.pk}"] [data-action="cancel"] button').click()
    job.refresh_from_db()
    assert job.cancel_requested_at is None

    # When it ends, the header of the open page hides the indicator without a reload.
    page.goto("/t/acme/members/")
    expect(indicator).to_contain_text("1 job running", timeout=TIMEOUT)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    assert finish_job(job, JobState.SUCCEEDED, message="Done")
    expect(indicator).to_be_hidden(timeout=TIMEOUT)
    assert page.errors == []
    page.context.close()
