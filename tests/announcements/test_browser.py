"""The announcement flow in real browsers: compose, see it live, end it, dismiss it across tabs."""

import pytest

from announcements import services
from announcements.models import Announcement

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT_MS = 20_000


def banner(page, announcement_id):
    return page.locator(f'#announcements [data-announcement-id="{announcement_id}"]')


def open_tenant_home(page):
    page.goto("/t/acme/")
    page.wait_for_selector('#live-status[data-state="connected"]', timeout=TIMEOUT_MS)


def test_admin_publishes_members_see_it_live_then_it_ends_everywhere(browser_page, people, artifacts_dir):
    admin, alice, bob = (browser_page(people[name]) for name in ("acme_admin", "alice", "bob"))
    for page in (alice, bob):
        open_tenant_home(page)
    assert alice.locator("#announcements .announcement").count() == 0

    admin.goto("/t/acme/announcements/new/")
    admin.fill("#id_title", "Maintenance at 22:00")
    admin.fill("#id_body", "Expect **five minutes** of downtime.")
    admin.select_option("#id_severity", "warning")
    # The live preview shows the rendered body before anything is published.
    admin.wait_for_selector("#composer-preview .announcement-body strong", timeout=TIMEOUT_MS)
    assert admin.locator("#composer-preview .announcement-title").inner_text() == "Maintenance at 22:00"
    admin.screenshot(path=str(artifacts_dir / "announcements-composer.png"))

    # Bob's socket drops just before the publish: he must get it on reconnect, by replay.
    bob.evaluate("window.liveClient.dropConnection()")
    admin.click("[data-testid=publish]")
    admin.wait_for_url("**/t/acme/announcements/", timeout=TIMEOUT_MS)
    announcement = Announcement.objects.get(title="Maintenance at 22:00")

    for page in (alice, bob):
        banner(page, announcement.pk).wait_for(state="visible", timeout=TIMEOUT_MS)
        assert "five minutes" in banner(page, announcement.pk).inner_text()
        assert banner(page, announcement.pk).get_attribute("data-severity") == "warning"
    bob.wait_for_selector('#live-status[data-state="connected"]', timeout=TIMEOUT_MS)
    # Both loaded the page before the publish: no reload happened.
    assert alice.url.endswith("/t/acme/") and bob.url.endswith("/t/acme/")

    admin.once("dialog", lambda dialog: dialog.accept())  # "End … now?"
    admin.click(f'[data-announcement-row="{announcement.pk}"] [data-action=end]')
    admin.wait_for_url("**/t/acme/announcements/", timeout=TIMEOUT_MS)
    for page in (alice, bob):
        banner(page, announcement.pk).wait_for(state="detached", timeout=TIMEOUT_MS)
    for page in (admin, alice, bob):
        assert page.errors == []


def test_each_severity_has_its_own_look_and_dismissal_syncs_between_tabs(browser_page, people, artifacts_dir):
    tab1, tab2 = browser_page(people["alice"]), browser_page(people["alice"])
    for page in (tab1, tab2):
        open_tenant_home(page)
    made = {
        severity: services.do_publish_announcement(
            actor=people["acme_admin"],
            tenant=people["acme"],
            title=f"{severity.title()} announcement",
            body=f"This is what a *{severity}* announcement looks like.",
            severity=severity,
        )
        for severity in ("info", "warning", "critical")
    }
    colours = {}
    for severity, announcement in made.items():
        element = banner(tab1, announcement.pk)
        element.wait_for(state="visible", timeout=TIMEOUT_MS)
        element.screenshot(path=str(artifacts_dir / f"announcement-{severity}.png"))
        colours[severity] = element.evaluate("el => getComputedStyle(el).backgroundColor")
    assert len(set(colours.values())) == 3, colours
    # Most severe first, live as on the server.
    order = tab1.locator("#announcements .announcement").evaluate_all("els => els.map(e => e.dataset.severity)")
    assert order == ["critical", "warning", "info"]
    assert banner(tab1, made["critical"].pk).locator("[data-action=dismiss]").count() == 0
    tab1.screenshot(path=str(artifacts_dir / "announcements-all-severities.png"))

    # Dismiss in one tab: the other tab drops it at once, and a reload does not bring it back.
    banner(tab2, made["info"].pk).wait_for(state="visible", timeout=TIMEOUT_MS)
    tab1.click(f'#announcements [data-announcement-id="{made["info"].pk}"] [data-action=dismiss]')
    banner(tab2, made["info"].pk).wait_for(state="detached", timeout=TIMEOUT_MS)
    banner(tab1, made["info"].pk).wait_for(state="detached", timeout=TIMEOUT_MS)
    tab2.reload()
    tab2.wait_for_selector(f'#announcements [data-announcement-id="{made["warning"].pk}"]', timeout=TIMEOUT_MS)
    assert banner(tab2, made["info"].pk).count() == 0
    for page in (tab1, tab2):
        assert page.errors == []


def test_one_time_modal_shows_once_and_a_critical_one_stays_as_a_banner(browser_page, people, artifacts_dir):
    page = browser_page(people["bob"])
    open_tenant_home(page)
    modal = services.do_publish_announcement(
        actor=people["acme_admin"], tenant=people["acme"], title="Read this first", severity="critical", style="modal"
    )
    dialog = page.locator(f'#announcement-modals dialog[data-announcement-id="{modal.pk}"]')
    dialog.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "announcement-modal-critical.png"))
    dialog.locator("[data-action=close]").click()
    # Acknowledged: the modal goes, the critical announcement stays as a banner, also after reload.
    banner(page, modal.pk).wait_for(state="visible", timeout=TIMEOUT_MS)
    assert dialog.count() == 0
    page.reload()
    banner(page, modal.pk).wait_for(state="visible", timeout=TIMEOUT_MS)
    assert page.locator("#announcement-modals dialog").count() == 0
    assert page.errors == []
