"""Keyboard only: the bell, the inbox, the composer and the jobs page work without a mouse."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from announcements.models import Announcement
from notifications import services
from workers.models import Job

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT = 20_000


def focused(page) -> str:
    """What has the focus, as a short description (id, test id or text)."""
    return page.evaluate(
        "() => { const e = document.activeElement; return e.id || e.dataset.testid || e.textContent.trim(); }"
    )


def tab_to(page, matches, limit: int = 40) -> None:
    """Press Tab until ``matches(page)`` holds (at most ``limit`` times)."""
    for _ in range(limit):
        if matches(page):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"never reached; focus is on {focused(page)!r}")


def test_bell_and_inbox_by_keyboard(browser_page, org):
    acme, alice = org["acme"], org["alice"]
    for title in ("First", "Second"):
        services.notify(acme, alice, category="general", title=title, body=f"Body of {title.lower()}.")
    page = browser_page(alice)
    page.goto("/t/acme/notifications/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)

    # The bell: reach it, open it, step into it, close it, focus returns.
    tab_to(page, lambda p: focused(p) == "notification-bell-button")
    page.keyboard.press("Enter")
    panel = page.get_by_test_id("notification-panel")
    expect(panel).to_be_visible()
    expect(panel.get_by_test_id("bell-item")).to_have_count(2, timeout=TIMEOUT)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.getElementById('notification-panel').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert focused(page) == "notification-bell-button"

    # The inbox: arrow keys move between tabs, Enter on "Mark read" marks it read.
    page.focus("#inbox-tab-all")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#inbox-tab-unread")).to_have_attribute("aria-selected", "true")
    assert focused(page) == "inbox-tab-unread"
    tab_to(page, lambda p: p.evaluate("() => document.activeElement.dataset.action === 'read'"))
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("inbox-unread-count")).to_have_text("1", timeout=TIMEOUT)
    assert page.errors == []


def test_composer_and_jobs_by_keyboard(browser_page, org):
    page = browser_page(org["admin"])
    page.goto("/t/acme/announcements/new/")
    page.focus("#id_title")
    page.keyboard.type("Keyboard announcement")
    page.keyboard.press("Tab")
    page.keyboard.type("Typed **without** a mouse.")
    tab_to(page, lambda p: focused(p) == "publish")
    page.keyboard.press("Enter")
    page.wait_for_url("**/t/acme/announcements/")
    assert Announcement.objects.filter(title="Keyboard announcement").exists()

    page.goto("/t/acme/jobs/")
    tab_to(page, lambda p: p.evaluate("() => document.activeElement.dataset.start === 'export'"), limit=60)
    page.keyboard.press("Enter")
    page.wait_for_url("**/t/acme/jobs/#job-*")
    job = Job.objects.order_by("-id").first()
    expect(page.locator(f'tr.job[data-job-id="{job.pk}"]')).to_be_visible()
    # A job's changes of state are announced to screen readers (a polite live region).
    expect(page.locator("#jobs-announcer")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#toasts")).to_have_attribute("aria-live", "polite")
    assert page.errors == []
