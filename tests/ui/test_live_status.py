"""The connection indicator follows the network: offline while it is gone, connected when it is back."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from notifications import services

pytestmark = [pytest.mark.browser, pytest.mark.stack]

TIMEOUT = 20_000


def test_status_returns_to_connected_after_the_network_drops_and_returns(browser_page, org):
    """Tests that a blink of the network does not leave the indicator on "offline" for good."""
    page = browser_page(org["alice"])
    page.goto("/t/acme/")
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "connected", timeout=TIMEOUT)

    page.context.set_offline(True)
    expect(status).to_have_attribute("data-state", "offline", timeout=TIMEOUT)
    expect(status).to_contain_text("offline")
    page.context.set_offline(False)
    expect(status).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    expect(status).to_contain_text("connected")

    # And it is really live: a notification sent now reaches the badge.
    services.notify(org["acme"], org["alice"], category="general", title="Back online")
    expect(page.get_by_test_id("notification-badge")).to_have_text("1", timeout=TIMEOUT)
    assert page.errors == []
