"""Toasts and bell items read like a feed: icon, title, body preview, actor, a relative time that moves."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from notifications import services
from notifications.models import Notification

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT = 20_000


def test_toast_and_bell_item_show_preview_actor_and_a_relative_time_that_changes(browser_page, org, artifacts_dir):
    acme, alice, admin = org["acme"], org["alice"], org["admin"]
    services.notify(
        acme,
        alice,
        category="general",
        level="warning",
        title="Storage 80% full",
        body="Consider **archiving** old exports.",
        actor=admin,
    )
    Notification.objects.filter(title="Storage 80% full").update(created_at=timezone.now() - timedelta(minutes=5))
    page = browser_page(alice)
    page.clock.install()
    page.goto("/t/acme/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)

    services.notify(
        acme,
        alice,
        category="jobs",
        level="success",
        title="Export finished",
        body="**30,011** notifications exported.",
        link="/t/acme/jobs/",
        actor=admin,
    )
    toast = page.get_by_test_id("notification-toast")
    expect(toast).to_contain_text("Export finished", timeout=TIMEOUT)
    expect(toast.get_by_test_id("notification-preview")).to_have_text("30,011 notifications exported.")
    expect(toast).to_contain_text("Admin")
    expect(toast.locator("time")).to_have_text("just now")
    expect(toast.locator(".notif-icon svg")).to_have_count(1)
    toast.hover()  # a toast being read stays
    page.screenshot(path=str(artifacts_dir / "feed-toast.png"))
    page.clock.fast_forward("01:00")
    expect(toast.locator("time")).to_have_text(re.compile(r"^1 min"), timeout=TIMEOUT)

    page.get_by_test_id("notification-bell").click()
    items = page.get_by_test_id("bell-item")
    expect(items).to_have_count(2, timeout=TIMEOUT)
    expect(items.nth(1).get_by_test_id("notification-preview")).to_have_text("Consider archiving old exports.")
    expect(items.nth(1).locator("time")).to_have_text(re.compile(r"^6 min"))
    expect(items.nth(1)).to_contain_text("Admin")
    page.screenshot(path=str(artifacts_dir / "feed-bell.png"))
    expect(toast.get_by_role("button", name="Mark “Export finished” read")).to_be_visible()

    page.clock.fast_forward("02:00")
    expect(items.nth(1).locator("time")).to_have_text(re.compile(r"^8 min"), timeout=TIMEOUT)
    expect(items.nth(0).locator("time")).to_have_text(re.compile(r"^3 min"), timeout=TIMEOUT)
    assert page.errors == []


def test_similar_unread_items_of_a_grouped_category_fold_into_one_row(browser_page, org):
    acme, alice = org["acme"], org["alice"]
    for who in ("Ada", "Grace", "Linus"):
        services.notify(acme, alice, category="comments", title=f"{who} replied to your export")
    services.notify(acme, alice, category="general", title="Deploy finished")
    page = browser_page(alice)
    page.goto("/t/acme/")
    page.get_by_test_id("notification-bell").click()
    group = page.get_by_test_id("bell-group")
    expect(group).to_have_count(1, timeout=TIMEOUT)
    expect(group).to_contain_text("3 new in Comments")
    expect(page.locator(".bell-list > .bell-item")).to_have_count(1)
    group.locator("summary").click()
    expect(group.get_by_test_id("bell-item")).to_have_count(3)
    assert page.errors == []


def test_the_home_page_follows_live_what_needs_the_user(browser_page, org):
    """Tests that a notification and its reading show on the home page without a reload."""
    acme, alice = org["acme"], org["alice"]
    page = browser_page(alice)
    page.goto("/t/acme/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    expect(page.locator("#home-unread-slot")).to_contain_text("You are all caught up")

    services.notify(acme, alice, category="comments", title="Bob replied in “Q3 plan”", body="Looks **good**.")
    unread = page.get_by_test_id("home-unread")
    expect(unread).to_contain_text("Bob replied in “Q3 plan”", timeout=TIMEOUT)
    expect(unread).to_contain_text("Looks good.")
    expect(page.locator("#live-activity")).to_contain_text("New notification: Bob replied in “Q3 plan”")

    services.do_mark_all_read(acme, alice)
    expect(page.locator("#home-unread-slot")).to_contain_text("You are all caught up", timeout=TIMEOUT)
    assert page.errors == []


def test_a_toast_never_covers_a_button_of_the_page(browser_page, org):
    """Tests that the toast stack moves to the other corner when it would cover an action."""
    page = browser_page(org["alice"])
    page.goto("/t/acme/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    # An action where toasts appear by default (bottom right), like a job row's Download.
    page.evaluate(
        """() => { const b = document.createElement('button'); b.id = 'corner-action'; b.textContent = 'Download';
          b.className = 'button'; b.style.cssText = 'position:fixed;right:24px;bottom:24px';
          document.querySelector('main').append(b); }"""
    )
    services.notify(org["acme"], org["alice"], category="jobs", title="Export finished", body="Ready.")
    toast = page.get_by_test_id("notification-toast")
    expect(toast).to_be_visible(timeout=TIMEOUT)
    button, box = page.locator("#corner-action").bounding_box(), toast.bounding_box()
    apart = box["x"] + box["width"] <= button["x"] or button["x"] + button["width"] <= box["x"]
    assert apart or box["y"] + box["height"] <= button["y"] or button["y"] + button["height"] <= box["y"]
    page.locator("#corner-action").click(timeout=2_000)  # nothing in the way


def test_the_home_page_shows_running_jobs_with_bars_that_move(browser_page, org):
    """Tests that a job running for the user shows on the home page and its bar follows live progress."""
    from django.utils import timezone

    from workers import services as jobs
    from workers.models import Job, JobState

    job = Job.objects.create(
        tenant=org["acme"], owner=org["alice"], kind="export", state=JobState.RUNNING, started_at=timezone.now()
    )
    page = browser_page(org["alice"])
    page.goto("/t/acme/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    row = page.locator(f'#home tr.job[data-job-id="{job.pk}"]')
    expect(row).to_be_visible()
    expect(page.get_by_test_id("jobs-running")).to_contain_text("1 job running")

    jobs.save_job_progress(job, 40, 100, "Writing rows")
    jobs.publish_job_progress(job)
    expect(row.locator('[data-field="percent"]')).to_have_text("40%", timeout=TIMEOUT)
    assert row.locator("progress").evaluate("bar => bar.value") == 40
    assert page.errors == []
