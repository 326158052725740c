"""The bell in real browsers: live toasts and badges across tabs, mark-all-read everywhere, screenshots."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from notifications import services
from tests.notifications.test_stack import post_notification

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT = 20_000  # ms; the machine is shared, so waits are generous (and end as soon as the condition holds)


def open_tab(page, path: str = "/t/acme/"):
    page.goto(path)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    return page


def new_tab(first_page):
    """A second tab of the same browser session (same cookies)."""
    page = first_page.context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


def test_live_toast_and_badge_in_both_tabs_of_the_recipient_only(browser_page, live, org, make_api_key, artifacts_dir):
    acme, alice = org["acme"], org["alice"]
    for title, level, body in [
        ("Weekly report is ready", "success", "Your **export** finished in 42 s."),
        ("Storage 80% full", "warning", "Consider archiving old exports."),
        ("Nightly import failed", "error", "The source file was empty."),
    ]:
        services.notify(acme, alice, category="general", title=title, level=level, body=body, link="/t/acme/")
    services.do_mark_all_read(acme, alice)
    raw_key = make_api_key(acme)[1]

    alice_1 = open_tab(browser_page(alice))
    alice_2 = open_tab(new_tab(alice_1))
    bob = open_tab(browser_page(org["bob"]))
    for page in (alice_1, alice_2, bob):
        expect(page.get_by_test_id("notification-badge")).to_be_hidden()

    post_notification(
        live.http_url,
        raw_key,
        {"user_ids": [alice.pk], "title": "Deploy finished", "level": "success", "link": "/t/acme/"},
    )
    for page in (alice_1, alice_2):
        toast = page.get_by_test_id("notification-toast")
        expect(toast).to_contain_text("Deploy finished", timeout=TIMEOUT)
        expect(toast).to_have_class(re.compile(r"toast-success"))
        expect(page.get_by_test_id("notification-badge")).to_have_text("1", timeout=TIMEOUT)
        expect(page).to_have_title(re.compile(r"^\(1\) "))
        assert page.get_by_test_id("notification-bell").get_attribute("aria-label").endswith("1 unread")

    # Bob's own notification arrives after alice's would have: by then he has only his.
    post_notification(live.http_url, raw_key, {"user_ids": [org["bob"].pk], "title": "Only for bob"})
    expect(bob.get_by_test_id("notification-toast")).to_have_text(re.compile("Only for bob"), timeout=TIMEOUT)
    expect(bob.get_by_test_id("notification-toast")).to_have_count(1)
    expect(bob.get_by_test_id("notification-badge")).to_have_text("1")
    for page in (alice_1, alice_2):
        expect(page.get_by_test_id("notification-toast").filter(has_text="Only for bob")).to_have_count(0)

    # The open bell lists the latest, newest first, and marks them seen.
    alice_1.get_by_test_id("notification-bell").click()
    panel = alice_1.get_by_test_id("notification-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".bell-item").first).to_contain_text("Deploy finished", timeout=TIMEOUT)
    expect(panel.locator(".bell-item")).to_have_count(4)
    expect(alice_1.get_by_test_id("notification-bell")).to_have_attribute("aria-expanded", "true")
    alice_1.screenshot(path=str(artifacts_dir / "notifications-bell-dropdown.png"))

    # Mark all read in one tab: the other tab's badge clears without reload.
    alice_1.get_by_test_id("bell-read-all").click()
    for page in (alice_1, alice_2):
        expect(page.get_by_test_id("notification-badge")).to_be_hidden(timeout=TIMEOUT)
        expect(page).not_to_have_title(re.compile(r"^\(\d"))
    expect(bob.get_by_test_id("notification-badge")).to_have_text("1")
    assert services.counts_for(acme, alice)["unread"] == 0

    for page in (alice_1, alice_2, bob):
        assert page.errors == []


def test_inbox_tabs_actions_and_live_updates(browser_page, live, org, artifacts_dir):
    acme, alice = org["acme"], org["alice"]
    for index, (level, category) in enumerate(
        [("info", "general"), ("success", "jobs"), ("warning", "general"), ("error", "jobs"), ("info", "general")]
    ):
        services.notify(
            acme,
            alice,
            category=category,
            level=level,
            title=f"Notification {index + 1}",
            body=f"Body of **notification {index + 1}**.",
            link="/t/acme/",
        )
    first = services.counts_for(acme, alice)
    assert first["unread"] == 5

    inbox = open_tab(browser_page(alice), "/t/acme/notifications/")
    other = open_tab(new_tab(inbox), "/t/acme/")
    items = inbox.locator("#inbox-list .inbox-item")
    expect(items).to_have_count(5, timeout=TIMEOUT)
    expect(items.first).to_contain_text("Notification 5")
    expect(inbox.get_by_test_id("inbox-unread-count")).to_have_text("5")
    expect(inbox.locator("#inbox-more")).to_be_hidden()  # fewer than a page: nothing more to load

    # Mark one read: the other tab's badge follows.
    items.first.get_by_role("button", name=re.compile("^Mark read")).click()
    expect(other.get_by_test_id("notification-badge")).to_have_text("4", timeout=TIMEOUT)
    expect(inbox.get_by_test_id("inbox-unread-count")).to_have_text("4", timeout=TIMEOUT)

    # A notification created elsewhere appears at the top without reload.
    services.notify(acme, alice, category="general", level="success", title="Live arrival", link="/t/acme/")
    expect(items.first).to_contain_text("Live arrival", timeout=TIMEOUT)
    expect(other.get_by_test_id("notification-badge")).to_have_text("5", timeout=TIMEOUT)
    inbox.screenshot(path=str(artifacts_dir / "notifications-inbox.png"), full_page=True)

    # Archive leaves the "all" tab and shows in "archived"; the category filter narrows.
    items.filter(has_text="Notification 1").get_by_role("button", name=re.compile("^Archive")).click()
    expect(items).to_have_count(5, timeout=TIMEOUT)
    inbox.get_by_role("tab", name=re.compile("Archived")).click()
    expect(items).to_have_count(1, timeout=TIMEOUT)
    expect(items.first).to_contain_text("Notification 1")
    inbox.get_by_role("tab", name=re.compile("All")).click()
    inbox.get_by_test_id("inbox-category").select_option("jobs")
    expect(items).to_have_count(2, timeout=TIMEOUT)

    # Mark all read from the other tab: the inbox's unread tab empties live.
    inbox.get_by_test_id("inbox-category").select_option("")
    inbox.get_by_role("tab", name=re.compile("Unread")).click()
    expect(items).to_have_count(4, timeout=TIMEOUT)
    other.get_by_test_id("notification-bell").click()
    other.get_by_test_id("bell-read-all").click()
    expect(items).to_have_count(0, timeout=TIMEOUT)
    expect(inbox.get_by_test_id("inbox-unread-count")).to_have_text("0")
    for page in (inbox, other):
        assert page.errors == []


def test_another_tenants_news_shows_on_the_tenant_switcher_not_as_a_toast(browser_page, live, org):
    """Pat is in acme and globex: on an acme page, globex news is a dot and a count, never a toast."""
    acme, globex, pat = org["acme"], org["globex"], org["pat"]
    page = open_tab(browser_page(pat), "/t/acme/")
    dot = page.get_by_test_id("tenant-dot")
    expect(dot).to_be_hidden()
    services.notify(globex, pat, category="general", title="Globex news", level="warning")
    expect(dot).to_be_visible(timeout=TIMEOUT)
    page.locator("#tenant-switcher summary").click()
    expect(page.locator('#tenant-switcher a[href="/t/globex/"] .tenant-unread')).to_have_text("1")
    # Acme news arrives after it: by then a globex toast would have shown, and none did.
    services.notify(acme, pat, category="general", title="Acme news")
    expect(page.get_by_test_id("notification-toast")).to_have_text(re.compile("Acme news"), timeout=TIMEOUT)
    expect(page.get_by_test_id("notification-toast")).to_have_count(1)
    expect(page.get_by_test_id("notification-badge")).to_have_text("1")
    # Reading globex's inbox clears the dot on the acme tab.
    services.do_mark_all_read(globex, pat)
    expect(dot).to_be_hidden(timeout=TIMEOUT)
    assert page.errors == []
