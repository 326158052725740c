"""Presence as people see it: the Members page's dots and the home page's "Online now", live, at two widths."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.stack]

# The session's web server runs the default presence settings: a leave waits 5 s (grace)
# and goes out within a second after; a join within a second or two.
TIMEOUT = 15_000


def test_members_see_who_is_online_live_and_a_member_can_hide(browser_page, live, org, artifacts_dir):
    """Tests dots that light up and go out as members come and go, and the hide choice, as people see them."""
    alice, bob, gina = org["alice"], org["bob"], org["gina"]
    page = browser_page(alice)
    page.goto("/t/acme/members/")
    expect(page.locator(f'[data-presence-user="{alice.pk}"]')).to_have_class("presence-dot online", timeout=TIMEOUT)
    bob_dot = page.locator(f'[data-presence-user="{bob.pk}"]')
    expect(bob_dot).not_to_have_class("presence-dot online")
    expect(page.locator("[data-presence-count]")).to_have_text("1 member online now.", timeout=TIMEOUT)

    with live.socket(bob) as bob_sock, live.socket(gina):
        bob_sock.wait_type("hello")
        expect(bob_dot).to_have_class("presence-dot online", timeout=TIMEOUT)
        expect(bob_dot).to_have_attribute("aria-label", re.compile(r"^online since \d{1,2}:\d{2}"))
        expect(page.locator("[data-presence-count]")).to_have_text("2 members online now.")
        page.screenshot(path=str(artifacts_dir / "presence-members-desktop.png"), full_page=True)

        # Bob's home page on a phone: who is online, himself first.
        phone = browser_page(bob, width=390)
        phone.goto("/t/acme/")
        online_now = phone.get_by_test_id("online-now")
        expect(online_now).to_contain_text("bob@acme.test (you)", timeout=TIMEOUT)
        expect(online_now).to_contain_text("alice@acme.test")
        expect(online_now).not_to_contain_text("gina")  # another tenant's member
        phone.locator(".home-online").scroll_into_view_if_needed()
        phone.screenshot(path=str(artifacts_dir / "presence-home-phone.png"), full_page=True)
        assert phone.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")

        # Alice hides her presence: gone from Bob's page; her own page says so.
        page.get_by_role("button", name="Hide my presence").click()
        expect(page.get_by_text("Others do not see when you are online.")).to_be_visible()
        expect(online_now).not_to_contain_text("alice@acme.test", timeout=TIMEOUT)
        phone.context.close()
    # Bob closed every socket: his dot goes out after the grace period.
    expect(bob_dot).not_to_have_class("presence-dot online", timeout=TIMEOUT)
    expect(page.locator(f'[data-presence-user="{alice.pk}"]')).not_to_have_class("presence-dot online")
    assert page.errors == []
    page.context.close()
